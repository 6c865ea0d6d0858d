"""Identifiers: invocation ids that embed their partition key, deployment ids, partition keys.

An invocation id is ``inv_1`` + base62(u64 partition key, 11 chars) + base62(u128 uuid, 22 chars),
the format of the real Restate server, so ids from quill look familiar to Restate tooling and
any component can route an id to its partition without a lookup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import random
from collections.abc import Sequence

# Lower case before upper case: ids of the real server only decode within range with this order.
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_KEY_CHARS = 11  # ceil(64 / log2(62))
_UUID_CHARS = 22  # ceil(128 / log2(62))
INVOCATION_PREFIX = "inv_1"
_INVOCATION_ID_LEN = len(INVOCATION_PREFIX) + _KEY_CHARS + _UUID_CHARS


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _b62(value: int, width: int) -> str:
    # Two digits per division: ids are built on every invocation.
    chars = []
    for _ in range(width // 2):
        value, rem = divmod(value, 3844)
        chars.append(_PAIRS[rem])
    if width % 2:
        chars.append(_ALPHABET[value % 62])
    return "".join(reversed(chars))


def _unb62(text: str) -> int:
    value = 0
    for c in text:
        value = value * 62 + _INDEX[c]
    return value


def random_partition_key() -> int:
    return random.getrandbits(64)


def _random_uuid() -> int:
    # Version-4 style randomness from the seeded PRNG: ids must be unique, not secret, and
    # os.urandom costs a system call per invocation.
    return random.getrandbits(128)


def hashed_partition_key(*parts: str) -> int:
    """A stable partition key, so everything about one object key lands in one partition."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class InvalidInvocationId(ValueError):
    """Not an invocation id; ``reason`` words why as Restate does ("bad format", "bad length")."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"bad invocation id '{text}': {reason}")
        self.reason = reason


def scope_partition_key(scope: str) -> int:
    """The partition key of everything in ``scope`` (a scope has no NUL, so this never equals
    the key of an object)."""
    return hashed_partition_key(scope)


def object_partition_key(service: str, key: str, scope: str | None) -> int:
    """The partition key of a virtual object or workflow (a scoped one lives in its scope's)."""
    return hashed_partition_key(service, key) if scope is None else scope_partition_key(scope)


class InvocationId(str):
    """An invocation id string that also knows its partition key and raw bytes."""

    __slots__ = ()

    @classmethod
    def new(cls, partition_key: int, uuid: int | None = None) -> InvocationId:
        uuid = _random_uuid() if uuid is None else uuid
        return cls(INVOCATION_PREFIX + _b62(partition_key, _KEY_CHARS) + _b62(uuid, _UUID_CHARS))

    @classmethod
    def for_target(
        cls,
        service: str,
        key: str | None,
        local: Sequence[int] = (),
        partitions: int = 1,
        scope: str | None = None,
    ) -> InvocationId:
        """A new id in the partition that owns ``(service, key)``, or the scope's: every invocation
        of a scope lives in one partition, which makes its concurrency limits a local decision.
        Unkeyed targets (``key`` None) may run anywhere: a random partition, one of ``local`` (of ``partitions``)
        when given, so the worker that received the request owns it."""
        if scope is not None:
            return cls.new(scope_partition_key(scope))
        if key is not None:
            return cls.new(hashed_partition_key(service, key))
        partition_key = random_partition_key()
        if local:
            chosen = local[partition_key % len(local)]
            partition_key = partition_key - partition_key % partitions + chosen
            if partition_key >= 1 << 64:
                partition_key -= partitions
        return cls.new(partition_key)

    @classmethod
    def derived(
        cls, parent: bytes, index: int, service: str, key: str | None, scope: str | None = None
    ) -> InvocationId:
        """The id of the invocation that entry ``index`` of invocation ``parent`` (raw bytes)
        creates: derived, not random, so applying the same journal always makes the same id."""
        digest = hashlib.blake2b(parent + index.to_bytes(8, "big"), digest_size=24).digest()
        # An unkeyed callee stays in its caller's partition: no delivery to another one, nor to
        # another worker.
        if scope is not None:
            partition_key = scope_partition_key(scope)
        else:
            partition_key = hashed_partition_key(service, key) if key is not None else int.from_bytes(parent[:8], "big")
        return cls.new(partition_key, int.from_bytes(digest[8:], "big"))

    @classmethod
    def for_workflow(cls, service: str, key: str, scope: str | None = None) -> InvocationId:
        """The one id of a workflow's run: deterministic, so a second run is recognised. A scoped
        run is another workflow than the unscoped one of the same key (as in Restate)."""
        if scope is None:
            digest = hashlib.sha256(b"wf\x00" + service.encode() + b"\x00" + key.encode()).digest()
            return cls.new(hashed_partition_key(service, key), int.from_bytes(digest[:16], "big"))
        digest = hashlib.sha256(b"\x00".join(p.encode() for p in ("wfs", scope, service, key))).digest()
        return cls.new(scope_partition_key(scope), int.from_bytes(digest[:16], "big"))

    @classmethod
    def for_idempotent(
        cls, service: str, key: str | None, handler: str, idempotency_key: str, scope: str | None = None
    ) -> InvocationId:
        """The one id of an idempotent request: repeats resolve to the same invocation. The same
        key under another scope is another invocation (as in Restate). ``key`` None: a plain service."""
        text = key or ""
        if scope is None:
            parts = b"\x00".join(p.encode() for p in ("ik", service, text, handler, idempotency_key))
            partition_key = hashed_partition_key(service, key if key is not None else idempotency_key)
        else:
            parts = b"\x00".join(p.encode() for p in ("iks", scope, service, text, handler, idempotency_key))
            partition_key = scope_partition_key(scope)
        digest = hashlib.sha256(parts).digest()
        return cls.new(partition_key, int.from_bytes(digest[:16], "big"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> InvocationId:
        if len(raw) != 24:
            raise ValueError("an invocation id has 24 bytes")
        return cls.new(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Validate ``text``; raises InvalidInvocationId (with Restate's reason) when it is not one."""
        if not text.startswith("inv_"):
            raise InvalidInvocationId(text, "bad format")
        if not text.startswith(INVOCATION_PREFIX):
            raise InvalidInvocationId(text, "unrecognized codec version")
        if len(text) != _INVOCATION_ID_LEN:
            raise InvalidInvocationId(text, "bad length")
        body = text[len(INVOCATION_PREFIX) :]
        if any(c not in _INDEX for c in body):
            raise InvalidInvocationId(text, "bad format")
        if _unb62(body[:_KEY_CHARS]) >= 1 << 64 or _unb62(body[_KEY_CHARS:]) >= 1 << 128:
            raise InvalidInvocationId(text, "bad format")
        return cls(text)

    @property
    def partition_key(self) -> int:
        start = len(INVOCATION_PREFIX)
        return _unb62(self[start : start + _KEY_CHARS])

    def to_bytes(self) -> bytes:
        """The 24 raw bytes the service protocol carries in ``StartMessage.id``."""
        start = len(INVOCATION_PREFIX) + _KEY_CHARS
        return self.partition_key.to_bytes(8, "big") + _unb62(self[start:]).to_bytes(16, "big")


def new_deployment_id() -> str:
    # Like invocation ids, "1" is the id scheme version: the CLI refuses deployment ids without it.
    return "dp_1" + _b62(int.from_bytes(os.urandom(16), "big"), _UUID_CHARS)


_AWAKEABLE_PREFIXES = ("sign_1", "prom_1")


def parse_awakeable_id(text: str) -> tuple[InvocationId, int]:
    """The invocation and signal index an awakeable id points to (``sign_1``/``prom_1`` + base64url)."""
    prefix = text[:6]
    if prefix not in _AWAKEABLE_PREFIXES:
        raise ValueError(f"bad awakeable id '{text}': bad format")
    wrong_type = ValueError(f"bad awakeable id '{text}': id doesn't match the expected type")
    body = text[6:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise wrong_type from exc
    if len(raw) != 28:
        raise wrong_type
    return InvocationId.from_bytes(raw[:24]), int.from_bytes(raw[24:], "big")


def awakeable_id(invocation_id: InvocationId, index: int) -> str:
    raw = invocation_id.to_bytes() + index.to_bytes(4, "big")
    return "sign_1" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
