"""What cluster mode needs from a replicated log, as four small protocols.

The partition core depends on these, never on NATS: JetStream (``engine.log.jetstream``) is one
implementation, and today's embedded log can become another. They are kept small on purpose: the
Jepsen findings on NATS 2.12 (see shared/CLUSTER.md) are a reason to keep another engine pluggable.

- :class:`PartitionLog`: one partition's ordered records. The one write is a *conditional* append
  (the caller names the sequence it believes is last), which is what fences a deposed leader; a
  ``msg_id`` makes a retried append land at most once.
- :class:`LeaseStore`: who leads which partition. Compare-and-set on a revision; the revision of the
  winning campaign is the leader's epoch, which only grows. Liveness only: safety is the log's.
- :class:`SnapshotStore`: RocksDB checkpoints by partition and sequence, so the log can be trimmed.
- :class:`MetadataStore`: cluster-wide keys (deployments, overrides, rules) with compare-and-set
  and a watch, so every node sees the same registry.

Sequences start at 1; ``0`` means "before the first record", so the first append of a fresh
partition says ``expected_last=0``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class PartitionLog(Protocol):
    """One partition's replicated, ordered log of opaque records (encoded :class:`~engine.log.record.Record`)."""

    @property
    def partition(self) -> int: ...

    async def append(self, record: bytes, *, expected_last: int, msg_id: str) -> int:
        """Store ``record`` at ``expected_last + 1`` and return that sequence once it is replicated.

        Retries inside (timeouts, a stream leader that died) resolve to exactly one stored copy:
        a record already stored under ``msg_id`` at that position counts as this append's success.
        Raises :class:`~engine.errors.Fenced` if another record holds the position,
        :class:`~engine.errors.WrongLastSequence` if the log ends before ``expected_last``, and
        :class:`~engine.errors.LogUnavailable` if no quorum answered before the deadline (the
        outcome is then unknown; retrying with the same ``msg_id`` and ``expected_last`` is safe).
        """
        ...

    def read(self, from_seq: int) -> AsyncGenerator[tuple[int, bytes], None]:
        """The records from ``from_seq`` to the last sequence at the time of the call, in order.

        Raises :class:`~engine.errors.Trimmed` if ``from_seq`` is below :meth:`first_sequence`.
        """
        ...

    async def last_sequence(self) -> int:
        """The sequence of the newest record, ``0`` if none was ever appended (trimming keeps it)."""
        ...

    async def first_sequence(self) -> int:
        """The sequence of the oldest retained record; ``last_sequence() + 1`` when none is retained."""
        ...

    async def trim(self, below: int) -> None:
        """Drop every record with a sequence below ``below`` (after a snapshot covering them)."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A view of one partition's lease, timed on the *local* monotonic clock.

    For the holder, ``since`` is taken just before the write that won or renewed the lease, so its
    own view expires first; for an observer it is when the current revision was first seen, so the
    observer's view expires last. A holder acts as leader only while :meth:`valid`.
    """

    partition: int
    node: str
    url: str
    epoch: int  # the revision of the campaign that won: grows with every change of leader
    revision: int  # the revision of the latest write (campaign or renewal): what the next CAS names
    ttl: float
    since: float

    @property
    def expires_at(self) -> float:
        return self.since + self.ttl

    def valid(self, now: float) -> bool:
        return now < self.expires_at


class LeaseStore(Protocol):
    """Per-partition leases by compare-and-set; ``clock`` is the local monotonic clock."""

    clock: Callable[[], float]

    async def current(self, partition: int) -> Lease | None:
        """The lease as stored now (its ``since`` is when this node first saw that revision)."""
        ...

    async def campaign(self, partition: int, node: str, url: str) -> Lease | None:
        """Take the lease if it is free or stale; ``None`` while another holder's lease is live.

        A lease is stale once its revision has not changed for its TTL on this node's clock, so a
        node that just started waits one TTL before it can take a lease it has never seen renewed.
        """
        ...

    async def renew(self, lease: Lease) -> Lease:
        """Extend our lease (same epoch); raises :class:`~engine.errors.LeaseLost` if it changed hands."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up so another node can campaign at once (no-op if it changed hands)."""
        ...

    def watch(self, partition: int) -> AsyncGenerator[Lease | None, None]:
        """The current lease, then every change (``None``: no holder), until the iterator is closed."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored checkpoint of a partition's state after applying every record up to ``sequence``."""

    partition: int
    sequence: int
    size: int


class SnapshotStore(Protocol):
    """Partition checkpoints (opaque byte streams, e.g. a tar of a RocksDB checkpoint)."""

    async def put(self, partition: int, sequence: int, source: BinaryIO) -> SnapshotInfo:
        """Store a snapshot, then delete all but the newest ``keep`` of that partition."""
        ...

    async def get(self, partition: int, sequence: int, sink: BinaryIO) -> SnapshotInfo:
        """Write the snapshot's bytes into ``sink``; :class:`~engine.errors.NotFound` if absent."""
        ...

    async def list(self, partition: int) -> list[SnapshotInfo]:
        """The partition's snapshots, oldest first."""
        ...

    async def delete(self, partition: int, sequence: int) -> None: ...


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    """One metadata key's value at a revision; ``value is None`` reports a deletion in a watch."""

    key: str
    value: bytes | None
    revision: int


class MetadataStore(Protocol):
    """Cluster-wide keys written by compare-and-set and watched by every node."""

    async def get(self, key: str) -> MetadataEntry | None: ...

    async def put(self, key: str, value: bytes, *, expected_revision: int) -> int:
        """Write if the key is at ``expected_revision`` (``0``: must not exist); the new revision.

        Raises :class:`~engine.errors.RevisionMismatch` otherwise.
        """
        ...

    async def delete(self, key: str, *, expected_revision: int) -> None:
        """Delete if the key is at ``expected_revision``; :class:`~engine.errors.RevisionMismatch` otherwise."""
        ...

    async def entries(self) -> list[MetadataEntry]:
        """Every live key, for a node that starts."""
        ...

    def watch(self) -> AsyncGenerator[MetadataEntry, None]:
        """Every live key, then every change (deletions with ``value=None``), until closed."""
        ...
