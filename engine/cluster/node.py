"""One quill node of a cluster: which partitions it leads, and how it takes and gives them up.

For every partition the node campaigns for the lease whenever it is free or stale. Having won:
bring the partition's store up to the log (snapshot + replay), append ``AnnounceLeader`` for its
epoch, hand the partition to the engine (which recovers it: re-arms timers, restarts running
invocations, redelivers the outbox) and serve its requests. It renews the lease every second; when
a renewal fails, the log refuses an append (another leader appended meanwhile) or the log cannot
be reached, it steps down: the engine fails the partition's waiting callers with a retryable 503,
and the node campaigns again. Every ``snapshot_records`` records or ``snapshot_interval`` seconds a
leader checkpoints the partition's store into the snapshot store and trims the log below the
oldest snapshot it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from engine.cluster.appender import LogAppender, read_position
from engine.cluster.catchup import catch_up
from engine.cluster.metadata import MetadataSync
from engine.cluster.transport import LeaderClient, LeaderServer
from engine.config import Config
from engine.errors import QuillError
from engine.log.checkpoint import pack_checkpoint
from engine.log.interface import Lease
from engine.log.jetstream import JetStreamCluster
from engine.log.jetstream_client import JetStreamSettings
from engine.partition.processor import Partition
from engine.storage import keys
from engine.storage.metadata import Metadata
from engine.storage.store import Store
from engine.workers.rpc import Handler

log = logging.getLogger(__name__)

PARTITIONS_KEY = "cluster/partitions"
_RENEW_EVERY = 1.0
_RELEASE_TIMEOUT = 2.0


class Engine(Protocol):
    """What the node needs of the engine it serves partitions for."""

    def adopt(self, partition: Partition) -> dict[str, Handler]:
        """Serve ``partition`` here (recover it); the ops its leader answers."""
        ...

    async def release(self, partition_id: int) -> None:
        """Stop serving a partition (its callers get a retryable 503)."""
        ...

    def new_partition(self, partition_id: int, store: Store) -> Partition: ...


class ClusterNode:
    def __init__(self, config: Config, meta: Metadata, reload: Callable[[], None]) -> None:
        assert config.cluster is not None
        self._config = config
        self.name = config.node_name
        self._settings = JetStreamSettings(urls=tuple(config.cluster.split(",")), node=self.name)
        self._meta = meta
        self._reload = reload
        self._directory = Path(config.data_dir) / "partitions"
        self._tasks: list[asyncio.Task[None]] = []
        self.leading: dict[int, Lease] = {}
        self.cluster: JetStreamCluster
        self._connected = False
        self._sync: MetadataSync | None = None
        self.partitions = 0

    async def connect(self, partitions: int) -> int:
        """Join the cluster; the partition count (the cluster's, fixed by its first node)."""
        self.cluster = await JetStreamCluster.connect(self._settings)
        self._connected = True
        bucket = await self.cluster.metadata_store()
        stored = await bucket.get(PARTITIONS_KEY)
        if stored is None or stored.value is None:
            with contextlib.suppress(QuillError):  # another node's first start won the race
                await bucket.put(PARTITIONS_KEY, str(partitions).encode(), expected_revision=0)
            stored = await bucket.get(PARTITIONS_KEY)
        assert stored is not None and stored.value is not None
        self.partitions = int(stored.value)
        self._sync = MetadataSync(bucket, self._meta, self._reload)
        await self._sync.start()
        self._leases = await self.cluster.lease_store()
        self._snapshots = await self.cluster.snapshot_store()
        return self.partitions

    def leader(self, partition: int) -> LeaderClient:
        return LeaderClient(self.cluster.client, partition, deadline=self._config.cluster_request_deadline)

    def start(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._lead_forever(engine, p), name=f"quill-lead-p{p}") for p in range(self.partitions)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sync is not None:
            await self._sync.stop()
        if self._connected:
            await self.cluster.close()

    # -- leadership ----------------------------------------------------------------------------
    async def _lead_forever(self, engine: Engine, partition: int) -> None:
        ttl = self._settings.lease_ttl
        while True:
            try:
                lease = await self._leases.campaign(partition, self.name, "")
            except QuillError as exc:
                log.warning("partition %d: campaign failed: %s", partition, exc)
                lease = None
            if lease is None:
                await asyncio.sleep(ttl / 2 * (0.5 + random.random()))
                continue
            try:
                await self._lead(engine, partition, lease)
            except QuillError as exc:
                log.warning("partition %d: stepping down (%s)", partition, exc)
            except Exception:  # noqa: BLE001 - a bug in leading must give the partition up, loudly
                log.exception("partition %d: leading failed; stepping down", partition)

    async def _lead(self, engine: Engine, partition: int, lease: Lease) -> None:
        started = time.monotonic()
        partition_log = await self.cluster.partition_log(partition)
        store, position = await catch_up(
            partition, self._directory / f"p{partition}", partition_log, self._snapshots,
            self._config.log_retained_entries,
        )  # fmt: skip
        server: LeaderServer | None = None
        try:
            appender = LogAppender(partition_log, self.name, lease.epoch, position.sequence)
            sequence = await appender.announce()
            store.put(keys.META, keys.APPLIED_KEY, appender.position(sequence))
            await store.flush()
            store.appender = appender
            served = engine.new_partition(partition, store)
            server = LeaderServer(self.cluster.client, partition, engine.adopt(served))
            await server.start()
            self.leading[partition] = lease
            log.info(
                "partition %d: leading at epoch %d (from record %d, %.2fs)",
                partition, lease.epoch, sequence, time.monotonic() - started,
            )  # fmt: skip
            await self._hold(partition, lease, store, served, appender)
        finally:
            self.leading.pop(partition, None)
            if server is not None:
                await server.stop()
            await engine.release(partition)
            with contextlib.suppress(Exception):
                await store.close()
            # Bounded: a node that stops while the cluster is gone must not hang on it; the
            # lease then simply expires.
            with contextlib.suppress(QuillError, TimeoutError):
                await asyncio.wait_for(self._leases.release(lease), _RELEASE_TIMEOUT)

    async def _hold(self, partition: int, lease: Lease, store: Store, served: Partition, appender: LogAppender) -> None:
        """Renew until something says this node no longer leads (raises to step down)."""
        snapshot_at, snapshot_time = appender.last, time.monotonic()
        while True:
            await asyncio.sleep(_RENEW_EVERY)
            if served.failure is not None or store.refused is not None:
                raise QuillError(f"the partition stopped: {served.failure or store.refused}")
            lease = await self._leases.renew(lease)
            self.leading[partition] = lease
            due = appender.last - snapshot_at >= self._config.snapshot_records
            if due or time.monotonic() - snapshot_time >= self._config.snapshot_interval:
                if appender.last > snapshot_at:
                    await self._snapshot(partition, store)
                snapshot_at, snapshot_time = appender.last, time.monotonic()

    async def _snapshot(self, partition: int, store: Store) -> None:
        await store.flush()
        sequence = read_position(store.get(keys.META, keys.APPLIED_KEY)).sequence
        scratch = self._directory / "scratch"
        with tempfile.TemporaryFile(dir=self._directory) as packed:
            await asyncio.to_thread(pack_checkpoint, store.database, scratch, packed)
            packed.seek(0)
            await self._snapshots.put(partition, sequence, packed)
        kept = await self._snapshots.list(partition)
        partition_log = await self.cluster.partition_log(partition)
        await partition_log.trim(kept[0].sequence + 1)
        log.info(
            "partition %d: snapshot at record %d; the log is kept from %d", partition, sequence, kept[0].sequence + 1
        )
