"""A partition's log replays into the same RocksDB contents as its leader's: after a snapshot and a
trim, a node with no data restores the snapshot, replays the rest, and matches byte for byte."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.cluster.appender import LogAppender
from engine.cluster.catchup import catch_up
from engine.log.checkpoint import pack_checkpoint
from engine.log.jetstream import JetStreamCluster
from engine.partition.commands import AttemptEnding
from engine.partition.effects import Effect, StartAttempt
from engine.partition.processor import Partition
from engine.records import Target
from engine.storage import keys
from engine.storage.store import Store
from tests.unit.partition.env import EXCLUSIVE, Clock, attempt, invoke, output, set_state, sleep


class Recorder:
    def __init__(self) -> None:
        self.started: list[StartAttempt] = []

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        self.started.extend(e for e in effects if isinstance(e, StartAttempt))


def _dump(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    return {column: list(store.scan(column, b"")) for column in keys.COLUMN_FAMILIES}


async def test_snapshot_trim_restore_replay_matches_the_leader(
    js_cluster: JetStreamCluster, partition: int, tmp_path: Path
) -> None:
    partition_log = await js_cluster.partition_log(partition)
    snapshots = await js_cluster.snapshot_store()
    store = Store(tmp_path / "leader")
    store.start()
    appender = LogAppender(partition_log, "n-test", epoch=1, last=0)
    store.put(keys.META, keys.APPLIED_KEY, appender.position(await appender.announce()))
    await store.flush()
    store.appender = appender
    recorder, clock = Recorder(), Clock()
    leader = Partition(partition, store, recorder, clock, 1000)

    async def work(label: str) -> None:
        for i in range(5):
            command = invoke(Target("Counter", "add", f"{label}{i % 2}"), bytes([i]), settings=EXCLUSIVE)
            await leader.submit(command)
            clock.now += 7
        for started in list(recorder.started):
            recorder.started.remove(started)
            entries = [set_state(b"n", started.invocation_id.encode()), output(b"ok")]
            if started.invocation_id.endswith("0"):
                entries = [sleep(clock.now + 60_000, 1)]
                await leader.submit(attempt(started.invocation_id, started.attempt, entries, AttemptEnding.SUSPEND))
                continue
            await leader.submit(attempt(started.invocation_id, started.attempt, entries))
            clock.now += 3

    await work("a")
    # A snapshot of the leader's store, then the log trimmed below it.
    await store.flush()
    snapshot_at = appender.last
    with (tmp_path / "snapshot.tar").open("w+b") as packed:
        pack_checkpoint(store.database, tmp_path / "scratch", packed)
        packed.seek(0)
        await snapshots.put(partition, snapshot_at, packed)
    await partition_log.trim(snapshot_at + 1)
    assert await partition_log.first_sequence() == snapshot_at + 1
    await work("b")  # more records after the snapshot
    await store.flush()
    expected = _dump(store)
    store.appender = None
    await store.close()

    # A node with no data: the log alone cannot rebuild it (trimmed), the snapshot and the rest can.
    restored, position = await catch_up(partition, tmp_path / "fresh", partition_log, snapshots, 1000)
    try:
        assert position.sequence == appender.last
        assert _dump(restored) == expected
    finally:
        await restored.close()
