"""The partition core's in-memory types and the answers its commands give."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from engine.ids import InvocationId
from engine.records import Completion, InvocationStatus, Phase, Target
from engine.storage import keys

JournalEntry = tuple[int, bytes]  # (message type, protobuf payload)


class OperatorOutcome(StrEnum):
    """What a partition answers to an operator's request on one invocation."""

    DONE = "done"  # done now (cancelled or killed before it started, paused, resumed, replaced)
    SIGNALLED = "signalled"  # cancel delivered: the handler sees it at its next await
    PURGED = "purged"
    NOT_FOUND = "not_found"
    COMPLETED = "completed"  # already completed
    RUNNING = "running"  # not completed yet (purge)
    NOT_RUNNING = "not_running"  # neither running nor suspended (pause)
    NOT_STARTED = "not_started"  # scheduled or inboxed (resume)
    LOCKED = "locked"  # the object's lock is held (state replacement)
    CONFLICT = "conflict"  # the expected state version is outdated


class Outcome(NamedTuple):
    """A finished invocation as callers see it; ``expires`` is when a retained result goes."""

    completion: Completion
    expires: int | None
    target: Target


class InvokeResult(NamedTuple):
    created: bool
    existing: Outcome | None = None  # the retained result of an earlier, finished invocation


class InvocationView(NamedTuple):
    phase: Phase
    outcome: Outcome | None


class AttemptSnapshot(NamedTuple):
    status: InvocationStatus
    journal: list[JournalEntry]
    raw_id: bytes
    state: list[tuple[bytes, bytes]] | None  # the object's whole state, for eager state


class Active:
    """An invocation that has not completed, with its journal cached in memory."""

    __slots__ = ("status", "journal", "attempt", "raw_id", "key", "object")

    def __init__(self, partition: int, status: InvocationStatus, journal: list[JournalEntry]) -> None:
        self.status = status
        self.journal = journal
        self.attempt = 0
        self.raw_id = InvocationId(status.id).to_bytes()
        self.key = keys.invocation_key(partition, self.raw_id)
        target = status.target
        keyed = target.object_key is not None
        self.object = keys.object_key(partition, target.service, target.key, status.scope) if keyed else None
