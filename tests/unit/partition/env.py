"""An in-process partition for state-machine tests: a real Store in a temp dir, a runtime that
records the effects, and a clock the test moves (no sockets, no sleeping).

Like Restate's ``state_machine/tests``: apply a command, assert what it asks the world to do.
Deliveries between partitions are executed the way the real runtime does (the target's command
and the outbox delete in one group commit), so multi-partition flows run end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.ids import InvocationId
from engine.partition.commands import (
    AttemptEnding,
    AttemptOutcome,
    CallCompleted,
    Command,
    InvocationSettings,
    Invoke,
    Purge,
    TimerFired,
    recipient,
)
from engine.partition.effects import ArmTimer, Complete, Deliver, Effect, Push, StartAttempt
from engine.partition.processor import Partition
from engine.partition.types import Outcome
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import Target
from engine.storage import keys
from engine.storage.store import Store

T0 = 1_700_000_000_000  # the test clock's epoch (ms)


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Env:
    """N partitions over one store; ``effects`` holds everything they asked for, in order."""

    def __init__(self, path: Path, partitions: int = 2, clock: Clock | None = None) -> None:
        self.path = path
        self.clock = clock or Clock()
        self.store = Store(path)
        self.count = partitions
        self.effects: list[tuple[int, Effect]] = []
        self.timers: list[ArmTimer] = []
        self.completed: dict[str, Outcome] = {}
        self.partitions: list[Partition] = []

    async def __aenter__(self) -> Env:
        self.store.start()
        self.partitions = [Partition(p, self.store, self, self.clock, 1000) for p in range(self.count)]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.store.close()

    # -- the runtime ---------------------------------------------------------------------------
    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        for effect in effects:
            self.effects.append((partition.id, effect))
            if isinstance(effect, ArmTimer):
                self.timers.append(effect)
            elif isinstance(effect, Complete):
                self.completed[effect.invocation_id] = effect.outcome
            elif isinstance(effect, Deliver):
                self.partition_of(recipient(effect.message)).submit_detached(effect.message)
                self.store.delete(keys.OUTBOX, effect.outbox_key)

    # -- driving -------------------------------------------------------------------------------
    def partition_of(self, invocation_id: str) -> Partition:
        return self.partitions[InvocationId(invocation_id).partition_key % self.count]

    async def submit(self, command: Command, partition: Partition | None = None) -> Any:
        """Apply ``command`` where it belongs (its invocation's partition, or ``partition``) and
        wait until it, and what it delivered, is durable."""
        if partition is None:
            partition = self.partition_of(_owner(command))
        result = await partition.submit(command)  # type: ignore[call-overload]
        await self.store.flush()  # deliveries made by its effects
        return result

    async def advance(self, ms: int) -> None:
        """Move the clock and fire the timers that are due, in time order."""
        self.clock.now += ms
        while due := sorted(
            (t for t in self.timers if t.timer.fire_at <= self.clock.now), key=lambda t: t.timer.fire_at
        ):
            for armed in due:
                self.timers.remove(armed)
                timer = armed.timer
                owner = timer.invocation_id or None
                partition = self.partition_of(owner) if owner else self._schedule_owner(timer.schedule)
                await partition.submit(TimerFired(timer))
            await self.store.flush()

    def _schedule_owner(self, schedule_key: bytes | None) -> Partition:
        assert schedule_key is not None
        return self.partitions[int.from_bytes(schedule_key[:2], "big")]

    # -- what happened -------------------------------------------------------------------------
    def started(self, invocation_id: str) -> list[int]:
        """Attempt numbers the partition asked to start for ``invocation_id``."""
        return [e.attempt for _, e in self.effects if isinstance(e, StartAttempt) and e.invocation_id == invocation_id]

    def last_attempt(self, invocation_id: str) -> int:
        attempts = self.started(invocation_id)
        assert attempts, f"no attempt started for {invocation_id}"
        return attempts[-1]

    def pushed(self, invocation_id: str) -> list[int]:
        return [e.message_type for _, e in self.effects if isinstance(e, Push) and e.invocation_id == invocation_id]

    def dump(self) -> dict[str, list[tuple[bytes, bytes]]]:
        """Every committed key/value, by column family."""
        return {column: list(self.store.scan(column, b"")) for column in keys.COLUMN_FAMILIES}


def _owner(command: Command) -> str:
    if isinstance(command, Purge):
        return command.invocation_ids[0]
    if isinstance(command, CallCompleted):
        return recipient(command)
    owner: str = command.invocation_id  # type: ignore[union-attr]
    return owner


# -- commands and SDK messages --------------------------------------------------------------------
PLAIN = InvocationSettings(exclusive=False, workflow_run=False, retention_ms=0)
EXCLUSIVE = InvocationSettings(exclusive=True, workflow_run=False, retention_ms=0)
WORKFLOW = InvocationSettings(exclusive=True, workflow_run=True, retention_ms=60_000)


def invoke(
    target: Target,
    body: bytes = b"",
    *,
    invocation_id: str | None = None,
    settings: InvocationSettings = PLAIN,
    execution_time: int | None = None,
    idempotency_key: str | None = None,
    retention: int | None = None,
    scope: str | None = None,
    limit_key: str | None = None,
) -> Invoke:
    if invocation_id is None:
        if settings.workflow_run:
            invocation_id = InvocationId.for_workflow(target.service, target.key, scope)
        elif idempotency_key is not None:
            invocation_id = InvocationId.for_idempotent(
                target.service, target.object_key, target.handler, idempotency_key, scope
            )
        else:
            invocation_id = InvocationId.for_target(target.service, target.object_key, scope=scope)
    entry = pb.InputCommandMessage(value=pb.Value(content=body)).SerializeToString()
    return Invoke(
        invocation_id=str(invocation_id),
        target=target,
        input_entry=entry,
        execution_time=execution_time,
        exclusive=settings.exclusive,
        retention=settings.retention_ms if retention is None else retention,
        idempotency_key=idempotency_key,
        scope=scope,
        limit_key=limit_key,
    )


def output(value: bytes) -> tuple[int, bytes]:
    return MessageType.OUTPUT_COMMAND, pb.OutputCommandMessage(value=pb.Value(content=value)).SerializeToString()


def sleep(wake_up_time: int, completion_id: int) -> tuple[int, bytes]:
    message = pb.SleepCommandMessage(wake_up_time=wake_up_time, result_completion_id=completion_id)
    return MessageType.SLEEP_COMMAND, message.SerializeToString()


def call(target: Target, body: bytes, *, id_notification: int, result: int) -> tuple[int, bytes]:
    message = pb.CallCommandMessage(
        service_name=target.service,
        handler_name=target.handler,
        key=target.key,
        parameter=body,
        invocation_id_notification_idx=id_notification,
        result_completion_id=result,
    )
    return MessageType.CALL_COMMAND, message.SerializeToString()


def set_state(key: bytes, value: bytes) -> tuple[int, bytes]:
    message = pb.SetStateCommandMessage(key=key, value=pb.Value(content=value))
    return MessageType.SET_STATE_COMMAND, message.SerializeToString()


def get_promise(name: str, completion_id: int) -> tuple[int, bytes]:
    message = pb.GetPromiseCommandMessage(key=name, result_completion_id=completion_id)
    return MessageType.GET_PROMISE_COMMAND, message.SerializeToString()


def complete_promise(name: str, value: bytes, completion_id: int) -> tuple[int, bytes]:
    message = pb.CompletePromiseCommandMessage(
        key=name, completion_value=pb.Value(content=value), result_completion_id=completion_id
    )
    return MessageType.COMPLETE_PROMISE_COMMAND, message.SerializeToString()


def attempt(
    invocation_id: str,
    number: int,
    entries: list[tuple[int, bytes]],
    ending: AttemptEnding = AttemptEnding.END,
    *,
    awaiting: list[int] | None = None,
    targets: dict[str, InvocationSettings] | None = None,
) -> AttemptOutcome:
    return AttemptOutcome(
        invocation_id, number, "dp_test", entries, ending, awaiting_completions=awaiting or [], targets=targets or {}
    )


async def settle() -> None:
    """Let done-callbacks of detached submissions run."""
    await asyncio.sleep(0)
