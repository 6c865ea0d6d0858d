"""The partition processor: the one writer of a partition's state.

Commands are applied synchronously, in submission order, each assigned the next LSN. Applying a
command stages the log entry and every state change it causes into the store's current group
commit, so the log entry and its effect on state become durable in one atomic write. What the
outside world may observe (starting an attempt, answering a caller, arming a timer, delivering a
message to another partition) is an effect, released only after that write is durable. A crash
therefore loses a suffix of commands whose effects nobody has seen, and recovery needs no replay:
the state on disk is always the state after the last durable LSN.

What the SDK's commands mean (state, timers, calls, promises, signals) is applied by
:class:`engine.journal.JournalApplier`; this module owns the invocation lifecycle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import msgspec

from engine.dapr.actors import ACTOR_PREFIX, actor_target, is_actor, reentrancy_id
from engine.dapr.reminders import Schedule
from engine.ids import InvocationId
from engine.invoker.attempt import JournalEntry
from engine.partition.journal import JournalApplier, set_completion
from engine.partition.objects import ObjectTable, state_version
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import (
    Attach,
    Attachment,
    AttemptOutcome,
    CallCompleted,
    Command,
    Completion,
    Failure,
    InvocationStatus,
    Invoke,
    Pause,
    Purge,
    ReplaceState,
    SetSchedule,
    Signal,
    StateTransaction,
    Target,
    Terminate,
    Timer,
    TimerFired,
    now_ms,
)
from engine.storage import keys
from engine.storage.store import Store

log = logging.getLogger(__name__)

Effect = Callable[[], None]
Push = Callable[[int, bytes], None]

_encode = msgspec.msgpack.Encoder().encode
_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode
_decode_timer = msgspec.msgpack.Decoder(Timer).decode
_decode_command = msgspec.msgpack.Decoder(Command).decode
_decode_schedule = msgspec.msgpack.Decoder(Schedule).decode


class HandlerInfo(NamedTuple):
    exclusive: bool
    workflow_run: bool
    retention_ms: int


class Runtime(Protocol):
    """What a partition asks of the rest of the engine, always after a durable commit."""

    def start_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None: ...

    def arm_timer(self, partition: Partition, timer: Timer) -> None: ...

    def deliver(self, source: Partition, outbox_key: bytes, command: Command) -> None: ...

    def handler_info(self, service: str, handler: str) -> HandlerInfo | None: ...

    def reentrancy_limit(self, actor_type: str) -> int: ...


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
        self.object = keys.object_key(partition, target.service, target.key) if target.key else None


class Outcome(NamedTuple):
    """A finished invocation as callers see it; ``expires`` is when a retained result goes."""

    completion: Completion
    expires: int | None
    target: Target


class InvokeResult(NamedTuple):
    created: bool
    existing: Outcome | None = None  # the retained result of an earlier, finished invocation


class InvocationView(NamedTuple):
    phase: str
    outcome: Outcome | None


class AttemptSnapshot(NamedTuple):
    status: InvocationStatus
    journal: list[JournalEntry]
    raw_id: bytes
    state: list[tuple[bytes, bytes]] | None  # the object's whole state, for eager state


class Partition:
    def __init__(self, partition_id: int, store: Store, runtime: Runtime, log_retained_entries: int) -> None:
        self.id = partition_id
        self.store = store
        self.runtime = runtime
        self.objects = ObjectTable(partition_id, store)
        self._log_retained = log_retained_entries
        self._lsn = self._last_sequence(keys.LOG)
        self._outbox_sequence = self._last_sequence(keys.OUTBOX)
        self.active: dict[str, Active] = {}
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._journal = JournalApplier(self)
        self._streams: dict[str, tuple[int, Push]] = {}  # live bidi attempts, by invocation

    # -- public API ------------------------------------------------------------------------
    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Apply ``command`` now; the future resolves with its result once it is durable."""
        effects: list[Effect] = []
        result = self._apply(command, effects)
        self._lsn += 1
        self.store.put(keys.LOG, keys.log_key(self.id, self._lsn), _encode(command))
        if self._lsn % self._log_retained == 0:
            # Log and state commit atomically, so old entries serve only inspection: keep a tail.
            self.store.delete_range(
                keys.LOG, keys.log_key(self.id, 0), keys.log_key(self.id, self._lsn - self._log_retained)
            )
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def release(error: Exception | None) -> None:
            if error is not None:
                if not done.done():
                    done.set_exception(error)
                return
            for effect in effects:
                effect()
            if not done.done():
                done.set_result(result)

        self.store.after_commit(release)
        return done

    def submit_detached(self, command: Command) -> None:
        """Apply ``command`` for nobody waiting on its answer; a failure is logged, never lost."""
        self.submit(command).add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and (error := done.exception()) is not None:
            log.error("a command nobody waits for failed: %s", error, exc_info=error)

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Outcome]:
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(waiter)
        return waiter

    def forget_waiter(self, invocation_id: str, waiter: asyncio.Future[Outcome]) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[invocation_id]

    def open_stream(self, invocation_id: str, attempt: int, push: Push) -> None:
        """A bidi attempt listens: durable notifications for it are pushed as they happen."""
        self._streams[invocation_id] = (attempt, push)

    def close_stream(self, invocation_id: str, attempt: int) -> None:
        if self._streams.get(invocation_id, (None,))[0] == attempt:
            del self._streams[invocation_id]

    def view(self, invocation_id: InvocationId) -> InvocationView | None:
        """The phase of an invocation, with its result once completed (and retained)."""
        active = self.active.get(invocation_id)
        if active is not None:
            return InvocationView(active.status.phase, None)
        retained = self._retained(invocation_id)
        if retained is None or retained.completion is None:
            return None
        return InvocationView("completed", Outcome(retained.completion, retained.retain_until, retained.target))

    def retained(self, invocation_id: str) -> InvocationStatus | None:
        """A completed invocation kept for its retention."""
        return self._retained(invocation_id)

    def _retained(self, invocation_id: str) -> InvocationStatus | None:
        raw = self.store.get(keys.STATUS, keys.invocation_key(self.id, InvocationId(invocation_id).to_bytes()))
        return None if raw is None else _decode_status(raw)

    def snapshot(self, invocation_id: str, attempt: int) -> AttemptSnapshot | None:
        """What attempt ``attempt`` needs to start, or None if that attempt is stale."""
        active = self.active.get(invocation_id)
        if active is None or active.attempt != attempt or active.status.phase != "running":
            return None
        state = self.objects.all_state(active.object) if active.object is not None else None
        return AttemptSnapshot(active.status, list(active.journal), active.raw_id, state)

    def recover(self) -> None:
        """Reload unfinished invocations, locks and timers; running invocations get a new attempt."""
        prefix = keys.partition_prefix(self.id)
        self.objects.load()
        for _, value in self.store.scan(keys.STATUS, prefix):
            status = _decode_status(value)
            if status.phase == "completed":
                continue
            active = Active(self.id, status, [])
            active.journal = [
                (int.from_bytes(raw[:2], "big"), raw[2:]) for _, raw in self.store.scan(keys.JOURNAL, active.key)
            ]
            self.active[status.id] = active
            if status.phase == "running":
                self._next_attempt(active)()
        for _, value in self.store.scan(keys.TIMERS, prefix):
            self.runtime.arm_timer(self, _decode_timer(value))

    def redeliver_outbox(self) -> None:
        """Deliver messages whose delivery a crash interrupted (after every partition recovered)."""
        for key, value in self.store.scan(keys.OUTBOX, keys.partition_prefix(self.id)):
            self.runtime.deliver(self, key, _decode_command(value))

    @property
    def active_count(self) -> int:
        return len(self.active)

    # -- application -------------------------------------------------------------------------
    def _apply(self, command: Command, effects: list[Effect]) -> Any:
        if isinstance(command, AttemptOutcome):
            return self._apply_attempt(command, effects)
        if isinstance(command, Invoke):
            return self._apply_invoke(command, effects)
        if isinstance(command, TimerFired):
            return self._apply_timer(command.timer, effects)
        if isinstance(command, CallCompleted):
            return self._apply_call_completed(command, effects)
        if isinstance(command, Signal):
            return self._apply_signal(command, effects)
        if isinstance(command, Terminate):
            return self._apply_terminate(command, effects)
        if isinstance(command, Attach):
            return self._apply_attach(command, effects)
        if isinstance(command, Purge):
            return self._apply_purge(command)
        if isinstance(command, ReplaceState):
            return self._apply_replace_state(command)
        if isinstance(command, StateTransaction):
            return self._apply_state_transaction(command)
        if isinstance(command, SetSchedule):
            return self._apply_set_schedule(command, effects)
        if isinstance(command, Pause):
            return self._apply_pause(command, effects)
        raise TypeError(f"unknown command {command!r}")

    def _apply_invoke(self, command: Invoke, effects: list[Effect]) -> InvokeResult:
        """Create the invocation, unless one with this (deterministic) id exists or is retained."""
        invocation_id = command.invocation_id
        existing = self.active.get(invocation_id)
        retained = None if existing is not None else self._retained(invocation_id)
        if existing is not None or retained is not None:
            return self._duplicate(command, existing, retained, effects)
        now = now_ms()
        delayed = command.execution_time is not None and command.execution_time > now
        status = InvocationStatus(
            id=invocation_id,
            target=command.target,
            phase="scheduled",
            created_at=now,
            modified_at=now,
            execution_time=command.execution_time,
            exclusive=command.exclusive,
            caller=command.caller,
            retention=command.retention,
            idempotency_key=command.idempotency_key,
        )
        active = Active(self.id, status, [])
        self.active[invocation_id] = active
        self.append(active, MessageType.INPUT_COMMAND, command.input_entry)
        if delayed:
            assert command.execution_time is not None
            self.add_timer(Timer(invocation_id, command.execution_time), effects)
            self._put_status(active)
        else:
            self._start_or_enqueue(active, effects)
        return InvokeResult(True)

    def _duplicate(
        self, command: Invoke, existing: Active | None, retained: InvocationStatus | None, effects: list[Effect]
    ) -> InvokeResult:
        """A repeated idempotent request latches onto the first; a repeated workflow run is refused."""
        outcome = None
        if retained is not None and retained.completion is not None:
            outcome = Outcome(retained.completion, retained.retain_until, retained.target)
        if command.caller is not None:
            if command.idempotency_key is None:
                failure = Failure(409, "the workflow method was already invoked")
                self.send(CallCompleted(command.caller, Completion(failure=failure)), effects)
            elif outcome is not None:
                self.send(CallCompleted(command.caller, outcome.completion), effects)
            elif existing is not None:
                self._attach_to(existing, Attachment(command.caller, MessageType.CALL_COMPLETION))
        return InvokeResult(False, outcome)

    def _attach_to(self, active: Active, attachment: Attachment) -> None:
        active.status.attached = [*active.status.attached, attachment]
        self._put_status(active)

    def _apply_attach(self, command: Attach, effects: list[Effect]) -> None:
        active = self.active.get(command.invocation_id)
        if active is not None:
            if command.wait:
                self._attach_to(active, Attachment(command.caller, command.notification_type))
            else:
                self.send(CallCompleted(command.caller, None, command.notification_type), effects)
            return
        retained = self._retained(command.invocation_id)
        completion = retained.completion if retained is not None else None
        if completion is None:
            completion = Completion(failure=Failure(404, f"invocation '{command.invocation_id}' not found"))
        self.send(CallCompleted(command.caller, completion, command.notification_type), effects)

    def _start_or_enqueue(self, active: Active, effects: list[Effect]) -> None:
        status = active.status
        if status.exclusive and active.object is not None and not self.objects.try_lock(active.object, status.id):
            depth = self._reentrant_depth(active)
            if depth:
                status.exclusive = False  # runs inside the holder's turn, never takes the lock
                actor_type = status.target.service[len(ACTOR_PREFIX) :]
                if depth > self.runtime.reentrancy_limit(actor_type):
                    status.completion = Completion(failure=Failure(500, "maximum stack depth exceeded"))
                    self._complete(active, effects)
                    return
                self._run(active, effects)
                return
            self.objects.enqueue(active.object, self._lsn + 1, status.id)
            status.phase = "inboxed"
            self._put_status(active)
        else:
            self._run(active, effects)

    def _reentrant_depth(self, active: Active) -> int:
        """For a Dapr actor call made from within the turn holding the actor's lock (same
        ``Dapr-Reentrancy-Id`` chain): how deep the chain would be on this actor; else 0."""
        if not is_actor(active.status.target) or active.object is None:
            return 0
        holder = self.active.get(self.objects.holder(active.object) or "")
        chain = reentrancy_id(active.journal[0][1])
        if holder is None or chain is None or chain != reentrancy_id(holder.journal[0][1]):
            return 0
        inside = [
            other
            for other in self.active.values()
            if other.object == active.object
            and other is not active
            and other.status.phase in ("running", "suspended")
            and reentrancy_id(other.journal[0][1]) == chain
        ]
        return len(inside) + 1

    def _run(self, active: Active, effects: list[Effect]) -> None:
        active.status.phase = "running"
        effects.append(self._next_attempt(active))
        self._put_status(active)

    def _apply_timer(self, timer: Timer, effects: list[Effect]) -> None:
        timer_key = self._timer_key(timer)
        if self.store.get(keys.TIMERS, timer_key) is None:
            return  # already fired
        self.store.delete(keys.TIMERS, timer_key)
        if timer.schedule is not None:
            self._fire_schedule(timer, effects)
            return
        active = self.active.get(timer.invocation_id)
        if active is None:
            return
        if timer.completion_id is None:
            if active.status.phase == "scheduled":
                self._start_or_enqueue(active, effects)
            return
        notification = pb.SleepCompletionNotificationMessage(completion_id=timer.completion_id, void=pb.Void())
        self.notify(active, MessageType.SLEEP_COMPLETION, notification.SerializeToString(), effects)

    def _timer_key(self, timer: Timer) -> bytes:
        if timer.schedule is not None:
            raw_id = hashlib.blake2b(timer.schedule, digest_size=24).digest()
        else:
            raw_id = InvocationId(timer.invocation_id).to_bytes()
        return keys.timer_key(self.id, timer.fire_at, raw_id, timer.completion_id)

    # -- Dapr actor reminders and timers -------------------------------------------------------
    def _apply_set_schedule(self, command: SetSchedule, effects: list[Effect]) -> bool:
        """Register or delete; returns whether a schedule of that name existed."""
        key = keys.schedule_key(keys.object_key(self.id, command.service, command.key), command.kind, command.name)
        existed = self.store.get(keys.SCHEDULES, key) is not None
        if command.schedule is None:
            self.store.delete(keys.SCHEDULES, key)
            return existed
        self.store.put(keys.SCHEDULES, key, command.schedule)
        self.add_timer(Timer("", _decode_schedule(command.schedule).next_fire, schedule=key), effects)
        return existed

    def read_schedule(self, service: str, key: str, kind: str, name: str) -> Schedule | None:
        raw = self.store.get(keys.SCHEDULES, keys.schedule_key(keys.object_key(self.id, service, key), kind, name))
        return None if raw is None else _decode_schedule(raw)

    def _fire_schedule(self, timer: Timer, effects: list[Effect]) -> None:
        assert timer.schedule is not None
        raw = self.store.get(keys.SCHEDULES, timer.schedule)
        if raw is None:
            return  # deleted meanwhile
        schedule = _decode_schedule(raw)
        if schedule.next_fire != timer.fire_at:
            return  # replaced by a newer registration, which armed its own timer
        target = actor_target(
            schedule.actor_type,
            schedule.actor_id,
            f"{'remind' if schedule.kind == 'reminder' else 'timer'}/{schedule.name}",
        )
        entry = pb.InputCommandMessage(
            headers=[pb.Header(key="content-type", value="application/json")],
            value=pb.Value(content=schedule.delivery()),
        )
        invocation_id = InvocationId.for_target(target.service, target.key)
        self._apply_invoke(Invoke(str(invocation_id), target, entry.SerializeToString(), exclusive=True), effects)
        if schedule.advance():
            self.store.put(keys.SCHEDULES, timer.schedule, _encode(schedule))
            self.add_timer(Timer("", schedule.next_fire, schedule=timer.schedule), effects)
        else:
            self.store.delete(keys.SCHEDULES, timer.schedule)

    def _apply_call_completed(self, command: CallCompleted, effects: list[Effect]) -> None:
        active = self.active.get(command.caller.invocation_id)
        if active is None or command.caller.completion_id in active.status.completion_ids:
            return
        # Call, attach and get-output notifications share one layout.
        notification: pb.CallCompletionNotificationMessage | pb.GetInvocationOutputCompletionNotificationMessage
        if command.completion is None:
            notification = pb.GetInvocationOutputCompletionNotificationMessage(
                completion_id=command.caller.completion_id, void=pb.Void()
            )
        else:
            notification = pb.CallCompletionNotificationMessage(completion_id=command.caller.completion_id)
            set_completion(notification, command.completion)
        self.notify(active, command.notification_type, notification.SerializeToString(), effects)

    def _apply_signal(self, command: Signal, effects: list[Effect]) -> None:
        active = self.active.get(command.invocation_id)
        if active is None:
            return
        status = active.status
        if command.index is not None:
            if command.index in status.signal_ids:
                return  # an awakeable completes once
            notification = pb.SignalNotificationMessage(idx=command.index)
        else:
            notification = pb.SignalNotificationMessage(name=command.name or "")
        if command.failure is not None:
            notification.failure.CopyFrom(pb.Failure(code=command.failure.code, message=command.failure.message))
        elif command.value is not None:
            notification.value.content = command.value
        else:
            notification.void.SetInParent()
        self.notify(active, MessageType.SIGNAL_NOTIFICATION, notification.SerializeToString(), effects)

    def _apply_pause(self, command: Pause, effects: list[Effect]) -> str:
        """ "done", or why not: "completed", "not_found", "not_started" (resume), "not_running" (pause)."""
        active = self.active.get(command.invocation_id)
        if active is None:
            return "completed" if self._retained(command.invocation_id) is not None else "not_found"
        status = active.status
        if command.resume:
            if status.phase != "paused":
                return "not_started" if status.phase in ("scheduled", "inboxed") else "done"
            self._run(active, effects)
            return "done"
        if status.phase not in ("running", "suspended"):
            return "done" if status.phase == "paused" else "not_running"
        status.phase = "paused"
        active.attempt += 1  # whatever attempt is in flight is stale from now on
        self._put_status(active)
        return "done"

    def _apply_terminate(self, command: Terminate, effects: list[Effect]) -> str:
        """Returns "done" (completed now), "signalled" (cancel delivered), "completed" or "not_found"."""
        active = self.active.get(command.invocation_id)
        if active is None:
            return "completed" if self._retained(command.invocation_id) is not None else "not_found"
        status = active.status
        for callee in self._pending_callees(active):
            # As in Restate, cancelling or killing a caller does the same to the calls it awaits.
            self.send(Terminate(callee, command.kill), effects)
        if not command.kill and status.phase in ("running", "suspended", "paused"):
            # The SDK turns the built-in CANCEL signal into a terminal error at its next await
            # (a paused invocation sees it once resumed, as in Restate).
            self._apply_signal(Signal(status.id, 1, None), effects)
            return "signalled"
        if status.phase == "inboxed" and active.object is not None:
            self.objects.remove_from_inbox(active.object, status.id)
        status.completion = Completion(failure=Failure(409, "killed" if command.kill else "cancelled"))
        self._complete(active, effects)
        return "done"

    @staticmethod
    def _pending_callees(active: Active) -> list[str]:
        """Ids of the invocations this one called (not one-way sends) whose result has not come back."""
        awaited: dict[int, int] = {}  # invocation-id notification index -> result completion id
        callees: dict[int, str] = {}
        for message_type, payload in active.journal:
            if message_type == MessageType.CALL_COMMAND:
                call = pb.CallCommandMessage.FromString(payload)
                awaited[call.invocation_id_notification_idx] = call.result_completion_id
            elif message_type == MessageType.CALL_INVOCATION_ID_COMPLETION:
                notification = pb.CallInvocationIdCompletionNotificationMessage.FromString(payload)
                callees[notification.completion_id] = notification.invocation_id
        done = set(active.status.completion_ids)
        return [callees[idx] for idx, result in awaited.items() if idx in callees and result not in done]

    def _apply_purge(self, command: Purge) -> str:
        """ "purged", or why not: "running" (not completed yet) or "not_found"."""
        result = "not_found"
        now = now_ms()
        for invocation_id in command.invocation_ids:
            if invocation_id in self.active:
                result = "running"
                continue
            retained = self._retained(invocation_id)
            if retained is None or retained.retain_until is None:
                continue
            if command.expired and retained.retain_until > now:
                continue  # retention was extended since the sweep read it
            raw_id = InvocationId(invocation_id).to_bytes()
            self.store.delete(keys.STATUS, keys.invocation_key(self.id, raw_id))
            self.store.delete(keys.EXPIRY, keys.expiry_key(self.id, retained.retain_until, raw_id))
            result = "purged"
        return result

    def _apply_replace_state(self, command: ReplaceState) -> str:
        """ "replaced", or "locked" (an exclusive handler runs) / "conflict" (version mismatch)."""
        obj = keys.object_key(self.id, command.service, command.key)
        if self.objects.is_locked(obj):
            return "locked"
        if command.version is not None and command.version != state_version(self.objects.all_state(obj)):
            return "conflict"
        self.objects.clear_all_state(obj)
        for name, value in command.new_state:
            self.objects.set_state(obj, name, value)
        return "replaced"

    def _apply_state_transaction(self, command: StateTransaction) -> None:
        # Made by the app during its actor's turn, so the lock the turn holds does not refuse it.
        obj = keys.object_key(self.id, command.service, command.key)
        for name, value in command.operations:
            if value is None:
                self.objects.clear_state(obj, name)
            else:
                self.objects.set_state(obj, name, value)

    def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return self.objects.get_state(keys.object_key(self.id, service, key), name)

    def expired(self, now: int, limit: int) -> list[str]:
        """Ids of retained invocations whose retention ended by ``now`` (oldest first)."""
        found: list[str] = []
        for key, _ in self.store.scan(keys.EXPIRY, keys.partition_prefix(self.id)):
            if keys.expiry_time(key) > now or len(found) >= limit:
                break
            found.append(str(InvocationId.from_bytes(keys.expiry_raw_id(key))))
        return found

    def _apply_attempt(self, outcome: AttemptOutcome, effects: list[Effect]) -> bool:
        """Journal what the attempt produced; False when the attempt was stale and ignored."""
        active = self.active.get(outcome.invocation_id)
        if active is None or active.attempt != outcome.attempt or active.status.phase != "running":
            return False
        status = active.status
        if status.deployment_id is None:
            status.deployment_id = outcome.deployment_id
        for message_type, payload in outcome.entries:
            self.append(active, message_type, payload)
            self._journal.apply(active, message_type, payload, effects)
        if outcome.ending == "end":
            self._complete(active, effects)
            return True
        if outcome.ending == "suspend":
            status.awaiting_completions = outcome.awaiting_completions
            status.awaiting_signals = outcome.awaiting_signals
            status.awaiting_signal_names = outcome.awaiting_signal_names
            if self._awaited_is_present(status):
                effects.append(self._next_attempt(active))
            else:
                status.phase = "suspended"
        self._put_status(active)
        return True

    # -- helpers used by the journal applier -------------------------------------------------
    def append(self, active: Active, message_type: int, payload: bytes) -> None:
        status = active.status
        index = status.journal_length
        self.store.put(keys.JOURNAL, keys.journal_key(active.key, index), message_type.to_bytes(2, "big") + payload)
        active.journal.append((message_type, payload))
        status.journal_length = index + 1
        if message_type == MessageType.OUTPUT_COMMAND:
            status.completion = _completion_of_output(payload)
        elif message_type == MessageType.SIGNAL_NOTIFICATION:
            signal = pb.SignalNotificationMessage.FromString(payload)
            if signal.HasField("idx"):
                status.signal_ids.append(signal.idx)
            else:
                status.signal_names.append(signal.name)
        elif 0x8000 <= message_type < 0xFC00:
            # Every completion notification carries completion_id as field 1.
            status.completion_ids.append(pb.RunCompletionNotificationMessage.FromString(payload).completion_id)

    def notify(self, active: Active, message_type: int, payload: bytes, effects: list[Effect]) -> None:
        """Journal a notification; a suspended invocation waiting for it resumes."""
        self.append(active, message_type, payload)
        status = active.status
        stream = self._streams.get(status.id)
        if stream is not None and stream[0] == active.attempt:
            push = stream[1]
            effects.append(lambda: push(message_type, payload))
        if status.phase == "suspended" and self._awaited_is_present(status):
            status.phase = "running"
            effects.append(self._next_attempt(active))
        self._put_status(active)

    def add_timer(self, timer: Timer, effects: list[Effect]) -> None:
        self.store.put(keys.TIMERS, self._timer_key(timer), _encode(timer))
        effects.append(lambda: self.runtime.arm_timer(self, timer))

    def send(self, command: Command, effects: list[Effect]) -> None:
        """Route ``command`` to its partition through the durable outbox."""
        self._outbox_sequence += 1
        key = keys.outbox_key(self.id, self._outbox_sequence)
        self.store.put(keys.OUTBOX, key, _encode(command))
        effects.append(lambda: self.runtime.deliver(self, key, command))

    def _put_status(self, active: Active) -> None:
        active.status.modified_at = now_ms()
        self.store.put(keys.STATUS, active.key, _encode(active.status))

    @staticmethod
    def _awaited_is_present(status: InvocationStatus) -> bool:
        return (
            not set(status.awaiting_completions).isdisjoint(status.completion_ids)
            or not set(status.awaiting_signals).isdisjoint(status.signal_ids)
            or not set(status.awaiting_signal_names).isdisjoint(status.signal_names)
        )

    def _next_attempt(self, active: Active) -> Effect:
        active.attempt += 1
        attempt = active.attempt
        invocation_id = active.status.id
        return lambda: self.runtime.start_attempt(self, invocation_id, attempt)

    def _complete(self, active: Active, effects: list[Effect]) -> None:
        status = active.status
        completion = status.completion or Completion(
            failure=Failure(571, "the invocation ended without an output command")
        )
        del self.active[status.id]
        self.store.delete_range(keys.JOURNAL, *keys.journal_range(active.key))
        if status.caller is not None:
            self.send(CallCompleted(status.caller, completion), effects)
        for attachment in status.attached:
            self.send(CallCompleted(attachment.caller, completion, attachment.notification_type), effects)
        if status.exclusive and active.object is not None:
            next_id = self.objects.release(active.object, status.id)
            if next_id is not None:
                self._run(self.active[next_id], effects)  # it holds the lock already
        expires = None
        if status.retention:
            # Kept so repeats of the request (idempotency key, workflow id) find the result.
            expires = now_ms() + status.retention
            status.phase = "completed"
            status.completion = completion
            status.retain_until = expires
            status.journal_length = 0
            status.attached = []
            status.input_entry = active.journal[0][1] if active.journal else None
            self._put_status(active)
            self.store.put(keys.EXPIRY, keys.expiry_key(self.id, expires, active.raw_id), b"")
        else:
            self.store.delete(keys.STATUS, active.key)
        # Restate sends idempotency-expires only when answering from the retained result.
        outcome = Outcome(completion, None, status.target)

        def notify_waiters() -> None:
            for waiter in self._waiters.pop(status.id, ()):
                if not waiter.done():
                    waiter.set_result(outcome)

        effects.append(notify_waiters)

    def _last_sequence(self, column: str) -> int:
        last = self.store.last_key(column, keys.partition_prefix(self.id))
        return 0 if last is None else int.from_bytes(last[2:10], "big")

    # -- read-only inspection (admin API, SQL introspection) ---------------------------------
    def inspect(self, invocation_id: str) -> tuple[InvocationStatus, list[JournalEntry]] | None:
        """An invocation's status and journal: unfinished ones from memory, completed retained
        ones from the store (their journal was dropped on completion)."""
        active = self.active.get(invocation_id)
        if active is not None:
            return active.status, list(active.journal)
        retained = self._retained(invocation_id)
        return None if retained is None else (retained, [])

    def statuses(self) -> list[InvocationStatus]:
        """Every invocation this partition knows: unfinished, then completed retained ones."""
        found: list[InvocationStatus] = [active.status for active in self.active.values()]
        for _, value in self.store.scan_merged(keys.STATUS, keys.partition_prefix(self.id)):
            status = _decode_status(value)
            if status.phase == "completed":
                found.append(status)
        return found

    def journals(self) -> list[tuple[InvocationStatus, list[JournalEntry]]]:
        """Journals of the unfinished invocations (completed ones keep none)."""
        return [(active.status, list(active.journal)) for active in self.active.values()]

    def state_entries(self) -> list[tuple[bytes, bytes]]:
        """Every (STATE key, value) of this partition, staged writes included."""
        return self.store.scan_merged(keys.STATE, keys.partition_prefix(self.id))


def _completion_of_output(payload: bytes) -> Completion:
    output = pb.OutputCommandMessage.FromString(payload)
    if output.HasField("failure"):
        return Completion(failure=Failure(output.failure.code, output.failure.message))
    return Completion(value=output.value.content)
