"""Per-key state of virtual objects and workflows within one partition.

Locks and inboxes are mirrored in memory (the partition is their only writer) and persisted so
recovery restores them; state and promises are read through the store, which sees staged writes.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque

import msgspec

from engine.records import Promise
from engine.storage import keys
from engine.storage.store import Store

_encode = msgspec.msgpack.Encoder().encode
_decode_promise = msgspec.msgpack.Decoder(Promise).decode


class ObjectTable:
    def __init__(self, partition: int, store: Store) -> None:
        self._store = store
        self._partition = partition
        self._locks: dict[bytes, str] = {}
        self._inboxes: dict[bytes, deque[tuple[bytes, str]]] = {}

    def load(self) -> None:
        prefix = keys.partition_prefix(self._partition)
        for key, holder in self._store.scan(keys.LOCKS, prefix):
            self._locks[key] = holder.decode()
        for key, invocation_id in self._store.scan(keys.INBOX, prefix):
            self._inboxes.setdefault(key[:-8], deque()).append((key, invocation_id.decode()))

    # -- locks and inboxes ---------------------------------------------------------------------
    def try_lock(self, obj: bytes, invocation_id: str) -> bool:
        """Take the lock of ``obj`` if it is free (and nobody queues before us)."""
        if obj in self._locks:
            return False
        self._locks[obj] = invocation_id
        self._store.put(keys.LOCKS, obj, invocation_id.encode())
        return True

    def enqueue(self, obj: bytes, sequence: int, invocation_id: str) -> None:
        key = keys.inbox_key(obj, sequence)
        self._inboxes.setdefault(obj, deque()).append((key, invocation_id))
        self._store.put(keys.INBOX, key, invocation_id.encode())

    def release(self, obj: bytes, invocation_id: str) -> str | None:
        """Release ``obj`` held by ``invocation_id``; the next inboxed invocation takes the lock."""
        if self._locks.get(obj) != invocation_id:
            return None
        inbox = self._inboxes.get(obj)
        if not inbox:
            del self._locks[obj]
            self._store.delete(keys.LOCKS, obj)
            return None
        key, next_id = inbox.popleft()
        if not inbox:
            del self._inboxes[obj]
        self._store.delete(keys.INBOX, key)
        self._locks[obj] = next_id
        self._store.put(keys.LOCKS, obj, next_id.encode())
        return next_id

    def remove_from_inbox(self, obj: bytes, invocation_id: str) -> None:
        inbox = self._inboxes.get(obj)
        for entry in list(inbox or ()):
            if entry[1] == invocation_id:
                inbox.remove(entry)  # type: ignore[union-attr]
                self._store.delete(keys.INBOX, entry[0])

    # -- state ---------------------------------------------------------------------------------
    def get_state(self, obj: bytes, name: bytes) -> bytes | None:
        return self._store.get(keys.STATE, keys.state_key(obj, name))

    def set_state(self, obj: bytes, name: bytes, value: bytes) -> None:
        self._store.put(keys.STATE, keys.state_key(obj, name), value)

    def clear_state(self, obj: bytes, name: bytes) -> None:
        self._store.delete(keys.STATE, keys.state_key(obj, name))

    def all_state(self, obj: bytes) -> list[tuple[bytes, bytes]]:
        return [(key[len(obj) :], value) for key, value in self._store.scan_merged(keys.STATE, obj)]

    def clear_all_state(self, obj: bytes) -> None:
        for key, _ in self._store.scan_merged(keys.STATE, obj):
            self._store.delete(keys.STATE, key)

    def is_locked(self, obj: bytes) -> bool:
        return obj in self._locks

    def holder(self, obj: bytes) -> str | None:
        return self._locks.get(obj)

    # -- promises ------------------------------------------------------------------------------
    def get_promise(self, obj: bytes, name: str) -> Promise:
        raw = self._store.get(keys.PROMISES, keys.promise_key(obj, name))
        return Promise() if raw is None else _decode_promise(raw)

    def put_promise(self, obj: bytes, name: str, promise: Promise) -> None:
        self._store.put(keys.PROMISES, keys.promise_key(obj, name), _encode(promise))


def state_version(entries: list[tuple[bytes, bytes]]) -> str:
    """A digest of an object's whole state, for optimistic concurrency of operator edits.

    Restate's (``StateMutationVersion::from_user_state``), which the ``restate`` CLI computes from
    the state it read before ``state edit``: SHA-256 over the entries sorted by key, each as its
    index (u64 big-endian), 0x01, key, 0x02, value, 0x03; base64url without padding.
    """
    digest = hashlib.sha256()
    for index, (name, value) in enumerate(sorted(entries)):
        digest.update(index.to_bytes(8, "big") + b"\x01" + name + b"\x02" + value + b"\x03")
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
