"""Bringing a partition's local store up to its log before this node leads it.

The store remembers the last record it applied (with the epoch fence). If the log was trimmed
past that (a node that was down long, or a new node with no data), the newest snapshot replaces
the store first. Then every record after it is applied again through the same deterministic apply
the leader ran, its effects dropped: they happened when the leader applied it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path

import msgspec

from engine.cluster.appender import Position, decode_entries, read_position
from engine.errors import LogError
from engine.log.checkpoint import unpack_checkpoint
from engine.log.interface import PartitionLog, SnapshotStore
from engine.log.record import EpochFence, Record, RecordKind
from engine.partition.commands import LogEntry
from engine.partition.effects import Effect
from engine.partition.processor import Partition
from engine.records import now_ms
from engine.storage import keys
from engine.storage.store import Store

log = logging.getLogger(__name__)

_decode_entry = msgspec.msgpack.Decoder(LogEntry).decode
_encode = msgspec.msgpack.Encoder().encode
_FLUSH_EVERY = 500  # records between local flushes while replaying


class _Drop:
    """The runtime of a replay: what the leader did then is not done again."""

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        pass


async def catch_up(
    partition_id: int, directory: Path, partition_log: PartitionLog, snapshots: SnapshotStore, retained: int
) -> tuple[Store, Position]:
    """The partition's store, started, with every record of its log applied."""
    store = Store(directory)
    store.start()
    position = read_position(store.get(keys.META, keys.APPLIED_KEY))
    if position.sequence + 1 < await partition_log.first_sequence():
        await store.close()
        await _restore(partition_id, directory, snapshots)
        store = Store(directory)
        store.start()
        position = read_position(store.get(keys.META, keys.APPLIED_KEY))
    replayer = Partition(partition_id, store, _Drop(), now_ms, retained)
    replayer.load()
    fence = EpochFence(position.epoch)
    applied = 0
    async with aclosing(partition_log.read(position.sequence + 1)) as records:
        async for sequence, raw in records:
            record = Record.decode(raw)
            if fence.admit(record) and record.kind is RecordKind.COMMANDS:
                for entry in decode_entries(record.payload):
                    replayer.replay(_decode_entry(entry))
            position = Position(sequence, fence.epoch)
            store.put(keys.META, keys.APPLIED_KEY, _encode(position))
            applied += 1
            if applied % _FLUSH_EVERY == 0:
                await store.flush()
    await store.flush()
    if applied:
        log.info("partition %d: replayed %d records up to %d", partition_id, applied, position.sequence)
    return store, position


async def _restore(partition_id: int, directory: Path, snapshots: SnapshotStore) -> None:
    found = await snapshots.list(partition_id)
    if not found:
        raise LogError(f"partition {partition_id}: the log was trimmed but no snapshot covers it")
    latest = found[-1]
    with tempfile.TemporaryFile(dir=directory.parent) as packed:
        await snapshots.get(partition_id, latest.sequence, packed)
        packed.seek(0)
        await asyncio.to_thread(unpack_checkpoint, packed, directory)
    log.info("partition %d: restored the snapshot at record %d", partition_id, latest.sequence)
