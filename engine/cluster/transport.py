"""Requests to a partition's leader over NATS request/reply, on subject ``quill.rpc.p{p}``.

The same request frames and ops as between workers (``engine.workers.rpc``, ``partition_ops``),
another transport: the leader subscribes to its partitions' subjects (in a queue group, so a
leader that has not noticed it was deposed yet never answers twice). While a partition has no
leader a request waits, retrying, up to its deadline, then fails with a retryable 503.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from engine.errors import Unavailable
from engine.workers.rpc import Handler, Request, Response, answer, decode_result

log = logging.getLogger(__name__)

T = TypeVar("T")
_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(Request).decode
_decode_response = msgspec.msgpack.Decoder(Response).decode
_QUEUE = "leader"


def subject(partition: int) -> str:
    return f"quill.rpc.p{partition}"


class LeaderClient:
    """Asks whoever leads ``partition`` (the ``call`` of ``engine.workers.rpc.RpcClient``)."""

    def __init__(self, client: Client, partition: int, deadline: float) -> None:
        self._client = client
        self._subject = subject(partition)
        self._partition = partition
        self._deadline = deadline
        self._ids = itertools.count(1)

    async def call(self, op: str, args: Any, result_type: type[T]) -> T:
        payload = _encode(Request(next(self._ids), op, msgspec.Raw(_encode(args))))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline
        delay = 0.05
        while True:
            remaining = give_up - loop.time()
            try:
                reply = await self._client.request(self._subject, payload, timeout=max(0.1, min(remaining, 30.0)))
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.errors.ConnectionReconnectingError):
                if loop.time() + delay >= give_up:
                    raise Unavailable(
                        f"partition {self._partition} has no leader; retry when the cluster has elected one"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        return decode_result(_decode_response(reply.data), result_type)


class LeaderServer:
    """Answers the requests for one partition this node leads."""

    def __init__(self, client: Client, partition: int, handlers: dict[str, Handler]) -> None:
        self._client = client
        self._partition = partition
        self._handlers = handlers
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subscription = await self._client.subscribe(subject(self._partition), queue=_QUEUE, cb=self._on_request)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_request(self, message: Msg) -> None:
        # Answered in a task of its own: a request that waits (a call) must not block the next.
        task = asyncio.ensure_future(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Msg) -> None:
        request = _decode_request(message.data)
        response = await answer(self._handlers, request)
        try:
            await message.respond(_encode(response))
        except nats.errors.Error as exc:
            log.warning("partition %d: could not answer %s: %s", self._partition, request.op, exc)
