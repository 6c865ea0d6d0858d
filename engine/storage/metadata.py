"""Writes of metadata (deployments, service overrides, Dapr apps, the limit rule book): durable,
then replicated.

The registry and the Dapr apps write through this instead of the store, so that the change reaches
every process before the admin call answers. With several workers, ``commit`` waits for the local
write and then for ``replicate`` (worker 0 sends it to the others). In cluster mode the cluster's
metadata store is the truth: ``primary`` (a compare-and-set write there) comes first, and only a
change it accepted is written here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.storage import keys
from engine.storage.store import Store

Change = tuple[bytes, bytes | None]  # (META key, value; None = deleted)
Replicate = Callable[[list[Change]], Awaitable[None]]

# What of META is metadata (the rest of META is this store's own: partition count, indexes).
PREFIXES = (keys.DEPLOYMENT_PREFIX, keys.SERVICE_CONFIG_PREFIX, keys.DAPR_APP_PREFIX, keys.LIMIT_RULES_PREFIX)


class Metadata:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.primary: Replicate | None = None
        self.replicate: Replicate | None = None
        self._changes: list[Change] = []

    def put(self, key: bytes, value: bytes) -> None:
        self._changes.append((key, value))

    def delete(self, key: bytes) -> None:
        self._changes.append((key, None))

    async def commit(self) -> None:
        """Make the changes since the last commit durable (first where the truth is), then on
        every worker; a change the primary refused is not made anywhere."""
        changes, self._changes = self._changes, []
        if not changes:
            return
        if self.primary is not None:
            await self.primary(changes)
        self.apply(changes)
        await self.store.flush()
        if self.replicate is not None:
            await self.replicate(changes)

    def snapshot(self) -> list[Change]:
        """Every metadata entry, to bring another worker up to date."""
        return [(key, value) for prefix in PREFIXES for key, value in self.store.scan(keys.META, prefix)]

    def replace(self, entries: list[Change]) -> None:
        """Make this store's metadata exactly ``entries`` (staged; the caller flushes)."""
        for prefix in PREFIXES:
            for key, _ in self.store.scan(keys.META, prefix):
                self.store.delete(keys.META, key)
        self.apply(entries)

    def apply(self, changes: list[Change]) -> None:
        for key, value in changes:
            if value is None:
                self.store.delete(keys.META, key)
            else:
                self.store.put(keys.META, key, value)
