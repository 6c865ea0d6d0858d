"""The commands a partition applies: what its log holds, one ``LogEntry`` each.

Every command is created outside the partition (by the facade, the invoker, a timer or another
partition's outbox) and carries everything apply needs, so applying the same log to an empty store
always produces the same state: the time comes from the entry's ``ts``, stamped once when the
command is logged, and the settings of a call's target are resolved before the command is made.
Field order is part of the storage format (``array_like``): append new fields at the end.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from engine.limits.rules import LimitRule
from engine.records import CallerRef, Completion, Failure, Schedule, Target, Timer


class InvocationSettings(msgspec.Struct, frozen=True, array_like=True):
    """What the partition must know about a target handler (resolved from the schema)."""

    exclusive: bool  # takes the object's lock (exclusive object handler, workflow run)
    workflow_run: bool  # the run handler of a workflow: once per key
    retention_ms: int  # how long a completed idempotent / workflow invocation is kept
    virtual_object: bool = False  # a virtual object's handler (those cannot be scoped)
    keyed: bool = False  # a virtual object's or workflow's handler: its target has a key, maybe empty


class AttemptEnding(StrEnum):
    """How an attempt's part of the journal ends. ``OPEN``: a bidi attempt journals as it goes."""

    END = "end"
    SUSPEND = "suspend"
    ERROR = "error"
    INCOMPLETE = "incomplete"  # the stream closed without End, Suspension or Error
    OPEN = "open"


class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    invocation_id: str
    target: Target
    input_entry: bytes  # serialized InputCommandMessage, journal entry 0
    execution_time: int | None = None
    exclusive: bool = False  # takes the object's lock (exclusive object handler, workflow run)
    caller: CallerRef | None = None
    retention: int = 0  # ms to keep the completed invocation (workflow run, idempotent); 0 = forget it
    idempotency_key: str | None = None
    reentrancy: str | None = None  # the reentrant chain this call belongs to
    reentrancy_limit: int = 0  # how deep that chain may go on one object
    scope: str | None = None  # flow control: the scope (validated), part of the id's identity
    limit_key: str | None = None  # canonical "l1" or "l1/l2"; only with a scope


class AttemptOutcome(msgspec.Struct, tag="attempt", array_like=True):
    """What one attempt produced: new journal entries and how it ended."""

    invocation_id: str
    attempt: int
    deployment_id: str
    entries: list[tuple[int, bytes]]  # (message type, payload) in arrival order
    ending: AttemptEnding
    awaiting_completions: list[int] = []
    awaiting_signals: list[int] = []
    awaiting_signal_names: list[str] = []
    # Settings of every handler the entries call or send to ("service/handler"); absent = unknown.
    targets: dict[str, InvocationSettings] = {}


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
    scope: str | None = None  # a scoped workflow's state is another object's


class StateTransaction(msgspec.Struct, tag="state_transaction", array_like=True):
    """State operations on one object, applied together: (name, value) upserts, (name, None) deletes."""

    service: str
    key: str
    operations: list[tuple[bytes, bytes | None]]


class SetLimits(msgspec.Struct, tag="set_limits", array_like=True):
    """The rule book's enabled rules as of its ``version``, sent to every partition when it
    changes: rules reach apply as commands, so admission decisions replay the same."""

    version: int
    rules: list[LimitRule]


class SetSchedule(msgspec.Struct, tag="set_schedule", array_like=True):
    """Register (or, with None, delete) the recurring invocation ``name`` of one object."""

    service: str
    key: str
    name: str
    schedule: Schedule | None


# Commands another partition's outbox delivers: the invocation they are for decides where they go.
Message = Invoke | CallCompleted | Signal | Terminate | Attach


class Delivered(msgspec.Struct, tag="delivered", array_like=True):
    """A message from another worker's partition: applied once, whatever the retries. Messages from
    one source partition arrive in outbox order, so remembering the last sequence applied from
    each source (in the same write as the message's effects) is the whole dedup."""

    source: int  # the sending partition
    sequence: int  # its outbox sequence
    message: Message


class OutboxDone(msgspec.Struct, tag="outbox_done", array_like=True):
    """Messages of this partition's outbox that their targets applied (by outbox sequence): a
    command, so that every replica of the partition forgets them too."""

    sequences: list[int]


Command = (
    Invoke
    | Delivered
    | OutboxDone
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
    | SetLimits
)


def recipient(message: Message) -> str:
    """The invocation id whose partition applies ``message``."""
    if isinstance(message, CallCompleted):
        return message.caller.invocation_id
    return message.invocation_id


class LogEntry(msgspec.Struct, array_like=True):
    """One applied command and the time it was applied at (the partition's clock, stamped once)."""

    ts: int
    command: Command
