"""Items sent in order, in batches, one batch in flight, each batch again until it goes through.

What cross-process delivery needs (between workers, between cluster leaders): the order per
source is what makes the receiver's "last sequence applied" a complete dedup, so a failed batch is
retried, after a backoff, before anything behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from engine.errors import QuillError

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH = 256
_RETRY_INITIAL, _RETRY_MAX = 0.05, 2.0


class OrderedStream(Generic[T]):
    def __init__(self, name: str, transmit: Callable[[list[T]], Awaitable[None]]) -> None:
        self._name = name
        self._transmit = transmit  # raises QuillError when the batch did not go through
        self._queue: deque[T] = deque()
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"quill-stream-{name}")

    def push(self, item: T) -> None:
        self._queue.append(item)
        self._wakeup.set()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = _RETRY_INITIAL
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue[i] for i in range(min(len(self._queue), BATCH))]
            try:
                await self._transmit(batch)
            except QuillError as exc:
                log.debug("%s: a batch did not go through (%s), again in %.2fs", self._name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_INITIAL
            for _ in batch:
                self._queue.popleft()
