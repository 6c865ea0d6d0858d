"""The stored rule book: loaded from META, changed atomically, written through ``Metadata`` (so
that with several workers the change reaches every one of them, like deployments do)."""

from __future__ import annotations

import asyncio

import msgspec

from engine.limits.book import Delete, RuleBook, Upsert
from engine.storage import keys
from engine.storage.metadata import Metadata

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(RuleBook).decode


class LimitRegistry:
    def __init__(self, meta: Metadata) -> None:
        self._meta = meta
        self._lock = asyncio.Lock()  # one read-modify-write of the book at a time
        self.book = RuleBook()

    def load(self) -> None:
        """(Re)read the book from the store (after start, or a replicated metadata change)."""
        raw = self._meta.store.get(keys.META, keys.LIMIT_RULE_BOOK_KEY)
        self.book = RuleBook() if raw is None else _decode(raw)

    async def change(self, changes: list[Upsert | Delete], now: int) -> tuple[RuleBook, RuleBook]:
        """Apply a batch (all or nothing) and make it durable: the book before and after it;
        raises ``RuleBookError``."""
        async with self._lock:
            before = self.book
            after = before.apply(changes, now)
            if after is not before:
                self._meta.put(keys.LIMIT_RULE_BOOK_KEY, _encode(after))
                await self._meta.commit()
                self.book = after
            return before, after
