"""The partition processor: the one writer of a partition's state.

Commands are applied synchronously, in submission order, each as the next log entry stamped with
the partition clock's time. Applying a command stages the log entry and every state change it
causes into the store's current group commit, so the entry and its effect on state become durable
in one atomic write. What the world may observe (starting an attempt, answering a caller, arming
a timer, delivering a message to another partition) comes back from apply as data — effects — and
the runtime executes them only after that write is durable. A crash therefore loses a suffix of
commands whose effects nobody has seen, and recovery needs no replay: the state on disk is always
the state after the last durable entry.

Apply is deterministic (time from the entry, ids derived, settings carried by the commands) and
fail-stop: a command that raises is rolled back out of the group commit, logged with the command,
and the partition refuses every later command with a retryable 503 until the process restarts
and recovers it from disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, overload

import msgspec

from engine.errors import Unavailable
from engine.partition.commands import (
    Attach,
    AttemptOutcome,
    CallCompleted,
    Command,
    Delivered,
    Invoke,
    LogEntry,
    Message,
    OutboxDone,
    Pause,
    Purge,
    ReplaceState,
    SetLimits,
    SetSchedule,
    Signal,
    StateTransaction,
    Terminate,
    TimerFired,
)
from engine.partition.effects import ArmTimer, Deliver, Effect, Step
from engine.partition.keyed import KeyedCommands
from engine.partition.lifecycle import Lifecycle
from engine.partition.reads import PartitionReads
from engine.partition.state import PartitionState, journal_of
from engine.partition.types import Active, InvokeResult, OperatorOutcome
from engine.records import InvocationStatus, Phase, Schedule, Timer
from engine.runtime.waiters import Waiters
from engine.storage import keys
from engine.storage.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], int]  # ms since the epoch
Push = Callable[[int, bytes], None]

_encode = msgspec.msgpack.Encoder().encode
_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode
_decode_timer = msgspec.msgpack.Decoder(Timer).decode
_decode_message = msgspec.msgpack.Decoder(Message).decode


class Runtime(Protocol):
    """Executes a partition's effects, always after the write that produced them is durable."""

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None: ...


class Partition:
    def __init__(
        self, partition_id: int, store: Store, runtime: Runtime, clock: Clock, log_retained_entries: int
    ) -> None:
        self.id = partition_id
        self.store = store
        self.state = PartitionState(partition_id, store)
        self.reads = PartitionReads(self.state)
        self.waiters = Waiters()
        self._lifecycle = Lifecycle(self.state)
        self._keyed = KeyedCommands(self.state, self._lifecycle)
        self._runtime = runtime
        self._clock = clock
        self._log_retained = log_retained_entries
        self._streams: dict[str, tuple[int, Push]] = {}  # live bidi attempts, by invocation
        self.failure: BaseException | None = None  # set once: the partition stopped

    # -- commands ----------------------------------------------------------------------------
    @overload
    def submit(self, command: Invoke) -> asyncio.Future[InvokeResult]: ...
    @overload
    def submit(self, command: AttemptOutcome) -> asyncio.Future[bool]: ...
    @overload
    def submit(self, command: Terminate | Pause | Purge | ReplaceState) -> asyncio.Future[OperatorOutcome]: ...
    @overload
    def submit(self, command: SetSchedule) -> asyncio.Future[bool]: ...
    @overload
    def submit(
        self,
        command: TimerFired | CallCompleted | Signal | Attach | StateTransaction | Delivered | OutboxDone | SetLimits,
    ) -> asyncio.Future[None]: ...

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Apply ``command`` now; the future resolves with its answer once it is durable."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            done.set_exception(self._unavailable())
            return done
        step = Step(self._clock())
        savepoint = self.store.savepoint()
        try:
            result = self._apply(command, step)
            self._log(command, step)
        except Exception as exc:  # noqa: BLE001 - any bug in apply stops this partition, loudly
            self.store.rollback(savepoint)
            self._fail(command, exc)
            done.set_exception(self._unavailable())
            return done
        effects = step.effects

        def release(error: Exception | None) -> None:
            if error is not None:
                if not done.done():
                    done.set_exception(error)
                return
            try:
                self._runtime.execute(self, effects)
            except Exception as exc:  # noqa: BLE001 - a bug executing effects: stop, loudly
                self._fail(command, exc)
                if not done.done():
                    done.set_exception(self._unavailable())
                return
            if not done.done():
                done.set_result(result)

        self.store.after_commit(release)
        return done

    def replay(self, entry: LogEntry) -> None:
        """Apply a command of the replicated log again, as its leader applied it (same time);
        what it asked of the world happened then, so its effects are dropped."""
        step = Step(entry.ts)
        self._apply(entry.command, step)
        self._log(entry.command, step)

    def submit_detached(self, command: Command) -> None:
        """Apply ``command`` for nobody waiting on its answer; a failure is logged, never lost."""
        self.submit(command).add_done_callback(_log_failure)

    def _apply(self, command: Command, step: Step) -> Any:
        lifecycle = self._lifecycle
        if isinstance(command, AttemptOutcome):
            return lifecycle.attempt(command, step)
        if isinstance(command, Invoke):
            return lifecycle.invoke(command, step)
        if isinstance(command, TimerFired):
            timer = command.timer
            if self.state.take_timer(timer):
                if timer.schedule is not None:
                    self._keyed.fire(timer, step)
                else:
                    lifecycle.timer_fired(timer, step)
            return None
        if isinstance(command, CallCompleted):
            return lifecycle.call_completed(command, step)
        if isinstance(command, Signal):
            return lifecycle.signal(command, step)
        if isinstance(command, Terminate):
            return lifecycle.terminate(command, step)
        if isinstance(command, Attach):
            return lifecycle.attach(command, step)
        if isinstance(command, Purge):
            return lifecycle.purge(command, step)
        if isinstance(command, Pause):
            return lifecycle.pause(command, step)
        if isinstance(command, ReplaceState):
            return self._keyed.replace_state(command)
        if isinstance(command, StateTransaction):
            return self._keyed.state_transaction(command)
        if isinstance(command, SetSchedule):
            return self._keyed.set_schedule(command, step)
        if isinstance(command, SetLimits):
            return self.state.set_limits(command, step)
        if isinstance(command, Delivered):
            if self.state.accept_delivery(command.source, command.sequence):
                self._apply(command.message, step)
            return None
        if isinstance(command, OutboxDone):
            for sequence in command.sequences:
                self.store.delete(keys.OUTBOX, keys.outbox_key(self.id, sequence))
            return None
        raise TypeError(f"unknown command {command!r}")

    def _log(self, command: Command, step: Step) -> None:
        state = self.state
        state.lsn += 1
        self.store.put(keys.LOG, keys.log_key(self.id, state.lsn), _encode(LogEntry(step.now, command)))
        if state.lsn % self._log_retained == 0:
            # Log and state commit atomically, so old entries serve only inspection: keep a tail.
            self.store.delete_range(
                keys.LOG, keys.log_key(self.id, 0), keys.log_key(self.id, state.lsn - self._log_retained)
            )

    # -- fail-stop ---------------------------------------------------------------------------
    def _fail(self, command: Command, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
            log.critical(
                "partition %d stopped: applying %s failed; restart quill to recover it from disk",
                self.id,
                type(command).__name__,
                exc_info=error,
            )
            log.critical("partition %d: the command was %r", self.id, command)
            self.waiters.fail_all(self._unavailable())

    def stop(self, reason: str) -> None:
        """Stop taking commands without a fault (this node no longer leads the partition)."""
        if self.failure is None:
            self.failure = Unavailable(reason)
            self.waiters.fail_all(Unavailable(reason))

    def _unavailable(self) -> Unavailable:
        if isinstance(self.failure, Unavailable):
            return self.failure
        return Unavailable(f"partition {self.id} is unavailable after an internal error; restart quill to recover it")

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> None:
        """Reload unfinished invocations, locks and inboxes; running invocations get a new
        attempt, timers are re-armed and interrupted deliveries redone (after every partition
        recovered, see :meth:`redeliver_outbox`)."""
        self._runtime.execute(self, self.load())

    def load(self) -> list[Effect]:
        """Reload the partition's state from its store (a replay applies commands on top of it):
        invocations, locks and inboxes, the limits and the slots held and waited for under them;
        the effects that restart what it holds (attempts, timers), for :meth:`recover`."""
        state = self.state
        state.objects.load()
        state.load_limits()
        step = Step(self._clock())
        waiting: list[InvocationStatus] = []
        for key, _ in self.store.scan(keys.UNFINISHED, keys.partition_prefix(self.id)):
            raw = self.store.get(keys.STATUS, key)
            if raw is None:
                continue
            status = _decode_status(raw)
            active = Active(self.id, status, journal_of(self.store, key))
            state.active[status.id] = active
            if status.phase is Phase.RUNNING:
                state.next_attempt(active, step)
                if status.scope is not None:
                    state.admission.restore_running(status)
            elif status.phase is Phase.WAITING:
                waiting.append(status)
        state.admission.restore_waiting(waiting)
        for _, value in self.store.scan(keys.TIMERS, keys.partition_prefix(self.id)):
            step.effects.append(ArmTimer(_decode_timer(value)))
        return step.effects

    def redeliver_outbox(self) -> None:
        """Deliver messages whose delivery a crash interrupted."""
        effects: list[Effect] = [
            Deliver(key, _decode_message(value))
            for key, value in self.store.scan(keys.OUTBOX, keys.partition_prefix(self.id))
        ]
        self._runtime.execute(self, effects)

    def read_schedule(self, service: str, key: str, name: str) -> Schedule | None:
        return self._keyed.read(service, key, name)

    # -- bidi streams ------------------------------------------------------------------------
    def open_stream(self, invocation_id: str, attempt: int, push: Push) -> None:
        """A bidi attempt listens: durable notifications for it are pushed as they happen."""
        self._streams[invocation_id] = (attempt, push)

    def close_stream(self, invocation_id: str, attempt: int) -> None:
        if self._streams.get(invocation_id, (None,))[0] == attempt:
            del self._streams[invocation_id]

    def push(self, invocation_id: str, attempt: int, message_type: int, payload: bytes) -> None:
        stream = self._streams.get(invocation_id)
        if stream is not None and stream[0] == attempt:
            stream[1](message_type, payload)


def _log_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.error("a command nobody waits for failed: %s", error, exc_info=error)
