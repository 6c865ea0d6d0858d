"""A partition's state and the small writes every command is made of.

The one writer of a partition's slice of the store: unfinished invocations (mirrored in memory
with their journals), object locks and inboxes (``objects``), the admission of scoped invocations
under the rule book's limits (``admission``), and the outbox. Every helper takes the current
:class:`Step`, so time comes from the log entry and effects are collected as data.
"""

from __future__ import annotations

import hashlib

import msgspec

from engine.ids import InvocationId
from engine.partition.admission import Admission
from engine.partition.commands import Message, SetLimits
from engine.partition.effects import ArmTimer, Deliver, Push, StartAttempt, Step
from engine.partition.objects import ObjectTable
from engine.partition.types import Active, JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import Completion, Failure, InvocationStatus, Phase, Timer
from engine.storage import keys
from engine.storage.store import Store

_encode = msgspec.msgpack.Encoder().encode
_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode
_decode_limits = msgspec.msgpack.Decoder(SetLimits).decode


class PartitionState:
    def __init__(self, partition_id: int, store: Store) -> None:
        self.id = partition_id
        self.store = store
        self.objects = ObjectTable(partition_id, store)
        self.active: dict[str, Active] = {}
        self.admission = Admission(lambda invocation_id, step: self.run(self.active[invocation_id], step))
        self.lsn = self._last_sequence(keys.LOG)
        # Receivers in other processes drop a sequence they already applied from this partition,
        # so a sequence is never used twice: the mark keeps the last one when the outbox is empty.
        mark = self.store.get(keys.META, keys.outbox_mark_key(partition_id))
        self.outbox_sequence = max(self._last_sequence(keys.OUTBOX), int(mark) if mark is not None else 0)

    def _last_sequence(self, column: str) -> int:
        last = self.store.last_key(column, keys.partition_prefix(self.id))
        return 0 if last is None else int.from_bytes(last[2:10], "big")

    # -- reading --------------------------------------------------------------------------
    def retained(self, invocation_id: str) -> InvocationStatus | None:
        """A completed invocation kept for its retention."""
        raw = self.store.get(keys.STATUS, keys.invocation_key(self.id, InvocationId(invocation_id).to_bytes()))
        return None if raw is None else _decode_status(raw)

    def timer_key(self, timer: Timer) -> bytes:
        if timer.schedule is not None:
            raw_id = hashlib.blake2b(timer.schedule, digest_size=24).digest()
        else:
            raw_id = InvocationId(timer.invocation_id).to_bytes()
        return keys.timer_key(self.id, timer.fire_at, raw_id, timer.completion_id)

    # -- journal ----------------------------------------------------------------------------
    def append(self, active: Active, message_type: int, payload: bytes) -> None:
        status = active.status
        index = status.journal_length
        self.store.put(keys.JOURNAL, keys.journal_key(active.key, index), message_type.to_bytes(2, "big") + payload)
        active.journal.append((message_type, payload))
        status.journal_length = index + 1
        if message_type == MessageType.OUTPUT_COMMAND:
            status.completion = completion_of_output(payload)
        elif message_type == MessageType.SIGNAL_NOTIFICATION:
            signal = pb.SignalNotificationMessage.FromString(payload)
            if signal.HasField("idx"):
                status.signal_ids.append(signal.idx)
            else:
                status.signal_names.append(signal.name)
        elif 0x8000 <= message_type < 0xFC00:
            # Every completion notification carries completion_id as field 1.
            status.completion_ids.append(pb.RunCompletionNotificationMessage.FromString(payload).completion_id)

    def notify(self, active: Active, message_type: int, payload: bytes, step: Step) -> None:
        """Journal a notification; a suspended invocation waiting for it resumes, a bidi attempt
        that listens gets it pushed."""
        self.append(active, message_type, payload)
        status = active.status
        if status.phase is Phase.RUNNING:
            step.effects.append(Push(status.id, active.attempt, message_type, payload))
        elif status.phase is Phase.SUSPENDED and awaited_is_present(status):
            self.start(active, step)
            return
        self.put_status(active, step)

    # -- the admin's index by creation time ------------------------------------------------
    def index_created(self, status: InvocationStatus, raw_id: bytes, present: bool) -> None:
        """Add (or, not ``present``, remove) the invocation's CREATED index entries: they exist
        exactly while its status is stored, so the admin lists newest first without a scan."""
        for key in keys.created_keys(self.id, status.target.service, status.created_at, raw_id):
            if present:
                self.store.put(keys.CREATED, key, b"")
            else:
                self.store.delete(keys.CREATED, key)

    # -- lifecycle helpers ------------------------------------------------------------------
    def put_status(self, active: Active, step: Step) -> None:
        active.status.modified_at = step.now
        self.store.put(keys.STATUS, active.key, _encode(active.status))

    def next_attempt(self, active: Active, step: Step) -> None:
        active.attempt += 1
        step.effects.append(StartAttempt(active.status.id, active.attempt))

    def run(self, active: Active, step: Step) -> None:
        active.status.phase = Phase.RUNNING
        self.next_attempt(active, step)
        self.put_status(active, step)

    def start(self, active: Active, step: Step) -> None:
        """Run ``active`` now; a scoped invocation only if its limits leave a slot, else it waits
        (``WAITING``) and runs when one frees."""
        status = active.status
        if status.scope is not None and not self.admission.request(status, self.lsn + 1):
            status.phase = Phase.WAITING
            self.put_status(active, step)
            return
        self.run(active, step)

    def release_slot(self, active: Active, step: Step) -> None:
        """A scoped invocation stops running (suspended, paused): its slot goes to the next."""
        if active.status.scope is not None:
            self.admission.release(active.status.id, step)

    # -- limits -----------------------------------------------------------------------------
    def set_limits(self, command: SetLimits, step: Step) -> None:
        if command.version <= self.admission.version:
            return  # an older or repeated book: what this partition enforces is newer
        self.store.put(keys.LIMITS, keys.partition_prefix(self.id), _encode(command))
        self.admission.set_rules(command.version, command.rules, step)

    def load_limits(self) -> None:
        raw = self.store.get(keys.LIMITS, keys.partition_prefix(self.id))
        rules: SetLimits = SetLimits(0, []) if raw is None else _decode_limits(raw)
        self.admission.set_rules(rules.version, rules.rules, None)

    # -- timers and messages ----------------------------------------------------------------
    def accept_delivery(self, source: int, sequence: int) -> bool:
        """Whether message ``sequence`` from partition ``source`` is new (then remember it)."""
        key = keys.inbound_key(self.id, source)
        last = self.store.get(keys.INBOUND, key)
        if last is not None and int.from_bytes(last, "big") >= sequence:
            return False
        self.store.put(keys.INBOUND, key, sequence.to_bytes(8, "big"))
        return True

    def add_timer(self, timer: Timer, step: Step) -> None:
        self.store.put(keys.TIMERS, self.timer_key(timer), _encode(timer))
        step.effects.append(ArmTimer(timer))

    def take_timer(self, timer: Timer) -> bool:
        """Remove a fired timer; False when it already fired (a timer fires once)."""
        key = self.timer_key(timer)
        if self.store.get(keys.TIMERS, key) is None:
            return False
        self.store.delete(keys.TIMERS, key)
        return True

    def send(self, message: Message, step: Step) -> None:
        """Route ``message`` to its partition through the durable outbox."""
        self.outbox_sequence += 1
        key = keys.outbox_key(self.id, self.outbox_sequence)
        self.store.put(keys.OUTBOX, key, _encode(message))
        self.store.put(keys.META, keys.outbox_mark_key(self.id), str(self.outbox_sequence).encode())
        step.effects.append(Deliver(key, message))


def awaited_is_present(status: InvocationStatus) -> bool:
    """Whether a notification the suspended invocation waits for is in its journal."""
    return (
        not set(status.awaiting_completions).isdisjoint(status.completion_ids)
        or not set(status.awaiting_signals).isdisjoint(status.signal_ids)
        or not set(status.awaiting_signal_names).isdisjoint(status.signal_names)
    )


def completion_of_output(payload: bytes) -> Completion:
    output = pb.OutputCommandMessage.FromString(payload)
    if output.HasField("failure"):
        return Completion(failure=Failure(output.failure.code, output.failure.message))
    return Completion(value=output.value.content)


def journal_of(store: Store, active_key: bytes) -> list[JournalEntry]:
    return [(int.from_bytes(raw[:2], "big"), raw[2:]) for _, raw in store.scan(keys.JOURNAL, active_key)]
