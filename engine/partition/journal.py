"""What the SDK's journaled commands do to partition state.

Called by the partition for every command an attempt produced, right after it is journaled and
in journal order, so a lazy ``get`` sees exactly the ``set``s before it. Commands whose answer is
known at once (state reads, promise peeks, invocation ids) get their completion notification
journaled immediately; the others arm a timer, route a message to another partition, or register
a waiter. Nothing here reads a clock or a registry: time comes from the step, and the settings of
called handlers come with the attempt's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from engine.ids import InvocationId, parse_awakeable_id
from engine.limits.names import SCOPED_VIRTUAL_OBJECT, InvalidName, parse_limit_key, parse_scope
from engine.partition.commands import Attach, CallCompleted, InvocationSettings, Invoke, Signal
from engine.partition.effects import Step
from engine.partition.state import PartitionState
from engine.partition.types import Active
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import CallerRef, Completion, Failure, Target, Timer

log = logging.getLogger(__name__)

_Handler = Callable[[Active, bytes, int, Step, Mapping[str, InvocationSettings]], None]


class JournalApplier:
    def __init__(self, state: PartitionState) -> None:
        self._state = state
        self._handlers: dict[int, _Handler] = {
            MessageType.GET_LAZY_STATE_COMMAND: self._get_lazy_state,
            MessageType.GET_LAZY_STATE_KEYS_COMMAND: self._get_lazy_state_keys,
            MessageType.SET_STATE_COMMAND: self._set_state,
            MessageType.CLEAR_STATE_COMMAND: self._clear_state,
            MessageType.CLEAR_ALL_STATE_COMMAND: self._clear_all_state,
            MessageType.SLEEP_COMMAND: self._sleep,
            MessageType.CALL_COMMAND: self._call,
            MessageType.ONE_WAY_CALL_COMMAND: self._one_way_call,
            MessageType.SEND_SIGNAL_COMMAND: self._send_signal,
            MessageType.COMPLETE_AWAKEABLE_COMMAND: self._complete_awakeable,
            MessageType.GET_PROMISE_COMMAND: self._get_promise,
            MessageType.PEEK_PROMISE_COMMAND: self._peek_promise,
            MessageType.COMPLETE_PROMISE_COMMAND: self._complete_promise,
            MessageType.ATTACH_INVOCATION_COMMAND: self._attach,
            MessageType.GET_INVOCATION_OUTPUT_COMMAND: self._get_output,
        }

    def apply(
        self,
        active: Active,
        message_type: int,
        payload: bytes,
        index: int,
        step: Step,
        targets: Mapping[str, InvocationSettings],
    ) -> None:
        """Apply journal entry ``index`` of ``active`` (already appended)."""
        handler = self._handlers.get(message_type)
        if handler is not None:
            handler(active, payload, index, step, targets)

    # -- state -----------------------------------------------------------------------------
    def _get_lazy_state(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.GetLazyStateCommandMessage.FromString(payload)
        value = self._state.objects.get_state(active.object, command.key) if active.object else None
        notification = pb.GetLazyStateCompletionNotificationMessage(completion_id=command.result_completion_id)
        if value is None:
            notification.void.SetInParent()
        else:
            notification.value.content = value
        self._notify(active, MessageType.GET_LAZY_STATE_COMPLETION, notification, step)

    def _get_lazy_state_keys(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.GetLazyStateKeysCommandMessage.FromString(payload)
        names = [name for name, _ in self._state.objects.all_state(active.object)] if active.object else []
        notification = pb.GetLazyStateKeysCompletionNotificationMessage(
            completion_id=command.result_completion_id, state_keys=pb.StateKeys(keys=names)
        )
        self._notify(active, MessageType.GET_LAZY_STATE_KEYS_COMPLETION, notification, step)

    def _set_state(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        if active.object is not None:
            command = pb.SetStateCommandMessage.FromString(payload)
            self._state.objects.set_state(active.object, command.key, command.value.content)

    def _clear_state(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        if active.object is not None:
            self._state.objects.clear_state(active.object, pb.ClearStateCommandMessage.FromString(payload).key)

    def _clear_all_state(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        if active.object is not None:
            self._state.objects.clear_all_state(active.object)

    # -- time --------------------------------------------------------------------------------
    def _sleep(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.SleepCommandMessage.FromString(payload)
        self._state.add_timer(Timer(active.status.id, command.wake_up_time, command.result_completion_id), step)

    # -- calls and signals -------------------------------------------------------------------
    def _call(
        self, active: Active, payload: bytes, index: int, step: Step, targets: Mapping[str, InvocationSettings]
    ) -> None:
        command = pb.CallCommandMessage.FromString(payload)
        caller = CallerRef(active.status.id, command.result_completion_id)
        self._invoke(active, command, index, None, caller, step, targets)

    def _one_way_call(
        self, active: Active, payload: bytes, index: int, step: Step, targets: Mapping[str, InvocationSettings]
    ) -> None:
        command = pb.OneWayCallCommandMessage.FromString(payload)
        execution_time = command.invoke_time if command.invoke_time > step.now else None
        self._invoke(active, command, index, execution_time, None, step, targets)

    def _invoke(
        self,
        active: Active,
        command: pb.CallCommandMessage | pb.OneWayCallCommandMessage,
        index: int,
        execution_time: int | None,
        caller: CallerRef | None,
        step: Step,
        targets: Mapping[str, InvocationSettings],
    ) -> None:
        state = self._state
        settings = targets.get(f"{command.service_name}/{command.handler_name}")
        keyed = settings is not None and settings.keyed
        target = Target(command.service_name, command.handler_name, command.key, keyed)
        idempotency_key = command.idempotency_key if command.HasField("idempotency_key") else None
        flow = _flow_control(command, settings)
        scope, limit_key = flow if isinstance(flow, tuple) else (None, None)
        if settings is not None and settings.workflow_run:
            callee = InvocationId.for_workflow(target.service, target.key, scope)
        elif idempotency_key is not None:
            callee = InvocationId.for_idempotent(
                target.service, target.object_key, target.handler, idempotency_key, scope
            )
        else:
            callee = InvocationId.derived(active.raw_id, index, target.service, target.object_key, scope)
        id_notification = pb.CallInvocationIdCompletionNotificationMessage(
            completion_id=command.invocation_id_notification_idx, invocation_id=str(callee)
        )
        self._notify(active, MessageType.CALL_INVOCATION_ID_COMPLETION, id_notification, step)
        if settings is None or isinstance(flow, str):
            if settings is None:
                refusal = Failure(404, f"Service handler '{target.service}/{target.handler}' not found.")
            else:
                refusal = Failure(400, str(flow))
            if caller is not None:
                state.send(CallCompleted(caller, Completion(failure=refusal)), step)
            return
        entry = pb.InputCommandMessage(headers=command.headers, value=pb.Value(content=command.parameter))
        invoke = Invoke(
            invocation_id=str(callee),
            target=target,
            input_entry=entry.SerializeToString(),
            execution_time=execution_time,
            exclusive=settings.exclusive,
            caller=caller,
            retention=settings.retention_ms,
            idempotency_key=idempotency_key,
            scope=scope,
            limit_key=limit_key,
        )
        state.send(invoke, step)

    def _send_signal(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.SendSignalCommandMessage.FromString(payload)
        try:
            target = InvocationId.parse(command.target_invocation_id)
        except ValueError:
            log.warning("invocation %s signals a bad invocation id %r", active.status.id, command.target_invocation_id)
            return
        signal_index = command.idx if command.WhichOneof("signal_id") == "idx" else None
        name = command.name if signal_index is None else None
        value, failure = _result_of(command, "value", "failure")
        self._state.send(Signal(str(target), signal_index, name, value, failure), step)

    def _complete_awakeable(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.CompleteAwakeableCommandMessage.FromString(payload)
        try:
            target, signal_index = parse_awakeable_id(command.awakeable_id)
        except ValueError:
            log.warning("invocation %s completes a bad awakeable id %r", active.status.id, command.awakeable_id)
            return
        value, failure = _result_of(command, "value", "failure")
        self._state.send(Signal(str(target), signal_index, None, value, failure), step)

    # -- workflow promises -------------------------------------------------------------------
    def _get_promise(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.GetPromiseCommandMessage.FromString(payload)
        if active.object is None:
            return
        objects = self._state.objects
        promise = objects.get_promise(active.object, command.key)
        if promise.completion is not None:
            notification = pb.GetPromiseCompletionNotificationMessage(completion_id=command.result_completion_id)
            set_completion(notification, promise.completion)
            self._notify(active, MessageType.GET_PROMISE_COMPLETION, notification, step)
            return
        promise.waiters.append(CallerRef(active.status.id, command.result_completion_id))
        objects.put_promise(active.object, command.key, promise)

    def _peek_promise(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.PeekPromiseCommandMessage.FromString(payload)
        notification = pb.PeekPromiseCompletionNotificationMessage(completion_id=command.result_completion_id)
        promise = self._state.objects.get_promise(active.object, command.key) if active.object else None
        if promise is None or promise.completion is None:
            notification.void.SetInParent()
        else:
            set_completion(notification, promise.completion)
        self._notify(active, MessageType.PEEK_PROMISE_COMPLETION, notification, step)

    def _complete_promise(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.CompletePromiseCommandMessage.FromString(payload)
        notification = pb.CompletePromiseCompletionNotificationMessage(completion_id=command.result_completion_id)
        state = self._state
        if active.object is None:
            return
        promise = state.objects.get_promise(active.object, command.key)
        if promise.completion is not None:
            notification.failure.code = 409
            notification.failure.message = "promise was already completed"
            self._notify(active, MessageType.COMPLETE_PROMISE_COMPLETION, notification, step)
            return
        value, failure = _result_of(command, "completion_value", "completion_failure")
        promise.completion = Completion(value=value, failure=failure)
        waiters, promise.waiters = promise.waiters, []
        state.objects.put_promise(active.object, command.key, promise)
        for waiter in waiters:
            # Every handler of one workflow key lives in this partition.
            waiting = state.active.get(waiter.invocation_id)
            if waiting is not None:
                resolved = pb.GetPromiseCompletionNotificationMessage(completion_id=waiter.completion_id)
                set_completion(resolved, promise.completion)
                self._notify(waiting, MessageType.GET_PROMISE_COMPLETION, resolved, step)
        notification.void.SetInParent()
        self._notify(active, MessageType.COMPLETE_PROMISE_COMPLETION, notification, step)

    # -- other invocations' results -----------------------------------------------------------
    def _attach(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.AttachInvocationCommandMessage.FromString(payload)
        self._ask_for_result(active, command, True, MessageType.ATTACH_INVOCATION_COMPLETION, step)

    def _get_output(self, active: Active, payload: bytes, index: int, step: Step, _: Any) -> None:
        command = pb.GetInvocationOutputCommandMessage.FromString(payload)
        self._ask_for_result(active, command, False, MessageType.GET_INVOCATION_OUTPUT_COMPLETION, step)

    def _ask_for_result(
        self,
        active: Active,
        command: pb.AttachInvocationCommandMessage | pb.GetInvocationOutputCommandMessage,
        wait: bool,
        notification_type: int,
        step: Step,
    ) -> None:
        caller = CallerRef(active.status.id, command.result_completion_id)
        target = _target_invocation(command)
        if target is None:
            failure = Failure(400, "bad attach target: not an invocation id")
            self._state.send(CallCompleted(caller, Completion(failure=failure), notification_type), step)
            return
        self._state.send(Attach(str(target), caller, wait, notification_type), step)

    def _notify(self, active: Active, message_type: int, notification: Any, step: Step) -> None:
        self._state.notify(active, message_type, notification.SerializeToString(), step)


def _flow_control(
    command: pb.CallCommandMessage | pb.OneWayCallCommandMessage, settings: InvocationSettings | None
) -> tuple[str | None, str | None] | str:
    """The call's (scope, limit key) as the SDK set them (protocol v7), or why they are refused,
    in the words of Restate's invoker. No scope, or an empty one, is an unscoped call; a callee
    never inherits its caller's scope."""
    scope = command.scope if command.HasField("scope") and command.scope else None
    raw_key = command.limit_key if command.HasField("limit_key") else None
    if scope is not None:
        try:
            parse_scope(scope)
        except InvalidName as exc:
            return f"the provided scope '{scope}' is invalid: {exc}"
    try:
        limit_key = parse_limit_key(raw_key) if raw_key is not None else None
    except InvalidName as exc:
        return f"the provided limit key '{raw_key}' is invalid: {exc}"
    if limit_key is not None and scope is None:
        return (
            "limit key was provided without a scope."
            " Limit keys take effect only when used in combination with scope"
        )
    if scope is not None and settings is not None and settings.virtual_object:
        return SCOPED_VIRTUAL_OBJECT
    return scope, limit_key


def _result_of(command: Any, value_field: str, failure_field: str) -> tuple[bytes | None, Failure | None]:
    if command.HasField(failure_field):
        failure = getattr(command, failure_field)
        return None, Failure(failure.code, failure.message)
    if command.HasField(value_field):
        return getattr(command, value_field).content, None
    return None, None


def set_completion(notification: Any, completion: Completion) -> None:
    if completion.failure is not None:
        notification.failure.code = completion.failure.code
        notification.failure.message = completion.failure.message
    else:
        notification.value.content = completion.value or b""


def _target_invocation(
    command: pb.AttachInvocationCommandMessage | pb.GetInvocationOutputCommandMessage,
) -> InvocationId | None:
    """The invocation an attach / get-output command points at (by id, idempotency key or workflow)."""
    which = command.WhichOneof("target")
    if which == "invocation_id":
        try:
            return InvocationId.parse(command.invocation_id)
        except ValueError:
            return None
    if which == "idempotent_request_target":
        t = command.idempotent_request_target
        scope = t.scope if t.HasField("scope") and t.scope else None
        # The command does not say whether its target is keyed: an empty key reads as none.
        key = t.service_key or None
        return InvocationId.for_idempotent(t.service_name, key, t.handler_name, t.idempotency_key, scope)
    if which == "workflow_target":
        w = command.workflow_target
        scope = w.scope if w.HasField("scope") and w.scope else None
        return InvocationId.for_workflow(w.workflow_name, w.workflow_key, scope)
    return None
