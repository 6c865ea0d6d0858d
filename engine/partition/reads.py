"""Read-only views of a partition for the invoker, the facade and the admin API.

Reads run between commands (never inside apply), see staged writes through the store's overlay,
and change nothing.
"""

from __future__ import annotations

import msgspec

from engine.ids import InvocationId
from engine.partition.admission import LimitUsage
from engine.partition.state import PartitionState
from engine.partition.types import AttemptSnapshot, InvocationView, JournalEntry, Outcome
from engine.records import InvocationStatus, Phase
from engine.storage import keys

_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode


class PartitionReads:
    def __init__(self, state: PartitionState) -> None:
        self._state = state

    def view(self, invocation_id: str) -> InvocationView | None:
        """The phase of an invocation, with its result once completed (and retained)."""
        active = self._state.active.get(invocation_id)
        if active is not None:
            return InvocationView(active.status.phase, None)
        retained = self._state.retained(invocation_id)
        if retained is None or retained.completion is None:
            return None
        return InvocationView(Phase.COMPLETED, Outcome(retained.completion, retained.retain_until, retained.target))

    def phase(self, invocation_id: str) -> Phase | None:
        """The phase of an unfinished invocation; None when completed or unknown."""
        active = self._state.active.get(invocation_id)
        return None if active is None else active.status.phase

    def retained(self, invocation_id: str) -> InvocationStatus | None:
        return self._state.retained(invocation_id)

    def snapshot(self, invocation_id: str, attempt: int) -> AttemptSnapshot | None:
        """What attempt ``attempt`` needs to start, or None if that attempt is stale."""
        active = self._state.active.get(invocation_id)
        if active is None or active.attempt != attempt or active.status.phase is not Phase.RUNNING:
            return None
        state = self._state.objects.all_state(active.object) if active.object is not None else None
        return AttemptSnapshot(active.status, list(active.journal), active.raw_id, state)

    def inspect(self, invocation_id: str) -> tuple[InvocationStatus, list[JournalEntry]] | None:
        """An invocation's status and journal: unfinished ones from memory, completed retained
        ones from the store (their journal was dropped on completion)."""
        active = self._state.active.get(invocation_id)
        if active is not None:
            return active.status, list(active.journal)
        retained = self._state.retained(invocation_id)
        return None if retained is None else (retained, [])

    def statuses(self) -> list[InvocationStatus]:
        """Every invocation this partition knows: unfinished, then completed retained ones."""
        state = self._state
        found: list[InvocationStatus] = [active.status for active in state.active.values()]
        for _, value in state.store.scan_merged(keys.STATUS, keys.partition_prefix(state.id)):
            status = _decode_status(value)
            if status.phase is Phase.COMPLETED:
                found.append(status)
        return found

    def journals(self) -> list[tuple[InvocationStatus, list[JournalEntry]]]:
        """Journals of the unfinished invocations (completed ones keep none)."""
        return [(active.status, list(active.journal)) for active in self._state.active.values()]

    def state_entries(self) -> list[tuple[bytes, bytes]]:
        """Every (STATE key, value) of this partition, staged writes included."""
        return self._state.store.scan_merged(keys.STATE, keys.partition_prefix(self._state.id))

    def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return self._state.objects.get_state(keys.object_key(self._state.id, service, key), name)

    def expired(self, now: int, limit: int) -> list[str]:
        """Ids of retained invocations whose retention ended by ``now`` (oldest first)."""
        found: list[str] = []
        for key, _ in self._state.store.scan(keys.EXPIRY, keys.partition_prefix(self._state.id)):
            if keys.expiry_time(key) > now or len(found) >= limit:
                break
            found.append(str(InvocationId.from_bytes(keys.expiry_raw_id(key))))
        return found

    @property
    def active_count(self) -> int:
        return len(self._state.active)

    @property
    def limits_version(self) -> int:
        """The version of the rule book this partition enforces."""
        return self._state.admission.version

    def limit_usage(self) -> list[LimitUsage]:
        return self._state.admission.usage()
