"""Stored records and log commands, as msgspec Structs (msgpack on disk).

Commands are what the partition log holds; records are the partition state derived from them.
Field order is part of the storage format (``array_like``): append new fields at the end, with
defaults.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

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

    def __str__(self) -> str:
        return f"{self.service}/{self.key}/{self.handler}" if self.key else f"{self.service}/{self.handler}"


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


class InvocationStatus(msgspec.Struct, array_like=True):
    """Everything about one invocation but its journal entries."""

    id: str
    target: Target
    phase: str  # scheduled | inboxed | running | suspended | completed
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


class Promise(msgspec.Struct, array_like=True):
    """A workflow's durable promise: its completion, or who waits for it."""

    completion: Completion | None = None
    waiters: list[CallerRef] = []


class Timer(msgspec.Struct, frozen=True, array_like=True):
    """A durable timer: starts a delayed invocation (completion_id None) or ends a sleep."""

    invocation_id: str
    fire_at: int
    completion_id: int | None = None
    schedule: bytes | None = None  # a Dapr actor reminder or timer (its key) instead of an invocation


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


# -- log commands ----------------------------------------------------------------------------
class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    invocation_id: str
    target: Target
    input_entry: bytes  # serialized InputCommandMessage, journal entry 0
    execution_time: int | None = None
    exclusive: bool = False  # takes the object's lock (exclusive object handler, workflow run)
    caller: CallerRef | None = None
    retention: int = 0  # ms to keep the completed invocation (workflow run, idempotent); 0 = forget it
    idempotency_key: str | None = None


class AttemptOutcome(msgspec.Struct, tag="attempt", array_like=True):
    """What one attempt produced: new journal entries and how it ended."""

    invocation_id: str
    attempt: int
    deployment_id: str
    entries: list[tuple[int, bytes]]  # (message type, payload) in arrival order
    ending: str  # end | suspend | error | incomplete
    awaiting_completions: list[int] = []
    awaiting_signals: list[int] = []
    awaiting_signal_names: list[str] = []


class TimerFired(msgspec.Struct, tag="timer", array_like=True):
    timer: Timer


class CallCompleted(msgspec.Struct, tag="call_completed", array_like=True):
    """A result for a caller's journal: a call's result, an attach, or a get-output answer."""

    caller: CallerRef
    completion: Completion | None  # None: get-output of an invocation that is not done yet
    notification_type: int = 0x800D  # CallCompletionNotificationMessage


class Attach(msgspec.Struct, tag="attach", array_like=True):
    """A handler attaches to (``wait``) or asks for the output of another invocation."""

    invocation_id: str
    caller: CallerRef
    wait: bool
    notification_type: int


class Signal(msgspec.Struct, tag="signal", array_like=True):
    """Completes an awakeable (signal index >= 17), a named signal, or cancels (index 1)."""

    invocation_id: str
    index: int | None
    name: str | None
    value: bytes | None = None
    failure: Failure | None = None


class Pause(msgspec.Struct, tag="pause", array_like=True):
    """Stop running an invocation (operator request, or retries exhausted) until resumed."""

    invocation_id: str
    resume: bool = False


class Terminate(msgspec.Struct, tag="terminate", array_like=True):
    """Cancel (graceful: the handler sees a cancellation and may compensate) or kill (immediate)."""

    invocation_id: str
    kill: bool


class Purge(msgspec.Struct, tag="purge", array_like=True):
    """Forget completed invocations: those whose retention ended (``expired``), or one on request."""

    invocation_ids: list[str]
    expired: bool


class ReplaceState(msgspec.Struct, tag="replace_state", array_like=True):
    """An operator overwrites a virtual object's whole state (admin ``POST /services/{s}/state``)."""

    service: str
    key: str
    new_state: list[tuple[bytes, bytes]]
    version: str | None = None


class StateTransaction(msgspec.Struct, tag="state_transaction", array_like=True):
    """Dapr actor state operations, applied together: (name, value) upserts, (name, None) deletes."""

    service: str
    key: str
    operations: list[tuple[bytes, bytes | None]]


class SetSchedule(msgspec.Struct, tag="set_schedule", array_like=True):
    """Register (``schedule`` = an encoded ``engine.reminders.Schedule``) or delete (None) an actor
    reminder or timer."""

    service: str
    key: str
    kind: str
    name: str
    schedule: bytes | None


Command = (
    Invoke
    | Pause
    | SetSchedule
    | AttemptOutcome
    | TimerFired
    | CallCompleted
    | Signal
    | Terminate
    | Attach
    | Purge
    | ReplaceState
    | StateTransaction
)
