"""What applying a command asks of the world, as data.

The partition core never acts on the world itself: apply returns these values and the runtime
(``engine.runtime``) executes them once the write that produced them is durable, so nothing is
observed before it is safe. Tests record them instead (tests/unit/partition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from engine.records import Timer

if TYPE_CHECKING:
    from engine.partition.commands import Message
    from engine.partition.types import Outcome


class StartAttempt(NamedTuple):
    """Run attempt ``attempt`` of a running invocation (a stale number is ignored by then)."""

    invocation_id: str
    attempt: int


class ArmTimer(NamedTuple):
    """Fire ``TimerFired(timer)`` at ``timer.fire_at`` (the timer is durable already)."""

    timer: Timer


class Deliver(NamedTuple):
    """Hand ``message`` (staged in the outbox under ``outbox_key``) to its partition."""

    outbox_key: bytes
    message: Message


class Complete(NamedTuple):
    """Answer the callers waiting on an invocation (ingress /call and /attach)."""

    invocation_id: str
    outcome: Outcome


class Push(NamedTuple):
    """Write a journaled notification to the open stream of a bidi attempt, if it still listens."""

    invocation_id: str
    attempt: int
    message_type: int
    payload: bytes


Effect = StartAttempt | ArmTimer | Deliver | Complete | Push


class Step:
    """One command being applied: its time (from the log entry) and the effects it asks for."""

    __slots__ = ("now", "effects")

    def __init__(self, now: int) -> None:
        self.now = now
        self.effects: list[Effect] = []
