"""The replicated log's guarantees, against a real 3-server JetStream cluster with sync_interval: always.

What cluster mode's safety rests on: a conditional append has exactly one winner; a deposed leader
is refused; an append interrupted by the death of its stream leader is stored exactly once; and a
partition rebuilt from a snapshot plus the log's tail equals the leader's state.
"""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import aclosing
from pathlib import Path

import msgspec
import pytest
import rocksdict

from engine.errors import Fenced, LeaseLost, Trimmed, WrongLastSequence
from engine.log.checkpoint import pack_checkpoint, unpack_checkpoint
from engine.log.interface import Lease
from engine.log.jetstream import JetStreamCluster, JetStreamLog, stream_name
from engine.log.record import EpochFence, Record, RecordKind, append_msg_id
from tests.cluster.conftest import settings_for
from tests.cluster.support import NatsCluster

ROUNDS = 200


class ManualClock:
    """A monotonic clock a test moves by hand, so lease expiry needs no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def msg_ids(cluster: JetStreamCluster, partition: int, first: int, last: int) -> list[str]:
    """The Nats-Msg-Id of every stored record from ``first`` to ``last``, read from the stream leader."""
    ids = []
    for seq in range(first, last + 1):
        msg = await cluster.js.get_msg(stream_name(partition), seq=seq)
        ids.append((msg.headers or {})["Nats-Msg-Id"])
    return ids


async def test_racing_appends_have_exactly_one_winner_every_round(nats_cluster: NatsCluster, partition: int) -> None:
    # Two writers on different servers, as two quill nodes would be.
    first = settings_for(nats_cluster, node="a", urls=(nats_cluster.servers[0].url,))
    second = settings_for(nats_cluster, node="b", urls=(nats_cluster.servers[1].url,))
    async with await JetStreamCluster.connect(first) as a, await JetStreamCluster.connect(second) as b:
        log_a, log_b = await a.partition_log(partition), await b.partition_log(partition)
        winners: list[str] = []
        for last in range(ROUNDS):
            outcomes = await asyncio.gather(
                log_a.append(b"a%d" % last, expected_last=last, msg_id=f"a.{last}"),
                log_b.append(b"b%d" % last, expected_last=last, msg_id=f"b.{last}"),
                return_exceptions=True,
            )
            won = [writer for writer, outcome in zip("ab", outcomes, strict=True) if outcome == last + 1]
            refused = [outcome for outcome in outcomes if isinstance(outcome, Fenced)]
            assert len(won) == 1 and len(refused) == 1, f"round {last}: {outcomes}"
            winners.extend(won)
        assert await log_a.last_sequence() == ROUNDS
        stored = await msg_ids(a, partition, 1, ROUNDS)
        assert stored == [f"{writer}.{last}" for last, writer in enumerate(winners)]


async def announce(log: JetStreamLog, lease: Lease, expected_last: int) -> int:
    """What a new leader appends first: AnnounceLeader with its epoch."""
    record = Record.announce_leader(epoch=lease.epoch, node=lease.node, ts_ms=int(time.time() * 1000))
    msg_id = append_msg_id(lease.node, lease.epoch, expected_last)
    return await log.append(record.encode(), expected_last=expected_last, msg_id=msg_id)


async def test_a_deposed_leader_is_refused_after_takeover(nats_cluster: NatsCluster, partition: int) -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    async with (
        await JetStreamCluster.connect(settings_for(nats_cluster, node="a", lease_ttl=5)) as a,
        await JetStreamCluster.connect(settings_for(nats_cluster, node="b", lease_ttl=5)) as b,
    ):
        leases_a, leases_b = await a.lease_store(clock_a), await b.lease_store(clock_b)
        log_a, log_b = await a.partition_log(partition), await b.partition_log(partition)

        lease_a = await leases_a.campaign(partition, "a", "nats://a")
        assert lease_a is not None and lease_a.valid(clock_a())
        assert await announce(log_a, lease_a, expected_last=0) == 1
        lease_a = await leases_a.renew(lease_a)

        assert await leases_b.campaign(partition, "b", "nats://b") is None  # a's lease is live
        clock_b.now += 4.9
        assert await leases_b.campaign(partition, "b", "nats://b") is None  # renewed: b saw a new revision
        clock_b.now += 5.0  # a stops renewing; b's clock runs out a's TTL
        lease_b = await leases_b.campaign(partition, "b", "nats://b")
        assert lease_b is not None and lease_b.epoch > lease_a.epoch

        assert await announce(log_b, lease_b, expected_last=await log_b.last_sequence()) == 2

        # a still believes it leads at sequence 1: the log refuses it, and so does the lease store.
        late = Record.commands(epoch=lease_a.epoch, node="a", ts_ms=3, payload=b"late")
        with pytest.raises(Fenced) as fenced:
            await log_a.append(late.encode(), expected_last=1, msg_id=append_msg_id("a", lease_a.epoch, 1))
        assert fenced.value.actual == 2
        with pytest.raises(LeaseLost):
            await leases_a.renew(lease_a)
        assert (await leases_a.current(partition)) is not None
        assert (await leases_a.current(partition)).epoch == lease_b.epoch  # type: ignore[union-attr]

        # A log that ends before what the writer expects is not a fence but a broken invariant.
        with pytest.raises(WrongLastSequence) as behind:
            await log_b.append(b"x", expected_last=7, msg_id="b.x")
        assert not isinstance(behind.value, Fenced) and behind.value.actual == 2


async def test_a_retried_append_whose_first_attempt_landed_is_stored_once(
    js_cluster: JetStreamCluster, partition: int
) -> None:
    log = await js_cluster.partition_log(partition)
    assert await log.append(b"one", expected_last=0, msg_id="m1") == 1
    assert await log.append(b"one", expected_last=0, msg_id="m1") == 1  # the answer was lost: retried
    assert await log.append(b"two", expected_last=1, msg_id="m2") == 2
    assert await log.append(b"one", expected_last=0, msg_id="m1") == 1  # a very late retry
    assert await log.last_sequence() == 2
    with pytest.raises(Fenced):
        await log.append(b"other", expected_last=0, msg_id="m3")


async def test_trim_and_read_bounds(js_cluster: JetStreamCluster, partition: int) -> None:
    log = await js_cluster.partition_log(partition)
    assert (await log.first_sequence(), await log.last_sequence()) == (1, 0)
    for last in range(3):
        await log.append(b"r%d" % (last + 1), expected_last=last, msg_id=f"t.{last}")
    await log.trim(below=0)
    await log.trim(below=1)  # neither may purge anything (JetStream's purge without a sequence empties the stream)
    assert await log.first_sequence() == 1
    with pytest.raises(ValueError, match="cannot trim below 5"):
        await log.trim(below=5)
    await log.trim(below=2)
    assert (await log.first_sequence(), await log.last_sequence()) == (2, 3)

    async def read(from_seq: int) -> list[tuple[int, bytes]]:
        async with aclosing(log.read(from_seq)) as records:
            return [record async for record in records]

    with pytest.raises(Trimmed, match="records below 2 were trimmed"):
        await read(1)
    assert await read(2) == [(2, b"r2"), (3, b"r3")]
    assert await read(4) == []


@pytest.mark.parametrize(
    "victim",
    [
        "leader",  # the append never reaches a live server: it must be resent
        "writer's server",  # the append is stored but its answer dies with the server: it must not be resent
    ],
)
async def test_an_append_interrupted_by_a_sigkill_is_stored_exactly_once(
    nats_cluster: NatsCluster, partition: int, victim: str
) -> None:
    async with await JetStreamCluster.connect(settings_for(nats_cluster)) as probe:
        await (await probe.partition_log(partition)).append(b"first", expected_last=0, msg_id="w.0")
        leader = nats_cluster.server(str(await probe.stream_leader(partition)))
    follower = next(server for server in nats_cluster.servers if server is not leader)
    frozen = leader if victim == "leader" else follower
    # The writer talks to a follower, which passes the append on to the stream leader. Freeze the victim
    # once the follower has taken the append (it answered a PING sent after it), then SIGKILL it.
    async with await JetStreamCluster.connect(settings_for(nats_cluster, node="w", urls=(follower.url,))) as writer:
        log = await writer.partition_log(partition)
        append = asyncio.create_task(log.append(b"second", expected_last=1, msg_id="w.1"))
        await asyncio.sleep(0)  # the task sends its request
        await writer.client.flush()
        frozen.freeze()
        frozen.kill()
        started = time.monotonic()
        assert await append == 2
        print(f"append resolved {time.monotonic() - started:.1f}s after killing the {victim}")
        assert await log.last_sequence() == 2
        assert await msg_ids(writer, partition, 1, 2) == ["w.0", "w.1"]
    nats_cluster.restart(frozen)


async def test_appends_under_a_stream_leader_sigkill_lose_nothing_and_store_nothing_twice(
    nats_cluster: NatsCluster,
) -> None:
    """Writers on 4 partitions append without pause; the server leading most of their streams is killed."""
    partitions = [100 + i for i in range(4)]
    async with await JetStreamCluster.connect(settings_for(nats_cluster, node="w")) as cluster:
        logs = [await cluster.partition_log(p) for p in partitions]
        leaders = [await cluster.stream_leader(p) for p in partitions]
        victim = nats_cluster.server(str(max(set(leaders), key=leaders.count)))
        acknowledged: dict[int, list[tuple[int, str]]] = {p: [] for p in partitions}
        ack_times: list[float] = []
        killed = asyncio.Event()
        enough = asyncio.Event()

        async def write(log: JetStreamLog) -> None:
            last = 0
            after_kill = 0
            while after_kill < 20:
                msg_id = append_msg_id("w", 1, last)
                last = await log.append(msg_id.encode(), expected_last=last, msg_id=msg_id)
                acknowledged[log.partition].append((last, msg_id))
                ack_times.append(time.monotonic())
                if last == 30:
                    enough.set()
                after_kill += killed.is_set()

        writers = asyncio.gather(*(write(log) for log in logs))
        await enough.wait()
        victim.kill()
        kill_time = time.monotonic()
        killed.set()
        await writers
        gap = max(b - a for a, b in zip(ack_times, ack_times[1:], strict=False) if b > kill_time)
        print(f"longest gap between acknowledged appends after killing {victim.name}: {gap:.2f}s")
        for p, log in zip(partitions, logs, strict=True):
            last = await log.last_sequence()
            stored = await msg_ids(cluster, p, 1, last)
            assert len(set(stored)) == len(stored) == last  # nothing twice
            assert [seq for seq, _ in acknowledged[p]] == list(range(1, last + 1))  # every position acknowledged
            assert all(stored[seq - 1] == msg_id for seq, msg_id in acknowledged[p])  # and holding what we wrote
    nats_cluster.restart(victim)


class KeyValueMachine:
    """A tiny state machine on RocksDB: each commands record is a msgpack list of [key, value] puts."""

    APPLIED = b"\x00applied"
    EPOCH = b"\x00epoch"

    def __init__(self, path: Path) -> None:
        self.db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
        applied, epoch = self.db.get(self.APPLIED), self.db.get(self.EPOCH)
        self.applied = int(applied) if applied else 0
        self.fence = EpochFence(int(epoch) if epoch else 0)

    def apply(self, seq: int, data: bytes) -> None:
        record = Record.decode(data)
        batch = rocksdict.WriteBatch(raw_mode=True)
        if self.fence.admit(record) and record.kind is RecordKind.COMMANDS:
            for key, value in msgspec.msgpack.decode(record.payload, type=list[tuple[bytes, bytes]]):
                batch.put(key, value)
        batch.put(self.APPLIED, str(seq).encode())
        batch.put(self.EPOCH, str(self.fence.epoch).encode())
        self.db.write(batch)
        self.applied = seq

    def contents(self) -> dict[bytes, bytes]:
        return dict(self.db.items())


async def test_snapshot_trim_restore_and_replay_rebuild_the_leaders_rocksdb(
    js_cluster: JetStreamCluster, partition: int, tmp_path: Path
) -> None:
    log = await js_cluster.partition_log(partition)
    snapshots = await js_cluster.snapshot_store()
    leader = KeyValueMachine(tmp_path / "leader")

    async def append(record: Record) -> None:
        msg_id = append_msg_id("n", record.epoch, leader.applied)
        seq = await log.append(record.encode(), expected_last=leader.applied, msg_id=msg_id)
        leader.apply(seq, record.encode())

    await append(Record.announce_leader(epoch=7, node="n", ts_ms=0))
    for i in range(1, 60):
        puts = [(b"k%d" % (i % 13), b"v%d" % i), (b"n%d" % i, b"x" * i)]
        await append(Record.commands(epoch=7, node="n", ts_ms=i, payload=msgspec.msgpack.encode(puts)))
        if i in (20, 30, 40):
            packed = io.BytesIO()
            await asyncio.to_thread(pack_checkpoint, leader.db, tmp_path / "scratch", packed)
            packed.seek(0)
            await snapshots.put(partition, leader.applied, packed)
            kept = await snapshots.list(partition)
            await log.trim(below=kept[0].sequence + 1)  # below the oldest snapshot kept, not the newest
    assert [snapshot.sequence for snapshot in await snapshots.list(partition)] == [31, 41]
    assert await log.first_sequence() == 32 and await log.last_sequence() == 60
    with pytest.raises(Trimmed):
        async with aclosing(log.read(1)) as records:
            async for _ in records:
                pass

    # A node with no local data: newest snapshot, then the log from the record after it.
    newest = (await snapshots.list(partition))[-1]
    with (tmp_path / "download.tar").open("w+b") as download:
        await snapshots.get(partition, newest.sequence, download)
        download.seek(0)
        await asyncio.to_thread(unpack_checkpoint, download, tmp_path / "replica")
    replica = KeyValueMachine(tmp_path / "replica")
    assert replica.applied == newest.sequence
    async with aclosing(log.read(replica.applied + 1)) as records:
        async for seq, data in records:
            replica.apply(seq, data)
    assert replica.applied == leader.applied == 60
    assert replica.contents() == leader.contents()
    assert replica.fence.epoch == 7

    # Trimming everything keeps the sequence: the next append still names the true last one.
    await log.trim(below=61)
    assert await log.first_sequence() == 61
    assert await log.append(b"after", expected_last=60, msg_id="n.7.60") == 61
    replica.db.close()
    leader.db.close()
