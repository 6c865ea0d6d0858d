"""Messages between partitions of different workers: deliver, dedup, truncate.

Two workers have two stores, so the single-batch hand-over of the embedded mode cannot span them.
As Restate's shuffle does: the sender keeps the message in its outbox and sends
``Delivered(source, sequence, message)``; the target applies it once (it remembers the last
sequence applied from each source partition in the same write) and answers when that is durable;
only then does the sender delete its outbox entry. Delivery is at least once, application exactly
once, across a SIGKILL of either side: a restarted sender redelivers its whole outbox in order.

Per target worker one stream of batches in outbox order, one batch in flight: order per source
partition is what makes "last sequence" a complete dedup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from engine.partition.commands import Delivered, Message
from engine.storage import keys
from engine.storage.store import Store
from engine.workers.rpc import RpcClient
from engine.workers.stream import OrderedStream


class DeliverBatch(msgspec.Struct, array_like=True):
    messages: list[Delivered]


class Deliverer:
    def __init__(self, store: Store, peers: dict[int, RpcClient]) -> None:
        self._store = store
        self._peers = peers
        self._streams: dict[int, OrderedStream[tuple[bytes, Delivered]]] = {}

    def start(self) -> None:
        self._streams = {worker: OrderedStream(f"deliver-w{worker}", self._sender(worker)) for worker in self._peers}

    async def stop(self) -> None:
        for stream in self._streams.values():
            await stream.stop()

    def send(self, worker: int, source: int, outbox_key: bytes, message: Message) -> None:
        self._streams[worker].push((outbox_key, Delivered(source, keys.outbox_sequence(outbox_key), message)))

    def _sender(self, worker: int) -> Callable[[list[tuple[bytes, Delivered]]], Awaitable[None]]:
        peer = self._peers[worker]

        async def transmit(batch: list[tuple[bytes, Delivered]]) -> None:
            await peer.call("deliver", DeliverBatch([delivered for _, delivered in batch]), type(None))
            for outbox_key, _ in batch:  # applied there: forget it here
                self._store.delete(keys.OUTBOX, outbox_key)

        return transmit
