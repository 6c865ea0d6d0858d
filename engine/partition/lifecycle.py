"""The invocation lifecycle: scheduled → inboxed → (waiting →) running ⇄ suspended (⇄ paused) →
completed; a scoped invocation waits for a slot of its limits before it runs, and again after
a suspension or a pause (see ``admission``).

Creation (deterministic ids latch repeats onto the first invocation), the object lock hand-over,
what an attempt's outcome does, results for callers and attached handlers, cancel / kill / pause
/ purge, timers and retention. Every method applies one command to :class:`PartitionState` in
one :class:`Step`; the journal's own commands are :class:`engine.partition.journal.JournalApplier`'s.
"""

from __future__ import annotations

from engine.ids import InvocationId
from engine.partition.commands import (
    Attach,
    AttemptEnding,
    AttemptOutcome,
    CallCompleted,
    Invoke,
    Pause,
    Purge,
    Signal,
    Terminate,
)
from engine.partition.effects import Complete, Step
from engine.partition.journal import JournalApplier, set_completion
from engine.partition.state import PartitionState, awaited_is_present
from engine.partition.types import Active, InvokeResult, OperatorOutcome, Outcome
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import Attachment, Completion, Failure, InvocationStatus, Phase, Timer
from engine.storage import keys

_MISSING_OUTPUT = Failure(571, "the invocation ended without an output command")


class Lifecycle:
    def __init__(self, state: PartitionState) -> None:
        self._state = state
        self._journal = JournalApplier(state)

    # -- creation ---------------------------------------------------------------------------
    def invoke(self, command: Invoke, step: Step) -> InvokeResult:
        """Create the invocation, unless one with this (deterministic) id exists or is retained."""
        state = self._state
        invocation_id = command.invocation_id
        existing = state.active.get(invocation_id)
        retained = None if existing is not None else state.retained(invocation_id)
        if existing is not None or retained is not None:
            return self._duplicate(command, existing, retained, step)
        delayed = command.execution_time is not None and command.execution_time > step.now
        status = InvocationStatus(
            id=invocation_id,
            target=command.target,
            phase=Phase.SCHEDULED,
            created_at=step.now,
            modified_at=step.now,
            execution_time=command.execution_time,
            exclusive=command.exclusive,
            caller=command.caller,
            retention=command.retention,
            idempotency_key=command.idempotency_key,
            reentrancy=command.reentrancy,
            scope=command.scope,
            limit_key=command.limit_key,
        )
        active = Active(state.id, status, [])
        state.active[invocation_id] = active
        state.store.put(keys.UNFINISHED, active.key, b"")
        state.index_created(status, active.raw_id, present=True)
        state.append(active, MessageType.INPUT_COMMAND, command.input_entry)
        if delayed:
            assert command.execution_time is not None
            state.add_timer(Timer(invocation_id, command.execution_time), step)
            state.put_status(active, step)
        else:
            self._start_or_enqueue(active, command.reentrancy_limit, step)
        return InvokeResult(True)

    def _duplicate(
        self, command: Invoke, existing: Active | None, retained: InvocationStatus | None, step: Step
    ) -> InvokeResult:
        """A repeated idempotent request latches onto the first; a repeated workflow run is refused."""
        outcome = None
        if retained is not None and retained.completion is not None:
            outcome = Outcome(retained.completion, retained.retain_until, retained.target)
        if command.caller is not None:
            if command.idempotency_key is None:
                failure = Failure(409, "the workflow method was already invoked")
                self._state.send(CallCompleted(command.caller, Completion(failure=failure)), step)
            elif outcome is not None:
                self._state.send(CallCompleted(command.caller, outcome.completion), step)
            elif existing is not None:
                self._attach_to(existing, Attachment(command.caller, MessageType.CALL_COMPLETION), step)
        return InvokeResult(False, outcome)

    def _start_or_enqueue(self, active: Active, reentrancy_limit: int, step: Step) -> None:
        state = self._state
        status = active.status
        if status.exclusive and active.object is not None and not state.objects.try_lock(active.object, status.id):
            depth = self._reentrant_depth(active) if reentrancy_limit else 0
            if depth:
                status.exclusive = False  # runs inside the holder's turn, never takes the lock
                if depth > reentrancy_limit:
                    status.completion = Completion(failure=Failure(500, "maximum stack depth exceeded"))
                    self.complete(active, step)
                    return
                state.run(active, step)
                return
            state.objects.enqueue(active.object, state.lsn + 1, status.id)
            status.phase = Phase.INBOXED
            state.put_status(active, step)
        else:
            state.start(active, step)

    def _reentrant_depth(self, active: Active) -> int:
        """For a call made from within the turn holding its object's lock (same reentrancy
        chain): how deep the chain would be on this object; else 0."""
        state = self._state
        chain = active.status.reentrancy
        if chain is None or active.object is None:
            return 0
        holder = state.active.get(state.objects.holder(active.object) or "")
        if holder is None or holder.status.reentrancy != chain:
            return 0
        inside = sum(
            1
            for other in state.active.values()
            if other.object == active.object
            and other is not active
            and other.status.phase in (Phase.RUNNING, Phase.SUSPENDED)
            and other.status.reentrancy == chain
        )
        return inside + 1

    # -- attempts -----------------------------------------------------------------------------
    def attempt(self, outcome: AttemptOutcome, step: Step) -> bool:
        """Journal what the attempt produced; False when the attempt was stale and ignored."""
        state = self._state
        active = state.active.get(outcome.invocation_id)
        if active is None or active.attempt != outcome.attempt or active.status.phase is not Phase.RUNNING:
            return False
        status = active.status
        if status.deployment_id is None:
            status.deployment_id = outcome.deployment_id
        for message_type, payload in outcome.entries:
            index = status.journal_length
            state.append(active, message_type, payload)
            self._journal.apply(active, message_type, payload, index, step, outcome.targets)
        if outcome.ending is AttemptEnding.END:
            self.complete(active, step)
            return True
        if outcome.ending is AttemptEnding.SUSPEND:
            status.awaiting_completions = outcome.awaiting_completions
            status.awaiting_signals = outcome.awaiting_signals
            status.awaiting_signal_names = outcome.awaiting_signal_names
            if awaited_is_present(status):
                state.next_attempt(active, step)
            else:
                status.phase = Phase.SUSPENDED
                state.release_slot(active, step)
        state.put_status(active, step)
        return True

    # -- completion -----------------------------------------------------------------------------
    def complete(self, active: Active, step: Step) -> None:
        state = self._state
        status = active.status
        completion = status.completion or Completion(failure=_MISSING_OUTPUT)
        del state.active[status.id]
        state.store.delete(keys.UNFINISHED, active.key)
        state.store.delete_range(keys.JOURNAL, *keys.journal_range(active.key))
        if status.caller is not None:
            state.send(CallCompleted(status.caller, completion), step)
        for attachment in status.attached:
            state.send(CallCompleted(attachment.caller, completion, attachment.notification_type), step)
        if status.scope is not None:
            state.admission.forget(status.id, step)
        if status.exclusive and active.object is not None:
            next_id = state.objects.release(active.object, status.id)
            if next_id is not None:
                state.start(state.active[next_id], step)  # it holds the lock already
        if status.retention:
            # Kept so repeats of the request (idempotency key, workflow id) find the result.
            expires = step.now + status.retention
            status.phase = Phase.COMPLETED
            status.completion = completion
            status.retain_until = expires
            status.journal_length = 0
            status.attached = []
            status.input_entry = active.journal[0][1] if active.journal else None
            state.put_status(active, step)
            state.store.put(keys.EXPIRY, keys.expiry_key(state.id, expires, active.raw_id), b"")
        else:
            state.store.delete(keys.STATUS, active.key)
            state.index_created(status, active.raw_id, present=False)
        # Restate sends idempotency-expires only when answering from the retained result.
        step.effects.append(Complete(status.id, Outcome(completion, None, status.target)))

    # -- other invocations' results and signals -------------------------------------------------
    def attach(self, command: Attach, step: Step) -> None:
        state = self._state
        active = state.active.get(command.invocation_id)
        if active is not None:
            if command.wait:
                self._attach_to(active, Attachment(command.caller, command.notification_type), step)
            else:
                state.send(CallCompleted(command.caller, None, command.notification_type), step)
            return
        retained = state.retained(command.invocation_id)
        completion = retained.completion if retained is not None else None
        if completion is None:
            completion = Completion(failure=Failure(404, f"invocation '{command.invocation_id}' not found"))
        state.send(CallCompleted(command.caller, completion, command.notification_type), step)

    def _attach_to(self, active: Active, attachment: Attachment, step: Step) -> None:
        active.status.attached = [*active.status.attached, attachment]
        self._state.put_status(active, step)

    def call_completed(self, command: CallCompleted, step: Step) -> None:
        active = self._state.active.get(command.caller.invocation_id)
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
        self._state.notify(active, command.notification_type, notification.SerializeToString(), step)

    def signal(self, command: Signal, step: Step) -> None:
        active = self._state.active.get(command.invocation_id)
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
        self._state.notify(active, MessageType.SIGNAL_NOTIFICATION, notification.SerializeToString(), step)

    # -- timers ---------------------------------------------------------------------------------
    def timer_fired(self, timer: Timer, step: Step) -> None:
        """A delayed invocation's execution time, or the end of a sleep (schedules: ``keyed``)."""
        state = self._state
        active = state.active.get(timer.invocation_id)
        if active is None:
            return
        if timer.completion_id is None:
            if active.status.phase is Phase.SCHEDULED:
                self._start_or_enqueue(active, 0, step)
            return
        notification = pb.SleepCompletionNotificationMessage(completion_id=timer.completion_id, void=pb.Void())
        state.notify(active, MessageType.SLEEP_COMPLETION, notification.SerializeToString(), step)

    # -- operators ------------------------------------------------------------------------------
    def pause(self, command: Pause, step: Step) -> OperatorOutcome:
        state = self._state
        active = state.active.get(command.invocation_id)
        if active is None:
            return self._absent(command.invocation_id)
        status = active.status
        if command.resume:
            if status.phase is not Phase.PAUSED:
                return OperatorOutcome.DONE if status.has_run() else OperatorOutcome.NOT_STARTED
            state.start(active, step)
            return OperatorOutcome.DONE
        if status.phase not in (Phase.RUNNING, Phase.SUSPENDED):
            return OperatorOutcome.DONE if status.phase is Phase.PAUSED else OperatorOutcome.NOT_RUNNING
        if status.phase is Phase.RUNNING:
            state.release_slot(active, step)
        status.phase = Phase.PAUSED
        active.attempt += 1  # whatever attempt is in flight is stale from now on
        state.put_status(active, step)
        return OperatorOutcome.DONE

    def terminate(self, command: Terminate, step: Step) -> OperatorOutcome:
        """DONE (completed now; forgotten if it had not started), SIGNALLED (cancel delivered),
        COMPLETED or NOT_FOUND."""
        state = self._state
        active = state.active.get(command.invocation_id)
        if active is None:
            return self._absent(command.invocation_id)
        status = active.status
        for callee in _pending_callees(active):
            # As in Restate, cancelling or killing a caller does the same to the calls it awaits.
            state.send(Terminate(callee, command.kill), step)
        if not command.kill and status.has_run():
            # The SDK turns the built-in CANCEL signal into a terminal error at its next await
            # (a paused invocation sees it once resumed, one waiting for a slot once it runs,
            # as in Restate).
            self.signal(Signal(status.id, 1, None), step)
            return OperatorOutcome.SIGNALLED
        if not status.phase.started:
            # As in Restate, what has not started is forgotten at once: its callers get the
            # failure, but no result is kept (output is then 404, and its idempotency key or
            # workflow id is free again).
            status.retention = 0
            if status.phase is Phase.INBOXED and active.object is not None:
                state.objects.remove_from_inbox(active.object, status.id)
        status.completion = Completion(failure=Failure(409, "killed" if command.kill else "cancelled"))
        self.complete(active, step)
        return OperatorOutcome.DONE

    def purge(self, command: Purge, step: Step) -> OperatorOutcome:
        """PURGED, or why not: RUNNING (not completed yet) or NOT_FOUND."""
        state = self._state
        result = OperatorOutcome.NOT_FOUND
        for invocation_id in command.invocation_ids:
            if invocation_id in state.active:
                result = OperatorOutcome.RUNNING
                continue
            retained = state.retained(invocation_id)
            if retained is None or retained.retain_until is None:
                continue
            if command.expired and retained.retain_until > step.now:
                continue  # retention was extended since the sweep read it
            raw_id = InvocationId(invocation_id).to_bytes()
            state.store.delete(keys.STATUS, keys.invocation_key(state.id, raw_id))
            state.store.delete(keys.EXPIRY, keys.expiry_key(state.id, retained.retain_until, raw_id))
            state.index_created(retained, raw_id, present=False)
            result = OperatorOutcome.PURGED
        return result

    def _absent(self, invocation_id: str) -> OperatorOutcome:
        retained = self._state.retained(invocation_id) is not None
        return OperatorOutcome.COMPLETED if retained else OperatorOutcome.NOT_FOUND


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
