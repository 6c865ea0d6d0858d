"""This worker's place among its peers: the local socket it serves, the connections to the
others, cross-worker delivery, and the metadata kept the same on every worker.

Worker 0 serves the admin API and so owns the metadata: each change it commits is sent to every
other worker, which writes it into its own store and reloads, before the admin call answers. A
worker that (re)starts asks worker 0 for the whole metadata, retrying until it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from engine.errors import QuillError, Unavailable
from engine.partition.commands import recipient
from engine.storage.metadata import Change, Metadata
from engine.workers.delivery import DeliverBatch, Deliverer
from engine.workers.handles import LocalHandle, partition_ops
from engine.workers.layout import WorkerPlan
from engine.workers.rpc import RpcClient, RpcServer, socket_name

log = logging.getLogger(__name__)

METADATA_OWNER = 0
_SYNC_RETRY = 0.2

_decode_batch = msgspec.msgpack.Decoder(DeliverBatch).decode
_decode_changes = msgspec.msgpack.Decoder(list[tuple[bytes, bytes | None]]).decode

WorkerOp = Callable[[], Awaitable[Any]]


class WorkerNode:
    def __init__(
        self,
        plan: WorkerPlan,
        meta: Metadata,
        local: dict[int, LocalHandle],
        partition_count: int,
        reload: Callable[[], None],
        gather_ops: dict[str, WorkerOp],
    ) -> None:
        self.plan = plan
        self._meta = meta
        self._local = local
        self._partitions = partition_count
        self._reload = reload  # re-read the registry and the Dapr apps from the store
        self.peers = {w: RpcClient(socket_name(plan.namespace, w), w) for w in range(plan.count) if w != plan.index}
        self.deliverer = Deliverer(meta.store, self.peers)
        handlers = {
            **partition_ops(local),
            "deliver": self._on_deliver,
            "meta_put": self._on_meta_put,
            "meta_snapshot": self._on_meta_snapshot,
        }
        for name, op in gather_ops.items():
            handlers[name] = _no_args(op)
        self._server = RpcServer(socket_name(plan.namespace, plan.index), handlers)
        self._sync: asyncio.Task[None] | None = None
        if plan.index == METADATA_OWNER:
            meta.replicate = self._replicate

    def worker_of(self, partition: int) -> int:
        return partition % self.plan.count

    async def serve(self) -> None:
        """Answer the peers: only once this worker's partitions are recovered, since a delivery
        applied to a partition still loading its state would be lost by the load. (The
        deliverer is started before recovery, which may send.)"""
        await self._server.start()
        if self.plan.index != METADATA_OWNER:
            self._sync = asyncio.get_running_loop().create_task(self._catch_up(), name="quill-metadata-sync")

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
            await asyncio.gather(self._sync, return_exceptions=True)
        await self.deliverer.stop()
        await self._server.stop()
        for peer in self.peers.values():
            await peer.close()

    async def gather(self, op: str, result_type: type[Any]) -> list[Any]:
        """``op``'s answer from every other worker (those that are up)."""
        answers = await asyncio.gather(
            *(peer.call(op, None, result_type) for peer in self.peers.values()), return_exceptions=True
        )
        found: list[Any] = []
        for worker, answer in zip(self.peers, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("worker %d did not answer %s: %s", worker, op, answer)
                continue
            found.append(answer)
        return found

    # -- delivery ----------------------------------------------------------------------------
    async def _on_deliver(self, raw: msgspec.Raw) -> None:
        from engine.ids import InvocationId

        batch = _decode_batch(raw)
        pending = []
        for delivered in batch.messages:
            partition = InvocationId(recipient(delivered.message)).partition_key % self._partitions
            handle = self._local.get(partition)
            if handle is None:
                raise Unavailable(f"partition {partition} is not served by worker {self.plan.index}")
            pending.append(handle.partition.submit(delivered))
        await asyncio.gather(*pending)

    # -- metadata ----------------------------------------------------------------------------
    async def _replicate(self, changes: list[Change]) -> None:
        results = await asyncio.gather(
            *(peer.call("meta_put", changes, type(None)) for peer in self.peers.values()), return_exceptions=True
        )
        for worker, result in zip(self.peers, results, strict=True):
            if isinstance(result, BaseException):
                # It catches up from worker 0 when it (re)starts.
                log.warning("worker %d missed a metadata change (%s); it syncs when it is back", worker, result)

    async def _on_meta_put(self, raw: msgspec.Raw) -> None:
        self._meta.apply(_decode_changes(raw))
        await self._meta.store.flush()
        self._reload()

    async def _on_meta_snapshot(self, raw: msgspec.Raw) -> list[Change]:
        return self._meta.snapshot()

    async def _catch_up(self) -> None:
        owner = self.peers[METADATA_OWNER]
        while True:
            try:
                entries = await owner.call("meta_snapshot", None, list[tuple[bytes, bytes | None]])
            except QuillError:
                await asyncio.sleep(_SYNC_RETRY)
                continue
            self._meta.replace(entries)
            await self._meta.store.flush()
            self._reload()
            return


def _no_args(op: WorkerOp) -> Callable[[msgspec.Raw], Awaitable[Any]]:
    async def handle(raw: msgspec.Raw) -> Any:
        return await op()

    return handle
