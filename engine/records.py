"""Stored records of partition state, as msgspec Structs (msgpack on disk).

The commands that change them live in ``engine.partition.commands``. Field order is part of the
storage format (``array_like``): append new fields at the end, with defaults.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum

import msgspec


def now_ms() -> int:
    return int(time.time() * 1000)


def timestamp(ms: int, utc_suffix: str = "Z") -> str:
    """RFC 3339 with milliseconds, as Restate renders times."""
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", utc_suffix)


def timestamp_nanos(ms: int) -> str:
    """RFC 3339 with nine fractional digits (millisecond precision), as Restate's executionTime."""
    return timestamp(ms)[:-1] + "000000Z"


class Target(msgspec.Struct, frozen=True, array_like=True):
    service: str
    handler: str
    key: str = ""
    # A virtual object's or workflow's target, set where its key may be empty: Restate allows the
    # empty key. Records written before it have a non-empty key for every keyed target.
    keyed: bool = False

    @property
    def object_key(self) -> str | None:
        """The key of the object or workflow targeted; None for a plain service."""
        return self.key if self.keyed or self.key else None

    def __str__(self) -> str:
        if self.object_key is None:
            return f"{self.service}/{self.handler}"
        return f"{self.service}/{self.key}/{self.handler}"


class Failure(msgspec.Struct, frozen=True, array_like=True):
    code: int
    message: str


class Completion(msgspec.Struct, frozen=True, array_like=True):
    """The outcome of an invocation: exactly one of ``value`` / ``failure``."""

    value: bytes | None = None
    failure: Failure | None = None


class CallerRef(msgspec.Struct, frozen=True, array_like=True):
    """Where a service-to-service call's result goes: the caller and its completion id."""

    invocation_id: str
    completion_id: int


class Attachment(msgspec.Struct, frozen=True, array_like=True):
    """A handler waiting for another invocation's result, and how to notify it."""

    caller: CallerRef
    notification_type: int


class Phase(StrEnum):
    """Where an invocation is in its life (stored by value, so the strings are the format)."""

    SCHEDULED = "scheduled"  # waits for its execution time (a delayed send)
    INBOXED = "inboxed"  # waits in its object's inbox for the lock
    RUNNING = "running"  # an attempt runs, or will start
    SUSPENDED = "suspended"  # waits for a notification its last attempt awaited
    PAUSED = "paused"  # stopped by an operator or by exhausted retries, until resumed
    COMPLETED = "completed"  # done; kept for its retention (idempotency key, workflow id)
    WAITING = "waiting"  # waits for a concurrency slot of its scope / limit key (flow control)

    @property
    def started(self) -> bool:
        return self not in (Phase.SCHEDULED, Phase.INBOXED, Phase.WAITING)


class InvocationStatus(msgspec.Struct, array_like=True):
    """Everything about one invocation but its journal entries."""

    id: str
    target: Target
    phase: Phase
    created_at: int
    modified_at: int
    journal_length: int = 0
    execution_time: int | None = None  # ms since epoch, for delayed sends
    deployment_id: str | None = None  # pinned by the first attempt
    # Notification ids present in the journal, so resumption never re-reads the journal.
    completion_ids: list[int] = []
    signal_ids: list[int] = []
    signal_names: list[str] = []
    # What a suspended invocation waits for (any one of them resumes it).
    awaiting_completions: list[int] = []
    awaiting_signals: list[int] = []
    awaiting_signal_names: list[str] = []
    completion: Completion | None = None
    exclusive: bool = False  # holds (or waits for) its object's lock
    caller: CallerRef | None = None
    retain_until: int | None = None  # completed and kept (workflows, idempotent calls) until then
    retention: int = 0  # ms to keep the completed invocation
    attached: list[Attachment] = []  # handlers waiting for this invocation's result
    idempotency_key: str | None = None
    input_entry: bytes | None = None  # kept with a retained result, for restart-as-new
    # A reentrant call chain (Dapr's Dapr-Reentrancy-Id): calls of the chain holding the lock re-enter.
    reentrancy: str | None = None
    # Flow control: the scope (part of the invocation's identity) and the limit key within it.
    scope: str | None = None
    limit_key: str | None = None
    # Its place in the scope's queues: set when it first asks for a slot and kept after, so an
    # invocation woken from suspension goes before the ones that arrived after it.
    queue_seq: int = 0

    def has_run(self) -> bool:
        """Whether an attempt journaled anything: also true of one that waits for a concurrency
        slot again after a suspension or a pause."""
        return self.phase.started or (self.phase is Phase.WAITING and self.journal_length > 1)


class Promise(msgspec.Struct, array_like=True):
    """A workflow's durable promise: its completion, or who waits for it."""

    completion: Completion | None = None
    waiters: list[CallerRef] = []


class Timer(msgspec.Struct, frozen=True, array_like=True):
    """A durable timer: starts a delayed invocation (completion_id None), ends a sleep, or fires a
    schedule (``schedule`` = its key)."""

    invocation_id: str
    fire_at: int
    completion_id: int | None = None
    schedule: bytes | None = None


class Schedule(msgspec.Struct, array_like=True):
    """A recurring invocation: at ``next_fire`` the partition invokes ``target`` with ``input_entry``
    and moves on by ``period_ms``, ``repetitions`` times (None: until deleted) and not past
    ``expires_at``. ``meta`` is the owner's registration (e.g. a Dapr reminder), opaque here."""

    target: Target
    input_entry: bytes  # serialized InputCommandMessage
    next_fire: int
    period_ms: int | None = None
    repetitions: int | None = 1
    expires_at: int | None = None
    exclusive: bool = True
    meta: bytes = b""

    def advance(self) -> bool:
        """Move to the next firing; False when the schedule is over."""
        if self.repetitions is not None:
            self.repetitions -= 1
        if self.period_ms is None or self.repetitions == 0:
            return False
        self.next_fire += self.period_ms
        return self.expires_at is None or self.next_fire <= self.expires_at


class Deployment(msgspec.Struct, kw_only=True):
    id: str
    uri: str
    use_http_11: bool
    additional_headers: dict[str, str]
    protocol_mode: str  # REQUEST_RESPONSE | BIDI_STREAM
    min_protocol_version: int
    max_protocol_version: int
    protocol_version: int  # the version quill speaks to it
    manifest: dict  # type: ignore[type-arg]  # the discovery manifest, as the SDK sent it
    created_at: int
    sdk_version: str | None = None
    # The revision each service got when this deployment was registered (empty in records written
    # before revisions were kept: those are counted from the registration order).
    revisions: dict[str, int] = msgspec.field(default_factory=dict)
