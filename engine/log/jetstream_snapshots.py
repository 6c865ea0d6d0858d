"""Partition snapshots in a JetStream object store (``QUILL_SNAPSHOTS``, 3 replicas, file storage).

An object is named ``p{partition}/{sequence:020d}`` (zero-padded so names sort by sequence) and
holds whatever byte stream the caller gives, in practice a tar of a RocksDB checkpoint
(:mod:`engine.log.checkpoint`). Chunks of 1 MiB rather than nats-py's 128 KiB: each chunk is one
synchronously replicated publish, so fewer round trips per snapshot. After a put only the newest
``snapshots_kept`` (two) of the partition remain, so a damaged newest one still has a predecessor;
trim the log below the oldest one kept, not the newest, or that predecessor could not be replayed.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectMeta, ObjectMetaOptions, ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from engine.errors import NotFound
from engine.log.interface import SnapshotInfo
from engine.log.jetstream_client import JetStreamSettings, retrying

SNAPSHOTS_BUCKET = "QUILL_SNAPSHOTS"
CHUNK_BYTES = 1024 * 1024


def object_name(partition: int, sequence: int) -> str:
    return f"p{partition}/{sequence:020d}"


class JetStreamSnapshotStore:
    """:class:`~engine.log.interface.SnapshotStore` on JetStream's object store."""

    def __init__(self, store: ObjectStore, settings: JetStreamSettings) -> None:
        self._store = store
        self._settings = settings

    @classmethod
    async def open(cls, js: JetStreamContext, settings: JetStreamSettings) -> JetStreamSnapshotStore:
        config = ObjectStoreConfig(replicas=settings.replicas, storage=StorageType.FILE)
        store = await retrying(
            f"open bucket {SNAPSHOTS_BUCKET}",
            lambda: js.create_object_store(SNAPSHOTS_BUCKET, config=config),
            settings.deadline,
        )
        return cls(store, settings)

    async def put(self, partition: int, sequence: int, source: BinaryIO) -> SnapshotInfo:
        name = object_name(partition, sequence)
        start = source.tell()

        async def put() -> int:
            source.seek(start)  # a retried put sends the whole stream again
            meta = ObjectMeta(name=name, options=ObjectMetaOptions(max_chunk_size=CHUNK_BYTES))
            info = await self._store.put(name, cast(io.BufferedIOBase, source), meta=meta)
            return info.size or 0

        size = await retrying(f"store snapshot {name}", put, self._settings.deadline)
        for old in (await self.list(partition))[: -self._settings.snapshots_kept]:
            await self.delete(partition, old.sequence)
        return SnapshotInfo(partition, sequence, size)

    async def get(self, partition: int, sequence: int, sink: BinaryIO) -> SnapshotInfo:
        name = object_name(partition, sequence)
        start = sink.tell()

        async def get() -> int:
            sink.seek(start)
            sink.truncate()
            try:
                result = await self._store.get(name, writeinto=cast(io.BufferedIOBase, sink))
            except nats.js.errors.ObjectNotFoundError as exc:
                raise NotFound(f"no snapshot {name}") from exc
            return result.info.size or 0

        size = await retrying(f"load snapshot {name}", get, self._settings.deadline)
        return SnapshotInfo(partition, sequence, size)

    async def list(self, partition: int) -> list[SnapshotInfo]:
        prefix = f"p{partition}/"

        async def objects() -> list[SnapshotInfo]:
            try:
                infos = await self._store.list(ignore_deletes=True)
            except nats.js.errors.NotFoundError:
                return []
            return [
                SnapshotInfo(partition, int(info.name[len(prefix) :]), info.size or 0)
                for info in infos
                if info.name.startswith(prefix) and not info.deleted
            ]

        found = await retrying(f"list snapshots of partition {partition}", objects, self._settings.deadline)
        return sorted(found, key=lambda info: info.sequence)

    async def delete(self, partition: int, sequence: int) -> None:
        name = object_name(partition, sequence)

        async def delete() -> None:
            try:
                await self._store.delete(name)
            except nats.js.errors.ObjectNotFoundError:
                pass  # already gone: deleting is idempotent

        await retrying(f"delete snapshot {name}", delete, self._settings.deadline)
