"""Leases and cluster metadata on JetStream key-value buckets, by compare-and-set.

Both buckets are 3-replica file streams read through their stream leader (no direct gets, which a
lagging follower may answer), so a read after a successful write sees it.

Leases (bucket ``QUILL_LEASES``, key ``p{p}``): a campaign writes ``{node, url, ttl}`` naming the
revision it saw, and the revision it gets is the new leader's epoch (KV revisions are the bucket
stream's sequence, so they only grow). Renewals name the previous revision again and carry the
epoch. Nobody compares wall clocks: the holder times its lease from just before its write on its
own monotonic clock, and a candidate calls the lease stale only after seeing the same revision for
a whole TTL on *its* monotonic clock, so the holder always gives up first. Safety does not rest on
this: a deposed holder's appends are refused by the log itself.

Metadata (bucket ``QUILL_META``): opaque values under any string key, written by compare-and-set on
the revision the writer read, watched by every node. Keys are stored readable where they can be:
characters outside ``[-/_a-zA-Z0-9]`` (a dot would split the key's subject) become ``=HH`` per UTF-8
byte, so ``service_config/Greeter`` stays itself and ``dapr_app/my.app`` becomes ``dapr_app/my=2Eapp``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from engine.errors import LeaseLost, RevisionMismatch
from engine.log.interface import Lease, MetadataEntry
from engine.log.jetstream_client import WRONG_LAST_SEQUENCE, JetStreamSettings, retrying

LEASES_BUCKET = "QUILL_LEASES"
METADATA_BUCKET = "QUILL_META"


_PLAIN = re.compile(r"[-/_a-zA-Z0-9]")
_ESCAPED = re.compile(r"(?:=[0-9A-F]{2})+")


def kv_key(key: str) -> str:
    if not key:
        raise ValueError("a metadata key cannot be empty")
    return "".join(char if _PLAIN.fullmatch(char) else _escape(char) for char in key)


def _escape(char: str) -> str:
    return "".join(f"={byte:02X}" for byte in char.encode())


def metadata_key(stored: str) -> str:
    return _ESCAPED.sub(lambda run: bytes.fromhex(run.group().replace("=", "")).decode(), stored)


class LeaseValue(msgspec.Struct, frozen=True):
    node: str
    url: str
    ttl: float
    epoch: int = 0  # 0 in a campaign's write: the epoch is that write's own revision


class Bucket:
    """A KV bucket with the reads and compare-and-set writes both stores need, retried through elections."""

    def __init__(self, kv: KeyValue, name: str, settings: JetStreamSettings) -> None:
        self.kv = kv
        self.name = name
        self.settings = settings

    @classmethod
    async def open(cls, js: JetStreamContext, name: str, settings: JetStreamSettings) -> Bucket:
        config = KeyValueConfig(bucket=name, history=1, replicas=settings.replicas, storage=StorageType.FILE)
        kv = await retrying(f"open bucket {name}", lambda: js.create_key_value(config), settings.deadline)
        return cls(kv, name, settings)

    async def stored(self, key: str) -> tuple[int, bytes | None] | None:
        """``(revision, value)`` of the key's latest entry, ``value=None`` for a deletion; ``None`` if never written."""
        return await retrying(f"read {self.name}/{key}", lambda: self._latest(key), self.settings.deadline)

    async def _latest(self, key: str) -> tuple[int, bytes | None] | None:
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError as exc:
            marker = exc.entry
            return None if marker is None or marker.revision is None else (marker.revision, None)
        assert entry.revision is not None
        return entry.revision, entry.value or b""

    async def compare_and_set(self, key: str, value: bytes, last: int) -> int | None:
        """Write if the key's latest revision is ``last`` (0: never written); the new revision, or ``None``."""
        attempts = 0

        async def update() -> int | None:
            nonlocal attempts
            attempts += 1
            try:
                return await self.kv.update(key, value, last=last)
            except nats.js.errors.KeyWrongLastSequenceError:
                if attempts == 1:
                    return None
                # An earlier attempt went unanswered: if it is what moved the key, the write is ours.
                latest = await self._latest(key)
                return latest[0] if latest is not None and latest[1] == value else None

        return await retrying(f"write {self.name}/{key}", update, self.settings.deadline)

    async def compare_and_delete(self, key: str, last: int) -> bool:
        attempts = 0

        async def delete() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                await self.kv.delete(key, last=last)
            except nats.js.errors.APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                if attempts == 1:
                    return False
                latest = await self._latest(key)  # as in compare_and_set: our unanswered delete, or another's?
                return latest is not None and latest[1] is None
            return True

        return await retrying(f"delete {self.name}/{key}", delete, self.settings.deadline)

    async def watch(self, keys: str) -> AsyncGenerator[KeyValue.Entry | None, None]:
        """The latest entry of every matching key, ``None`` once those are delivered, then every change."""
        watcher = await retrying(f"watch {self.name}/{keys}", lambda: self.kv.watch(keys), self.settings.deadline)
        try:
            async for entry in watcher:
                yield entry
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]


def is_deletion(entry: KeyValue.Entry) -> bool:
    return entry.operation in (KV_DEL, KV_PURGE)


class JetStreamLeaseStore:
    """:class:`~engine.log.interface.LeaseStore` on the ``QUILL_LEASES`` bucket."""

    def __init__(self, bucket: Bucket, clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = bucket
        self._ttl = bucket.settings.lease_ttl
        self.clock = clock
        self._seen: dict[int, tuple[int, float]] = {}  # partition -> (revision, when first seen here)

    @classmethod
    async def open(
        cls, js: JetStreamContext, settings: JetStreamSettings, clock: Callable[[], float] = time.monotonic
    ) -> JetStreamLeaseStore:
        return cls(await Bucket.open(js, LEASES_BUCKET, settings), clock)

    def _observe(self, partition: int, revision: int, data: bytes) -> Lease:
        seen = self._seen.get(partition)
        if seen is None or seen[0] != revision:
            seen = self._seen[partition] = (revision, self.clock())
        value = msgspec.json.decode(data, type=LeaseValue)
        epoch = value.epoch or revision
        return Lease(partition, value.node, value.url, epoch=epoch, revision=revision, ttl=value.ttl, since=seen[1])

    async def current(self, partition: int) -> Lease | None:
        stored = await self._bucket.stored(f"p{partition}")
        if stored is None or stored[1] is None:
            return None
        return self._observe(partition, stored[0], stored[1])

    async def campaign(self, partition: int, node: str, url: str) -> Lease | None:
        started = self.clock()
        stored = await self._bucket.stored(f"p{partition}")
        last = 0 if stored is None else stored[0]
        if stored is not None and stored[1] is not None and self._observe(partition, last, stored[1]).valid(started):
            return None
        value = msgspec.json.encode(LeaseValue(node=node, url=url, ttl=self._ttl))
        revision = await self._bucket.compare_and_set(f"p{partition}", value, last)
        if revision is None:
            return None  # another candidate wrote first
        self._seen[partition] = (revision, started)
        return Lease(partition, node, url, epoch=revision, revision=revision, ttl=self._ttl, since=started)

    async def renew(self, lease: Lease) -> Lease:
        started = self.clock()
        value = msgspec.json.encode(LeaseValue(node=lease.node, url=lease.url, ttl=lease.ttl, epoch=lease.epoch))
        revision = await self._bucket.compare_and_set(f"p{lease.partition}", value, lease.revision)
        if revision is not None:
            self._seen[lease.partition] = (revision, started)
            return replace(lease, revision=revision, since=started)
        # A renewal whose answer was lost may have landed: then the lease is still ours, at a revision
        # we have not seen. Keep the old ``since``: the write that landed started after it.
        now = await self.current(lease.partition)
        if now is not None and now.node == lease.node and now.epoch == lease.epoch:
            return replace(lease, revision=now.revision)
        holder = "nobody" if now is None else f"{now.node} (epoch {now.epoch})"
        raise LeaseLost(f"partition {lease.partition}: the lease of epoch {lease.epoch} is lost, held by {holder}")

    async def release(self, lease: Lease) -> None:
        await self._bucket.compare_and_delete(f"p{lease.partition}", lease.revision)
        self._seen.pop(lease.partition, None)

    async def watch(self, partition: int) -> AsyncGenerator[Lease | None, None]:
        delivered = False
        async with aclosing(self._bucket.watch(f"p{partition}")) as entries:
            async for entry in entries:
                if entry is None:  # initial value delivered: none means no holder
                    if not delivered:
                        yield None
                    continue
                delivered = True
                if is_deletion(entry) or entry.value is None or entry.revision is None:
                    yield None
                else:
                    yield self._observe(partition, entry.revision, entry.value)


class JetStreamMetadataStore:
    """:class:`~engine.log.interface.MetadataStore` on the ``QUILL_META`` bucket."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: JetStreamSettings) -> JetStreamMetadataStore:
        return cls(await Bucket.open(js, METADATA_BUCKET, settings))

    async def get(self, key: str) -> MetadataEntry | None:
        stored = await self._bucket.stored(kv_key(key))
        if stored is None or stored[1] is None:
            return None
        return MetadataEntry(key, stored[1], stored[0])

    async def put(self, key: str, value: bytes, *, expected_revision: int) -> int:
        last = expected_revision
        if expected_revision == 0:
            # "Must not exist" also holds after a deletion, whose marker has a revision of its own.
            stored = await self._bucket.stored(kv_key(key))
            if stored is not None and stored[1] is None:
                last = stored[0]
        revision = await self._bucket.compare_and_set(kv_key(key), value, last)
        if revision is None:
            raise await self._mismatch(key, expected_revision)
        return revision

    async def delete(self, key: str, *, expected_revision: int) -> None:
        if not await self._bucket.compare_and_delete(kv_key(key), expected_revision):
            raise await self._mismatch(key, expected_revision)

    async def _mismatch(self, key: str, expected: int) -> RevisionMismatch:
        now = await self.get(key)
        return RevisionMismatch(key, expected, None if now is None else now.revision)

    async def entries(self) -> list[MetadataEntry]:
        found: list[MetadataEntry] = []
        async with aclosing(self._bucket.watch(">")) as entries:
            async for entry in entries:
                if entry is None:  # every live key delivered
                    break
                if not is_deletion(entry) and entry.revision is not None:
                    found.append(MetadataEntry(metadata_key(entry.key), entry.value or b"", entry.revision))
        return found

    async def watch(self) -> AsyncGenerator[MetadataEntry, None]:
        async with aclosing(self._bucket.watch(">")) as entries:
            async for entry in entries:
                if entry is None or entry.revision is None:
                    continue
                value = None if is_deletion(entry) else entry.value or b""
                yield MetadataEntry(metadata_key(entry.key), value, entry.revision)
