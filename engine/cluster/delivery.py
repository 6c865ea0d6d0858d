"""Messages between partitions in cluster mode: deliver, dedup, truncate, over the leaders.

As between workers (``engine.workers.delivery``), but every partition has its own store and its
own leader: the source leader sends ``Delivered(source, sequence, message)`` to the target's
leader, wherever it runs; the target applies it once (its last-sequence table) and answers when
its record is replicated; the source then logs ``OutboxDone`` so every replica forgets the
message. A source that loses its leadership drops its queues: the next leader redelivers its
outbox, and the targets' dedup absorbs what had already arrived.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.ids import InvocationId
from engine.partition.commands import Delivered, Message, OutboxDone, recipient
from engine.storage import keys
from engine.workers.handles import LocalHandle, PartitionHandle
from engine.workers.stream import OrderedStream


class ClusterDeliverer:
    def __init__(self, partitions: int, handle: Callable[[int], PartitionHandle]) -> None:
        self._partitions = partitions
        self._handle = handle
        self._streams: dict[tuple[int, int], OrderedStream[Delivered]] = {}

    def send(self, source: int, outbox_key: bytes, message: Message) -> None:
        target = InvocationId(recipient(message)).partition_key % self._partitions
        pair = (source, target)
        stream = self._streams.get(pair)
        if stream is None:
            stream = self._streams[pair] = OrderedStream(f"deliver-p{source}-p{target}", self._sender(source, target))
        stream.push(Delivered(source, keys.outbox_sequence(outbox_key), message))

    async def forget(self, source: int) -> None:
        """``source`` is no longer led here: stop sending its messages."""
        for pair in [p for p in self._streams if p[0] == source]:
            await self._streams.pop(pair).stop()

    async def stop(self) -> None:
        for stream in self._streams.values():
            await stream.stop()
        self._streams.clear()

    def _sender(self, source: int, target: int) -> Callable[[list[Delivered]], Awaitable[None]]:
        async def transmit(batch: list[Delivered]) -> None:
            await self._handle(target).deliver(batch)
            sender = self._handle(source)
            if isinstance(sender, LocalHandle):  # else no longer led here: forget() is on its way
                await sender.submit(OutboxDone([delivered.sequence for delivered in batch]))

        return transmit
