"""The partition processor: the one writer of a partition's state.

Commands are applied synchronously, in submission order, each assigned the next LSN. Applying a
command stages the log entry and every state change it causes into the store's current group
commit, so the log entry and its effect on state become durable in one atomic write. What the
outside world may observe (starting an attempt, answering a caller, arming a timer) is an effect,
released only after that write is durable. A crash therefore loses a suffix of commands whose
effects nobody has seen, and recovery needs no replay: the state on disk is always the state after
the last durable LSN.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, NamedTuple, Protocol

import msgspec

from engine import keys
from engine.ids import InvocationId
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import (
    AttemptOutcome,
    Command,
    Completion,
    Failure,
    InvocationStatus,
    Invoke,
    TimerFired,
    now_ms,
)
from engine.store import Store

log = logging.getLogger(__name__)

Effect = Callable[[], None]
JournalEntry = tuple[int, bytes]

_encode = msgspec.msgpack.Encoder().encode
_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode
_entry_header = (2, "big")


class Runtime(Protocol):
    """What a partition asks of the rest of the engine, always after a durable commit."""

    def start_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None: ...

    def arm_timer(self, partition: Partition, invocation_id: str, fire_at: int) -> None: ...


class Active:
    """An invocation that has not completed, with its journal cached in memory."""

    __slots__ = ("status", "journal", "attempt", "raw_id", "key")

    def __init__(self, partition: int, status: InvocationStatus, journal: list[JournalEntry]) -> None:
        self.status = status
        self.journal = journal
        self.attempt = 0
        self.raw_id = InvocationId(status.id).to_bytes()
        self.key = keys.invocation_key(partition, self.raw_id)


class AttemptSnapshot(NamedTuple):
    status: InvocationStatus
    journal: list[JournalEntry]
    raw_id: bytes


class Partition:
    def __init__(self, partition_id: int, store: Store, runtime: Runtime, log_retained_entries: int) -> None:
        self.id = partition_id
        self._store = store
        self._runtime = runtime
        self._log_retained = log_retained_entries
        self._lsn = self._last_lsn()
        self._active: dict[str, Active] = {}
        self._waiters: dict[str, list[asyncio.Future[Completion]]] = {}

    # -- public API ------------------------------------------------------------------------
    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Apply ``command`` now; the future resolves with its result once it is durable."""
        effects: list[Effect] = []
        result = self._apply(command, effects)
        self._lsn += 1
        self._store.put(keys.LOG, keys.log_key(self.id, self._lsn), _encode(command))
        if self._lsn % self._log_retained == 0:
            # Log and state commit atomically, so old entries serve only inspection: keep a tail.
            self._store.delete_range(keys.LOG, keys.log_key(self.id, 0), keys.log_key(self.id, self._lsn - self._log_retained))
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

        self._store.after_commit(release)
        return done

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Completion]:
        waiter: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(waiter)
        return waiter

    def forget_waiter(self, invocation_id: str, waiter: asyncio.Future[Completion]) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[invocation_id]

    def snapshot(self, invocation_id: str, attempt: int) -> AttemptSnapshot | None:
        """What attempt ``attempt`` needs to start, or None if that attempt is stale."""
        active = self._active.get(invocation_id)
        if active is None or active.attempt != attempt or active.status.phase != "running":
            return None
        return AttemptSnapshot(active.status, list(active.journal), active.raw_id)

    def recover(self) -> None:
        """Load unfinished invocations and restart them: running ones get a new attempt."""
        prefix = keys.partition_prefix(self.id)
        for _, value in self._store.scan(keys.STATUS, prefix):
            status = _decode_status(value)
            if status.phase == "completed":
                continue
            active = Active(self.id, status, [])
            active.journal = [
                (int.from_bytes(raw[:2], "big"), raw[2:]) for _, raw in self._store.scan(keys.JOURNAL, active.key)
            ]
            self._active[status.id] = active
            if status.phase == "running":
                self._next_attempt(active)()
            elif status.phase == "scheduled" and status.execution_time is not None:
                self._runtime.arm_timer(self, status.id, status.execution_time)

    @property
    def active_count(self) -> int:
        return len(self._active)

    # -- application -------------------------------------------------------------------------
    def _apply(self, command: Command, effects: list[Effect]) -> Any:
        if isinstance(command, AttemptOutcome):
            return self._apply_attempt(command, effects)
        if isinstance(command, Invoke):
            return self._apply_invoke(command, effects)
        if isinstance(command, TimerFired):
            return self._apply_timer(command, effects)
        raise TypeError(f"unknown command {command!r}")

    def _apply_invoke(self, command: Invoke, effects: list[Effect]) -> bool:
        if command.invocation_id in self._active:
            return False
        now = now_ms()
        delayed = command.execution_time is not None and command.execution_time > now
        status = InvocationStatus(
            id=command.invocation_id,
            target=command.target,
            phase="scheduled" if delayed else "running",
            created_at=now,
            modified_at=now,
            execution_time=command.execution_time,
        )
        active = Active(self.id, status, [])
        self._active[status.id] = active
        self._append(active, MessageType.INPUT_COMMAND, command.input_entry)
        self._put_status(active)
        if delayed:
            fire_at = command.execution_time
            assert fire_at is not None
            effects.append(lambda: self._runtime.arm_timer(self, status.id, fire_at))
        else:
            effects.append(self._next_attempt(active))
        return True

    def _apply_timer(self, command: TimerFired, effects: list[Effect]) -> None:
        active = self._active.get(command.invocation_id)
        if active is None or active.status.phase != "scheduled":
            return
        active.status.phase = "running"
        self._put_status(active)
        effects.append(self._next_attempt(active))

    def _apply_attempt(self, outcome: AttemptOutcome, effects: list[Effect]) -> bool:
        """Journal what the attempt produced; False when the attempt was stale and ignored."""
        active = self._active.get(outcome.invocation_id)
        if active is None or active.attempt != outcome.attempt or active.status.phase != "running":
            return False
        status = active.status
        if status.deployment_id is None:
            status.deployment_id = outcome.deployment_id
        for message_type, payload in outcome.entries:
            self._append(active, message_type, payload)
        if outcome.ending == "end":
            self._complete(active, effects)
            return True
        if outcome.ending == "suspend":
            if self._awaited_is_present(status, outcome):
                effects.append(self._next_attempt(active))
            else:
                status.phase = "suspended"
                status.awaiting_completions = outcome.awaiting_completions
                status.awaiting_signals = outcome.awaiting_signals
                status.awaiting_signal_names = outcome.awaiting_signal_names
        self._put_status(active)
        return True

    # -- helpers -----------------------------------------------------------------------------
    def _append(self, active: Active, message_type: int, payload: bytes) -> None:
        status = active.status
        index = status.journal_length
        self._store.put(keys.JOURNAL, keys.journal_key(active.key, index), message_type.to_bytes(2, "big") + payload)
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
        elif message_type >= 0x8000 and message_type < 0xFC00:
            # Every completion notification carries completion_id as field 1.
            status.completion_ids.append(pb.RunCompletionNotificationMessage.FromString(payload).completion_id)

    def _put_status(self, active: Active) -> None:
        active.status.modified_at = now_ms()
        self._store.put(keys.STATUS, active.key, _encode(active.status))

    @staticmethod
    def _awaited_is_present(status: InvocationStatus, outcome: AttemptOutcome) -> bool:
        return (
            not set(outcome.awaiting_completions).isdisjoint(status.completion_ids)
            or not set(outcome.awaiting_signals).isdisjoint(status.signal_ids)
            or not set(outcome.awaiting_signal_names).isdisjoint(status.signal_names)
        )

    def _next_attempt(self, active: Active) -> Effect:
        active.attempt += 1
        attempt = active.attempt
        invocation_id = active.status.id
        return lambda: self._runtime.start_attempt(self, invocation_id, attempt)

    def _complete(self, active: Active, effects: list[Effect]) -> None:
        status = active.status
        completion = status.completion or Completion(
            failure=Failure(571, "the invocation ended without an output command")
        )
        del self._active[status.id]
        self._store.delete_range(keys.JOURNAL, *keys.journal_range(active.key))
        self._store.delete(keys.STATUS, active.key)

        def notify() -> None:
            for waiter in self._waiters.pop(status.id, ()):
                if not waiter.done():
                    waiter.set_result(completion)

        effects.append(notify)

    def _last_lsn(self) -> int:
        last = self._store.last_key(keys.LOG, keys.partition_prefix(self.id))
        return 0 if last is None else int.from_bytes(last[2:], "big")


def _completion_of_output(payload: bytes) -> Completion:
    output = pb.OutputCommandMessage.FromString(payload)
    if output.HasField("failure"):
        return Completion(failure=Failure(output.failure.code, output.failure.message))
    return Completion(value=output.value.content)
