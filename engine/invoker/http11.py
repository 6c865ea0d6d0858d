"""A small HTTP/1.1 keep-alive client for request/response attempts, on httptools' parser.

Profiled on the no-op path, aiohttp's client (cookies, multidicts, tracing hooks, timeout
handles per request) was about a fifth of quill's CPU per invocation. An attempt needs much
less: one POST with a known body to a known host, the status, two headers and the body back.
Framing that request is a few lines; parsing the answer is httptools (the C parser uvicorn uses).
Connections are pooled per host and reused LIFO; a request that fails on a reused connection
before any answer arrived (the server closed it while idle) is sent once more on a new one.
Deadlines are checked by one periodic sweep over the connections in use rather than a timer per
request (``asyncio.timeout`` was a few percent of the no-op path): an attempt may overrun its
abort timeout by up to a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """The request got no complete answer (connect, transport or protocol failure, timeout)."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    def __init__(self, pool: list[_Connection]) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._received = False
        self.closed = False
        self.deadline = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self in self._pool:
            self._pool.remove(self)
        self._fail(HttpError(f"connection closed: {exc!r}" if exc else "connection closed by the server"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = self._answer
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        keep = self._parser.should_keep_alive()
        self._answer, self._headers, self._body = None, {}, []
        if keep and not self.closed:
            self._pool.append(self)
        else:
            self.close()
        if answer is not None and not answer.done():
            answer.set_result(response)

    # -- requests ----------------------------------------------------------------------------
    def send(self, request: bytes, deadline: float) -> asyncio.Future[Response]:
        assert self._transport is not None
        self._received = False
        self.deadline = deadline
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return self._answer

    def expire(self, now: float) -> None:
        """Fail the request in flight if its deadline passed (the connection is closed)."""
        if self._answer is not None and now >= self.deadline:
            self._fail(HttpError("no answer within the attempt's abort timeout"))
            self.close()

    @property
    def answered_nothing(self) -> bool:
        return not self._received

    def _fail(self, error: HttpError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self._answer = None

    def close(self) -> None:
        self.closed = True
        if self in self._pool:
            self._pool.remove(self)
        if self._transport is not None:
            self._transport.close()


class Http11Client:
    def __init__(self, connect_timeout: float = 10.0) -> None:
        self._connect_timeout = connect_timeout
        self._pools: dict[tuple[str, int], list[_Connection]] = {}
        self._in_use: set[_Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def post(self, url: str, headers: Iterable[tuple[str, str]], body: bytes, timeout: float) -> Response:
        """POST ``body``; raises HttpError when no complete answer came within ``timeout``."""
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-length: {len(body)}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers)
        head.append("\r\n")
        request = "".join(head).encode("latin-1") + body
        pool = self._pools.setdefault((host, port), [])
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="quill-http11-deadlines")
        deadline = asyncio.get_running_loop().time() + timeout
        while pool:
            connection = pool.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(connection, request, deadline)
            except HttpError:
                if not connection.answered_nothing:
                    raise
                # Closed by the server while idle: the request never reached it.
        connection = await self._connect(host, port, pool)
        return await self._exchange(connection, request, deadline)

    async def _exchange(self, connection: _Connection, request: bytes, deadline: float) -> Response:
        self._in_use.add(connection)
        try:
            return await connection.send(request, deadline)
        finally:
            self._in_use.discard(connection)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for connection in list(self._in_use):
                connection.expire(now)

    async def _connect(self, host: str, port: int, pool: list[_Connection]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(lambda: _Connection(pool), host, port)
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        return connection

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for connection in list(self._in_use):
            connection.close()
        for pool in self._pools.values():
            for connection in list(pool):
                connection.close()
        self._pools.clear()
