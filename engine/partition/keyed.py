"""Commands on one object key that are not an invocation: operator state replacement, state
transactions, and recurring invocations (schedules) that fire through durable timers."""

from __future__ import annotations

import hashlib

import msgspec

from engine.ids import InvocationId
from engine.partition.commands import Invoke, ReplaceState, SetSchedule, StateTransaction
from engine.partition.effects import Step
from engine.partition.lifecycle import Lifecycle
from engine.partition.objects import state_version
from engine.partition.state import PartitionState
from engine.partition.types import OperatorOutcome
from engine.records import Schedule, Timer
from engine.storage import keys

_encode = msgspec.msgpack.Encoder().encode
_decode_schedule = msgspec.msgpack.Decoder(Schedule).decode


class KeyedCommands:
    def __init__(self, state: PartitionState, lifecycle: Lifecycle) -> None:
        self._state = state
        self._lifecycle = lifecycle

    def replace_state(self, command: ReplaceState) -> OperatorOutcome:
        """DONE, or LOCKED (an exclusive handler runs) / CONFLICT (version mismatch)."""
        objects = self._state.objects
        obj = keys.object_key(self._state.id, command.service, command.key, command.scope)
        if objects.is_locked(obj):
            return OperatorOutcome.LOCKED
        if command.version is not None and command.version != state_version(objects.all_state(obj)):
            return OperatorOutcome.CONFLICT
        objects.clear_all_state(obj)
        for name, value in command.new_state:
            objects.set_state(obj, name, value)
        return OperatorOutcome.DONE

    def state_transaction(self, command: StateTransaction) -> None:
        # Made by the app during its actor's turn, so the lock the turn holds does not refuse it.
        objects = self._state.objects
        obj = keys.object_key(self._state.id, command.service, command.key)
        for name, value in command.operations:
            if value is None:
                objects.clear_state(obj, name)
            else:
                objects.set_state(obj, name, value)

    def set_schedule(self, command: SetSchedule, step: Step) -> bool:
        """Register or delete; returns whether a schedule of that name existed."""
        store = self._state.store
        key = keys.schedule_key(keys.object_key(self._state.id, command.service, command.key), command.name)
        existed = store.get(keys.SCHEDULES, key) is not None
        if command.schedule is None:
            store.delete(keys.SCHEDULES, key)
            return existed
        store.put(keys.SCHEDULES, key, _encode(command.schedule))
        self._state.add_timer(Timer("", command.schedule.next_fire, schedule=key), step)
        return existed

    def fire(self, timer: Timer, step: Step) -> None:
        """A schedule's timer: invoke its target, then arm the next firing (or forget it)."""
        assert timer.schedule is not None
        store = self._state.store
        raw = store.get(keys.SCHEDULES, timer.schedule)
        if raw is None:
            return  # deleted meanwhile
        schedule = _decode_schedule(raw)
        if schedule.next_fire != timer.fire_at:
            return  # replaced by a newer registration, which armed its own timer
        target = schedule.target
        parent = hashlib.blake2b(timer.schedule, digest_size=24).digest()
        invocation_id = InvocationId.derived(parent, timer.fire_at, target.service, target.object_key)
        self._lifecycle.invoke(
            Invoke(str(invocation_id), target, schedule.input_entry, exclusive=schedule.exclusive), step
        )
        if schedule.advance():
            store.put(keys.SCHEDULES, timer.schedule, _encode(schedule))
            self._state.add_timer(Timer("", schedule.next_fire, schedule=timer.schedule), step)
        else:
            store.delete(keys.SCHEDULES, timer.schedule)

    def read(self, service: str, key: str, name: str) -> Schedule | None:
        raw = self._state.store.get(
            keys.SCHEDULES, keys.schedule_key(keys.object_key(self._state.id, service, key), name)
        )
        return None if raw is None else _decode_schedule(raw)
