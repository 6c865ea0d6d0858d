"""The partition log on NATS JetStream: one stream per partition, conditional appends, leader reads.

Stream ``QUILL_P{p}`` holds partition p on subject ``quill.log.p{p}``: 3 replicas, file storage,
records up to :attr:`JetStreamSettings.max_record_bytes`, deletes of single records denied (only
:meth:`JetStreamLog.trim` removes, from the front). The servers must run ``sync_interval: always``:
with NATS' default deferred fsync Jepsen lost acknowledged writes on 2.12.

Append carries ``Nats-Expected-Last-Sequence`` and ``Nats-Msg-Id``. The stream-wide sequence and not
``Nats-Expected-Last-Subject-Sequence``: with one subject per stream both mean the same, but the
stream-wide check runs against the leader's count of proposals in flight (the per-subject one was a
pre-check outside Raft until 2.9.21, nats-server#4320, which let two racing writers in), and it
still holds after a trim removed every record, when the subject has no message left to compare with.

An append whose answer is lost (timeout, the stream leader died, no leader yet) is resolved by
reading position ``expected_last + 1`` from the stream leader: our msg id there means it landed,
another record there means we are fenced, nothing there means resend the same bytes with the same
msg id (the server's duplicate window then absorbs a copy that was still in flight). A resend that
meets "wrong last sequence" is resolved the same way. So each append stores exactly one record.

Only this module and its ``jetstream_*`` siblings import nats: embedded mode never loads them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, Header, StorageType, StreamConfig

from engine.errors import Fenced, LogError, LogUnavailable, PayloadTooLarge, Trimmed, WrongLastSequence
from engine.log.jetstream_client import (
    HEADROOM,
    MESSAGE_NOT_FOUND,
    TRANSIENT,
    WRONG_LAST_SEQUENCE,
    JetStreamSettings,
    connect,
    retrying,
)
from engine.log.jetstream_kv import JetStreamLeaseStore, JetStreamMetadataStore
from engine.log.jetstream_snapshots import JetStreamSnapshotStore

log = logging.getLogger(__name__)


class JetStreamLog:
    """:class:`~engine.log.interface.PartitionLog` of one partition on its JetStream stream."""

    def __init__(self, js: JetStreamContext, partition: int, settings: JetStreamSettings) -> None:
        self._js = js
        self._partition = partition
        self._settings = settings
        self._stream = stream_name(partition)
        self._subject = subject(partition)

    @property
    def partition(self) -> int:
        return self._partition

    async def append(self, record: bytes, *, expected_last: int, msg_id: str) -> int:
        if len(record) > self._settings.max_record_bytes:
            raise PayloadTooLarge(
                f"partition {self._partition}: record of {len(record)} bytes is over the log's limit of "
                f"{self._settings.max_record_bytes}"
            )
        give_up = time.monotonic() + self._settings.deadline
        delay = 0.05
        while True:
            try:
                ack = await self._js.publish(
                    self._subject,
                    record,
                    timeout=self._settings.attempt_timeout,
                    stream=self._stream,
                    headers={Header.EXPECTED_LAST_SEQUENCE: str(expected_last), Header.MSG_ID: msg_id},
                )
            except TRANSIENT as exc:
                log.info("partition %d: append after %d unanswered: %r", self._partition, expected_last, exc)
                landed = await self._resolve(expected_last, msg_id, moved=False, give_up=give_up)
            except nats.js.errors.APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise LogError(f"partition {self._partition}: append refused: {exc.description}") from exc
                landed = await self._resolve(expected_last, msg_id, moved=True, give_up=give_up)
            except nats.errors.ConnectionClosedError as exc:
                raise LogUnavailable(f"partition {self._partition}: the NATS connection is closed") from exc
            else:
                if ack.seq != expected_last + 1:  # only a duplicate ack can name another position
                    raise WrongLastSequence(
                        self._partition, expected_last, ack.seq - 1, f"msg id {msg_id!r} is already stored at {ack.seq}"
                    )
                return ack.seq
            if landed:
                return expected_last + 1
            if time.monotonic() + delay > give_up:
                raise LogUnavailable(
                    f"partition {self._partition}: append after {expected_last} not stored within "
                    f"{self._settings.deadline:g}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _resolve(self, expected_last: int, msg_id: str, *, moved: bool, give_up: float) -> bool:
        """Whether our record is at ``expected_last + 1``; raise if another one is or the log is behind.

        ``False`` means the position is free and the caller resends (same bytes, same msg id).
        """
        position = expected_last + 1
        stored = await self._msg_id_at(position, max(give_up - time.monotonic(), self._settings.attempt_timeout))
        if stored == msg_id:
            log.info("partition %d: append at %d was stored, its answer lost", self._partition, position)
            return True
        if stored is not None:
            raise Fenced(self._partition, expected_last, await self.last_sequence(), f"{stored!r} holds {position}")
        if moved:
            last = await self.last_sequence()
            if last > expected_last:  # the position is gone: trimmed by a newer leader
                raise Fenced(self._partition, expected_last, last, f"{position} was trimmed")
            if last < expected_last:
                raise WrongLastSequence(self._partition, expected_last, last)
        return False

    async def _msg_id_at(self, seq: int, deadline: float) -> str | None:
        """The msg id of the record at ``seq`` as the stream leader has it (``""`` if it has none)."""

        async def get() -> str | None:
            try:
                msg = await self._js.get_msg(self._stream, seq=seq)
            except nats.js.errors.NotFoundError as exc:
                if exc.err_code == MESSAGE_NOT_FOUND:
                    return None
                raise LogError(f"partition {self._partition}: {exc.description}") from exc
            return str((msg.headers or {}).get(Header.MSG_ID, ""))

        return await retrying(f"partition {self._partition}: read {seq}", get, deadline)

    async def read(self, from_seq: int) -> AsyncGenerator[tuple[int, bytes], None]:
        if from_seq < 1:
            raise ValueError(f"sequences start at 1, not {from_seq}")
        first, last = await self._bounds()
        if from_seq < first and from_seq <= last:
            raise Trimmed(self._partition, from_seq, first)
        if from_seq > last:
            return
        subscription = await retrying(
            f"partition {self._partition}: replay from {from_seq}",
            lambda: self._js.subscribe(
                self._subject,
                stream=self._stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=from_seq),
            ),
            self._settings.deadline,
        )
        expected = from_seq
        try:
            while True:
                try:
                    msg = await subscription.next_msg(timeout=self._settings.deadline)
                except nats.errors.TimeoutError as exc:
                    raise LogUnavailable(
                        f"partition {self._partition}: replay stalled for {self._settings.deadline:g}s"
                    ) from exc
                seq = msg.metadata.sequence.stream
                if seq != expected:  # only a trim, racing this read, can open a gap (deletes are denied)
                    raise Trimmed(self._partition, expected, seq)
                yield seq, msg.data
                if seq >= last:
                    return
                expected += 1
        finally:
            await subscription.unsubscribe()

    async def _bounds(self) -> tuple[int, int]:
        async def info() -> tuple[int, int]:
            state = (await self._js.stream_info(self._stream)).state
            return (state.first_seq if state.messages else state.last_seq + 1), state.last_seq

        return await retrying(f"partition {self._partition}: stream info", info, self._settings.deadline)

    async def last_sequence(self) -> int:
        return (await self._bounds())[1]

    async def first_sequence(self) -> int:
        return (await self._bounds())[0]

    async def trim(self, below: int) -> None:
        if below <= 1:
            return  # nothing is below 1 (and a purge without a sequence would empty the stream)
        last = await self.last_sequence()
        if below > last + 1:
            # JetStream would move the stream's last sequence up to below - 1: refuse instead.
            raise ValueError(f"partition {self._partition}: cannot trim below {below}, the log ends at {last}")
        await retrying(
            f"partition {self._partition}: trim below {below}",
            lambda: self._js.purge_stream(self._stream, seq=below),
            self._settings.deadline,
        )


def stream_name(partition: int) -> str:
    return f"QUILL_P{partition}"


def subject(partition: int) -> str:
    return f"quill.log.p{partition}"


class JetStreamCluster:
    """One node's handle on the NATS cluster: partition logs, leases, snapshots, metadata.

    ``async with await JetStreamCluster.connect(settings) as cluster: ...`` closes the connection.
    """

    def __init__(self, client: Client, js: JetStreamContext, settings: JetStreamSettings) -> None:
        self.client = client
        self.js = js
        self.settings = settings

    @classmethod
    async def connect(cls, settings: JetStreamSettings) -> JetStreamCluster:
        """Raises :class:`~engine.errors.UnsupportedServer` for a server too old or without JetStream."""
        client, js = await connect(settings)
        return cls(client, js, settings)

    async def partition_log(self, partition: int) -> JetStreamLog:
        """The partition's log, creating its stream on first use (idempotent for the same config)."""
        config = StreamConfig(
            name=stream_name(partition),
            subjects=[subject(partition)],
            num_replicas=self.settings.replicas,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,  # a full store refuses appends rather than dropping records
            max_msg_size=self.settings.max_record_bytes + HEADROOM,
            duplicate_window=self.settings.duplicate_window,
            deny_delete=True,
        )

        async def add() -> None:
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                raise LogError(f"stream {config.name} exists with another configuration: {exc.description}") from exc

        await retrying(f"create stream {config.name}", add, self.settings.deadline)
        return JetStreamLog(self.js, partition, self.settings)

    async def stream_leader(self, partition: int) -> str | None:
        """The name of the NATS server leading the partition's stream (``None`` during an election)."""
        name = stream_name(partition)
        info = await retrying(f"stream info {name}", lambda: self.js.stream_info(name), self.settings.deadline)
        return info.cluster.leader if info.cluster is not None else None

    async def lease_store(self, clock: Callable[[], float] = time.monotonic) -> JetStreamLeaseStore:
        return await JetStreamLeaseStore.open(self.js, self.settings, clock)

    async def snapshot_store(self) -> JetStreamSnapshotStore:
        return await JetStreamSnapshotStore.open(self.js, self.settings)

    async def metadata_store(self) -> JetStreamMetadataStore:
        return await JetStreamMetadataStore.open(self.js, self.settings)

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> JetStreamCluster:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
