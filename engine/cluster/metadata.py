"""Metadata (deployments, overrides, Dapr apps) in the cluster's key-value bucket.

The bucket is the truth: an admin change is a compare-and-set there (against the revision this
node last saw of the key, so two nodes editing at once get a 409, not a lost update), and only
then written into the node's own store. Every node watches the bucket and applies what changes,
its own writes included, then reloads its registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing

from engine.errors import Conflict, RevisionMismatch
from engine.log.interface import MetadataStore
from engine.storage.metadata import PREFIXES, Change, Metadata

log = logging.getLogger(__name__)


class MetadataSync:
    def __init__(self, bucket: MetadataStore, meta: Metadata, reload: Callable[[], None]) -> None:
        self._bucket = bucket
        self._meta = meta
        self._reload = reload
        self._revisions: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        entries = [e for e in await self._bucket.entries() if e.key.encode().startswith(PREFIXES)]
        for entry in entries:
            self._revisions[entry.key] = entry.revision
        self._meta.replace([(e.key.encode(), e.value) for e in entries])
        await self._meta.store.flush()
        self._reload()
        self._meta.primary = self._write
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="quill-metadata-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write(self, changes: list[Change]) -> None:
        for key, value in changes:
            name = key.decode()
            expected = self._revisions.get(name, 0)
            try:
                if value is None:
                    if expected:
                        await self._bucket.delete(name, expected_revision=expected)
                    self._revisions.pop(name, None)
                else:
                    self._revisions[name] = await self._bucket.put(name, value, expected_revision=expected)
            except RevisionMismatch as exc:
                raise Conflict(f"'{name}' was changed on another node meanwhile; retry") from exc

    async def _watch(self) -> None:
        async with aclosing(self._bucket.watch()) as changes:
            async for entry in changes:
                if not entry.key.encode().startswith(PREFIXES):
                    continue
                if entry.value is None:
                    self._revisions.pop(entry.key, None)
                else:
                    self._revisions[entry.key] = max(entry.revision, self._revisions.get(entry.key, 0))
                self._meta.apply([(entry.key.encode(), entry.value)])
                await self._meta.store.flush()
                self._reload()
