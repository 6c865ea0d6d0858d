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

import asyncio
import logging
from collections import deque

import msgspec

from engine.errors import QuillError
from engine.partition.commands import Delivered, Message
from engine.storage import keys
from engine.storage.store import Store
from engine.workers.rpc import RpcClient

log = logging.getLogger(__name__)

_BATCH = 256
_RETRY_INITIAL, _RETRY_MAX = 0.05, 2.0


class DeliverBatch(msgspec.Struct, array_like=True):
    messages: list[Delivered]


class Deliverer:
    def __init__(self, store: Store, peers: dict[int, RpcClient]) -> None:
        self._store = store
        self._peers = peers
        self._queues: dict[int, deque[tuple[bytes, Delivered]]] = {w: deque() for w in peers}
        self._wakeups: dict[int, asyncio.Event] = {w: asyncio.Event() for w in peers}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._stream(worker), name=f"quill-deliver-w{worker}") for worker in self._peers
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def send(self, worker: int, source: int, outbox_key: bytes, message: Message) -> None:
        delivered = Delivered(source, keys.outbox_sequence(outbox_key), message)
        self._queues[worker].append((outbox_key, delivered))
        self._wakeups[worker].set()

    async def _stream(self, worker: int) -> None:
        queue, wakeup, peer = self._queues[worker], self._wakeups[worker], self._peers[worker]
        delay = _RETRY_INITIAL
        while True:
            if not queue:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = [queue[i] for i in range(min(len(queue), _BATCH))]
            try:
                await peer.call("deliver", DeliverBatch([d for _, d in batch]), type(None))
            except QuillError as exc:
                # The target is down or its partition stopped: keep the order, try again later.
                log.debug("delivery to worker %d failed (%s), retrying in %.2fs", worker, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_INITIAL
            for _ in batch:
                outbox_key, _ = queue.popleft()
                self._store.delete(keys.OUTBOX, outbox_key)
