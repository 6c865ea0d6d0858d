"""Read-only views of a partition for the invoker, the facade and the admin API.

Reads run between commands (never inside apply), see staged writes through the store's overlay,
and change nothing.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from engine.ids import InvocationId
from engine.partition.admission import LimitUsage
from engine.partition.state import PartitionState
from engine.partition.types import AttemptSnapshot, InvocationView, JournalEntry, Outcome
from engine.records import InvocationStatus, Phase, Promise
from engine.storage import keys

_decode_status = msgspec.msgpack.Decoder(InvocationStatus).decode
_decode_promise = msgspec.msgpack.Decoder(Promise).decode


class InvocationFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What an admin list asks of the partitions: the index answers service and creation time,
    the rest is checked on each status read (so a limit still holds exactly).

    None: no restriction. Times are ms since the epoch, ``created_to`` exclusive. ``succeeded``
    restricts completed invocations to successes (True) or failures (False).
    """

    services: list[str] | None = None
    handlers: list[str] | None = None
    keys: list[str] | None = None
    deployments: list[str] | None = None
    succeeded: bool | None = None
    created_from: int | None = None
    created_to: int | None = None
    newest_first: bool = True

    def admits(self, status: InvocationStatus) -> bool:
        target = status.target
        return (
            (self.services is None or target.service in self.services)
            and (self.handlers is None or target.handler in self.handlers)
            and (self.keys is None or target.key in self.keys)
            and (self.deployments is None or status.deployment_id in self.deployments)
            and (self.created_from is None or status.created_at >= self.created_from)
            and (self.created_to is None or status.created_at < self.created_to)
            and (self.succeeded is None or _succeeded(status) is self.succeeded)
        )


# A completed-invocations page ends with where the next one starts (None: nothing after it).
CompletedPage = tuple[list[InvocationStatus], bytes | None]


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

    def unfinished(self, invocation_id: str) -> tuple[InvocationStatus, list[JournalEntry]] | None:
        """An invocation that has not completed: its status and journal (None otherwise)."""
        active = self._state.active.get(invocation_id)
        return None if active is None else (active.status, active.journal)

    def census(self) -> Counter[tuple[str, str]]:
        """The unfinished invocations by (service, phase)."""
        return Counter((a.status.target.service, str(a.status.phase)) for a in self._state.active.values())

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

    def journals(self) -> list[tuple[InvocationStatus, list[JournalEntry]]]:
        """Journals of the unfinished invocations (completed ones keep none)."""
        return [(active.status, list(active.journal)) for active in self._state.active.values()]

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

    # -- the admin's bounded reads (SQL pushdown) ---------------------------------------------
    def lookup(self, invocation_ids: list[str]) -> list[InvocationStatus]:
        """The statuses of those of ``invocation_ids`` this partition knows."""
        found = []
        for invocation_id in invocation_ids:
            active = self._state.active.get(invocation_id)
            status = active.status if active is not None else self._state.retained(invocation_id)
            if status is not None:
                found.append(status)
        return found

    def unfinished_matching(self, wanted: InvocationFilter, limit: int | None) -> list[InvocationStatus]:
        """Unfinished invocations matching ``wanted``, in its order, at most ``limit`` (from memory)."""
        if wanted.succeeded is not None:
            return []  # only completed invocations have an outcome
        found = [a.status for a in self._state.active.values() if wanted.admits(a.status)]
        found.sort(key=lambda s: s.created_at, reverse=wanted.newest_first)
        return found if limit is None else first_with_ties(found, limit)

    def completed_page(
        self, wanted: InvocationFilter, after: bytes | None, size: int, ordered: bool = True
    ) -> CompletedPage:
        """``size`` completed invocations matching ``wanted`` in creation order (more when the
        last one shares its creation time with the next: ties stay together, so a limit over
        several partitions can be cut exactly), from the CREATED index, resuming after ``after``.
        Reads only the store (committed data and single staged values), so it may run on a thread
        while the partition works. Not ``ordered``, with neither a service nor a time to narrow the
        index by: every stored status is read in storage order instead (see ``stored_page``)."""
        if not ordered and wanted.services is None and wanted.created_from is None and wanted.created_to is None:
            return self.stored_page(wanted, after, size)
        state = self._state
        prefixes = (
            [keys.created_prefix(state.id)]
            if wanted.services is None
            else [keys.created_service_prefix(state.id, s) for s in sorted(set(wanted.services))]
        )
        found: list[InvocationStatus] = []
        cursor: bytes | None = None
        edge: int | None = None  # created_at of the last one found: a page ends past its ties
        for prefix in prefixes:
            if after is not None and not after.startswith(prefix) and after > prefix:
                continue  # pages resume in prefix order: this service was done already
            for key in state.store.scan_range(
                keys.CREATED,
                keys.time_bound(prefix, wanted.created_from or 0),
                keys.time_bound(prefix, wanted.created_to if wanted.created_to is not None else 1 << 64),
                reverse=wanted.newest_first,
                after=after if after is not None and after.startswith(prefix) else None,
            ):
                created_at, raw_id = keys.created_entry(key, prefix)
                if len(found) >= size and created_at != edge:
                    return found, cursor
                cursor = key
                raw = state.store.get(keys.STATUS, keys.invocation_key(state.id, raw_id))
                if raw is None:
                    continue  # purged since the index entry was committed
                status = _decode_status(raw)
                if status.phase is Phase.COMPLETED and wanted.admits(status):
                    found.append(status)
                    edge = created_at
        return found, None

    def stored_page(self, wanted: InvocationFilter, after: bytes | None, size: int) -> CompletedPage:
        """Up to ``size`` completed invocations matching ``wanted``, in no particular order, read
        straight from the stored statuses (a sequential scan: what reading all of them costs
        least), resuming after status key ``after``. Like ``completed_page``, safe on a thread."""
        state = self._state
        found: list[InvocationStatus] = []
        cursor: bytes | None = None
        for key, value in state.store.scan(keys.STATUS, keys.partition_prefix(state.id), after):
            if len(found) >= size:
                return found, cursor
            cursor = key
            status = _decode_status(value)
            if status.phase is Phase.COMPLETED and wanted.admits(status):
                found.append(status)
        return found, None

    def promises(self, service: str | None, key: str | None) -> list[tuple[str, str, str, Promise]]:
        """(service, key, name, promise) of workflow promises, of one service or object if given."""
        return [
            (*_object_of(raw_key), _decode_promise(value))
            for raw_key, value in self._scan(keys.PROMISES, service, key)
        ]

    def locks(self) -> list[tuple[str, str, str]]:
        """(service, key, holder invocation id) of every held object lock."""
        prefix = keys.partition_prefix(self._state.id)
        held = self._state.store.scan_merged(keys.LOCKS, prefix)
        return [(*_object_of(raw_key)[:2], holder.decode()) for raw_key, holder in held]

    def inbox(self) -> list[tuple[str, str, int, str]]:
        """(service, key, sequence, invocation id) of every inboxed invocation, in inbox order."""
        prefix = keys.partition_prefix(self._state.id)
        found = []
        for raw_key, invocation_id in self._state.store.scan_merged(keys.INBOX, prefix):
            _, service, object_key, _ = keys.parse_state_key(raw_key[:-8])
            found.append((service, object_key, int.from_bytes(raw_key[-8:], "big"), invocation_id.decode()))
        return found

    def object_state(self, service: str | None, key: str | None) -> list[tuple[bytes, bytes]]:
        """(STATE key, value) of one service's or object's state (everything if neither is given)."""
        return self._scan(keys.STATE, service, key)

    def _scan(self, family: str, service: str | None, key: str | None) -> list[tuple[bytes, bytes]]:
        """What ``family`` holds about every object, one service's (scoped ones too) or one
        unscoped object."""
        partition, store = self._state.id, self._state.store
        if service is None:
            return store.scan_merged(family, keys.partition_prefix(partition))
        if key is None:
            unscoped = store.scan_merged(family, keys.service_prefix(partition, service))
            return unscoped + store.scan_merged(family, keys.service_prefix(partition, service, scoped=True))
        return store.scan_merged(family, keys.object_key(partition, service, key))

    @property
    def active_count(self) -> int:
        return len(self._state.active)

    @property
    def limits_version(self) -> int:
        """The version of the rule book this partition enforces."""
        return self._state.admission.version

    def limit_usage(self) -> list[LimitUsage]:
        return self._state.admission.usage()

def first_with_ties(statuses: list[InvocationStatus], limit: int) -> list[InvocationStatus]:
    """The first ``limit`` of ``statuses`` (sorted by creation time) and those created at the
    same time as the last of them: whatever else a query orders by, its first ``limit`` rows
    are among these."""
    if len(statuses) <= limit:
        return statuses
    if limit <= 0:
        return []
    end = limit
    edge = statuses[limit - 1].created_at
    while end < len(statuses) and statuses[end].created_at == edge:
        end += 1
    return statuses[:end]


def _succeeded(status: InvocationStatus) -> bool | None:
    completion = status.completion if status.phase is Phase.COMPLETED else None
    return None if completion is None else completion.failure is None


def _object_of(raw_key: bytes) -> tuple[str, str, str]:
    """(service, object key, rest) of a key that starts with an object prefix (its scope, if any,
    left out)."""
    _, service, object_key, rest = keys.parse_state_key(raw_key)
    return service, object_key, rest.decode(errors="replace")
