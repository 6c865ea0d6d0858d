"""Messages between partitions in cluster mode: deliver, dedup, truncate, over the leaders.

As between workers (``engine.workers.delivery``), but every partition has its own store and its
own leader: the source leader sends ``Delivered(source, sequence, message)`` to the target's
leader, wherever it runs; the target applies it once (its last-sequence table) and answers when
its record is replicated; the source then logs ``OutboxDone`` so every replica forgets the
message. A source that loses its leadership drops its queues: the next leader redelivers its
outbox, and the targets' dedup absorbs what had already arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from engine.errors import QuillError
from engine.ids import InvocationId
from engine.partition.commands import Delivered, Message, OutboxDone, recipient
from engine.storage import keys
from engine.workers.handles import LocalHandle, PartitionHandle

log = logging.getLogger(__name__)

_BATCH = 256
_RETRY_INITIAL, _RETRY_MAX = 0.05, 2.0


class ClusterDeliverer:
    def __init__(self, partitions: int, handle: Callable[[int], PartitionHandle]) -> None:
        self._partitions = partitions
        self._handle = handle
        self._queues: dict[tuple[int, int], deque[Delivered]] = {}
        self._wakeups: dict[tuple[int, int], asyncio.Event] = {}
        self._tasks: dict[tuple[int, int], asyncio.Task[None]] = {}

    def send(self, source: int, outbox_key: bytes, message: Message) -> None:
        target = InvocationId(recipient(message)).partition_key % self._partitions
        pair = (source, target)
        if pair not in self._tasks:
            self._queues[pair] = deque()
            self._wakeups[pair] = asyncio.Event()
            self._tasks[pair] = asyncio.get_running_loop().create_task(
                self._stream(pair), name=f"quill-deliver-p{source}-p{target}"
            )
        self._queues[pair].append(Delivered(source, keys.outbox_sequence(outbox_key), message))
        self._wakeups[pair].set()

    async def forget(self, source: int) -> None:
        """``source`` is no longer led here: stop sending its messages."""
        for pair in [p for p in self._tasks if p[0] == source]:
            task = self._tasks.pop(pair)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            del self._queues[pair], self._wakeups[pair]

    async def stop(self) -> None:
        for source in {pair[0] for pair in self._tasks}:
            await self.forget(source)

    async def _stream(self, pair: tuple[int, int]) -> None:
        source, target = pair
        queue, wakeup = self._queues[pair], self._wakeups[pair]
        delay = _RETRY_INITIAL
        while True:
            if not queue:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = [queue[i] for i in range(min(len(queue), _BATCH))]
            try:
                await self._handle(target).deliver(batch)
                sender = self._handle(source)
                if not isinstance(sender, LocalHandle):
                    return  # no longer led here (forget() is on its way)
                await sender.submit(OutboxDone([d.sequence for d in batch]))
            except QuillError as exc:
                log.debug("delivery p%d -> p%d failed (%s), retrying in %.2fs", source, target, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_INITIAL
            for _ in batch:
                queue.popleft()
