"""Requests between workers: length-prefixed msgpack frames over an abstract Unix socket.

One connection per pair of workers, opened by the caller and reused; requests are multiplexed
by id, answered in any order. A request fails with a retryable 503 when the peer is down, so a
stopped worker makes only its own partitions unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from engine.errors import QuillError, Unavailable

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_MAX_FRAME = 512 * 1024 * 1024  # a request body can be a 32 MiB invocation input, times headers

T = TypeVar("T")


class Request(msgspec.Struct, array_like=True):
    id: int
    op: str
    args: msgspec.Raw


class Response(msgspec.Struct, array_like=True):
    id: int
    ok: bool
    result: msgspec.Raw  # the op's result, or an ErrorBody when not ok


class ErrorBody(msgspec.Struct, array_like=True):
    status: int
    message: str
    invocation_id: str | None
    source: str


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(Request).decode
_decode_response = msgspec.msgpack.Decoder(Response).decode
_decode_error = msgspec.msgpack.Decoder(ErrorBody).decode

Handler = Callable[[msgspec.Raw], Awaitable[Any]]


def socket_name(namespace: str, worker: int) -> str:
    """An abstract socket (no file: nothing to clean up after a SIGKILL) unique to a data dir."""
    return f"\0quill-{namespace}-w{worker}"


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > _MAX_FRAME:
        raise ConnectionError(f"frame of {length} bytes")
    return await reader.readexactly(length)


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class RpcServer:
    """Serves a worker's ops to its peers; each request runs as its own task."""

    def __init__(self, name: str, handlers: dict[str, Handler]) -> None:
        self._name = name
        self._handlers = handlers
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Bound here rather than by the loop: uvloop refuses abstract socket names.
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(self._name)
        self._server = await asyncio.start_unix_server(self._serve, sock=listening)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                request = _decode_request(await _read_frame(reader))
                handling = asyncio.ensure_future(self._answer(request, writer))
                pending.add(handling)
                handling.add_done_callback(pending.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the peer went away: its requests fail there, and it will reconnect
        finally:
            for handling in pending:
                handling.cancel()
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> None:
        response = await answer(self._handlers, request)
        with contextlib.suppress(ConnectionError):
            writer.write(_frame(_encode(response)))


async def answer(handlers: dict[str, Handler], request: Request) -> Response:
    """Run the op a request names; its result, or its error in Restate's terms (never raises)."""
    handler = handlers.get(request.op)
    try:
        if handler is None:
            raise QuillError(f"unknown op {request.op!r}")
        result = await handler(request.args)
        return Response(request.id, True, msgspec.Raw(_encode(result)))
    except QuillError as error:
        body = ErrorBody(error.status, error.message, error.invocation_id, error.source)
    except Exception as exc:  # noqa: BLE001 - a bug must answer the peer, not hang it
        log.exception("op %s failed", request.op)
        body = ErrorBody(500, f"internal error: {exc}", None, "ingress")
    return Response(request.id, False, msgspec.Raw(_encode(body)))


def decode_result(response: Response, result_type: type[T]) -> T:
    """An op's result, or its error raised again as the QuillError it was."""
    if not response.ok:
        error = _decode_error(response.result)
        raise QuillError(error.message, status=error.status, invocation_id=error.invocation_id, source=error.source)
    return msgspec.msgpack.decode(response.result, type=result_type)


class RpcClient:
    """The connection to one peer worker, opened on first use and again after it broke."""

    def __init__(self, name: str, worker: int) -> None:
        self._name = name
        self.worker = worker
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Response]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, op: str, args: Any, result_type: type[T]) -> T:
        """Run ``op`` on the peer; raises its QuillError, or 503 when it cannot be reached."""
        writer = await self._connection()
        request_id = next(self._ids)
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            writer.write(_frame(_encode(Request(request_id, op, msgspec.Raw(_encode(args))))))
            response = await answer
        finally:
            self._waiting.pop(request_id, None)
        return decode_result(response, result_type)

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            connecting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connecting.connect(self._name)  # a local socket: connecting does not block
                reader, writer = await asyncio.open_unix_connection(sock=connecting)
            except OSError as exc:
                connecting.close()
                raise _down(self.worker) from exc
            self._writer = writer
            self._reading = asyncio.ensure_future(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                response = _decode_response(await _read_frame(reader))
                waiter = self._waiting.get(response.id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(response)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for waiter in list(self._waiting.values()):
                if not waiter.done():
                    waiter.set_exception(_down(self.worker))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)


def _down(worker: int) -> Unavailable:
    return Unavailable(f"worker {worker} is unavailable; its partitions answer again once it restarts")
