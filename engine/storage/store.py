"""RocksDB storage with group commit.

Writers stage puts and deletes; a single background task writes everything staged so far as one
``WriteBatch`` and then syncs the WAL once on a dedicated thread, so the event loop never waits
for the disk. Callbacks
registered with :meth:`Store.after_commit` run, in registration order, once the writes staged
before them are durable. Until then staged values are visible to :meth:`Store.get` through an
overlay, so the one writer of a partition reads its own writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import rocksdict

from engine.errors import Unavailable
from engine.storage import keys

log = logging.getLogger(__name__)

CommitCallback = Callable[["Exception | None"], None]


class Store:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        column_options = {name: rocksdict.Options(raw_mode=True) for name in keys.COLUMN_FAMILIES}
        self._db = rocksdict.Rdict(str(path), options, column_families=column_options)
        self._columns = {name: self._db.get_column_family(name) for name in keys.COLUMN_FAMILIES}
        self._handles = {name: self._db.get_column_family_handle(name) for name in keys.COLUMN_FAMILIES}
        # Writes go to the WAL unsynced; durability comes from flush_wal(sync=True) afterwards.
        # rocksdict holds the GIL for the whole of a synced write (fsync included), which would
        # stall the event loop, while flush_wal releases it.
        self._unsynced = rocksdict.WriteOptions()
        self._unsynced.sync = False
        self._batch = rocksdict.WriteBatch(raw_mode=True)
        self._overlay: dict[tuple[str, bytes], bytes | None] = {}
        # Every staged write, with the overlay value it replaced, so a savepoint can be undone.
        self._ops: list[_Op] = []
        self._callbacks: list[CommitCallback] = []
        self._wakeup = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quill-fsync")
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self.commits = 0  # group commits written, for tests and metrics
        # Cluster mode: a partition's log entries are appended to the replicated log before the
        # batch is written here; this RocksDB is then a cache of the log and needs no fsync.
        self.appender: Appender | None = None

    @property
    def database(self) -> rocksdict.Rdict:
        """The RocksDB itself, for a checkpoint (cluster snapshots)."""
        return self._db

    # -- reads -------------------------------------------------------------------------------
    def get(self, column: str, key: bytes) -> bytes | None:
        staged = self._overlay.get((column, key), _MISSING)
        if staged is not _MISSING:
            return staged  # type: ignore[return-value]
        value: bytes | None = self._columns[column].get(key)
        return value

    def scan(self, column: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed entries under ``prefix`` (used at start-up, when nothing is staged)."""
        it = self._columns[column].iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()

    def scan_merged(self, column: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Entries under ``prefix`` as a reader of staged writes sees them, in key order."""
        merged = dict(self.scan(column, prefix))
        for (staged_column, key), value in self._overlay.items():
            if staged_column == column and key.startswith(prefix):
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        return sorted(merged.items())

    def last_key(self, column: str, prefix: bytes) -> bytes | None:
        """The greatest committed key under ``prefix``."""
        it = self._columns[column].iter()
        it.seek_for_prev(prefix + b"\xff" * 16)
        if it.valid():
            key: bytes = it.key()
            if key.startswith(prefix):
                return key
        return None

    # -- writes ------------------------------------------------------------------------------
    def put(self, column: str, key: bytes, value: bytes) -> None:
        self._check()
        self._batch.put(key, value, self._handles[column])
        self._ops.append((_PUT, column, key, value, self._overlay.get((column, key), _MISSING)))
        self._overlay[(column, key)] = value
        self._wakeup.set()

    def delete(self, column: str, key: bytes) -> None:
        self._check()
        self._batch.delete(key, self._handles[column])
        self._ops.append((_DELETE, column, key, None, self._overlay.get((column, key), _MISSING)))
        self._overlay[(column, key)] = None
        self._wakeup.set()

    def delete_range(self, column: str, begin: bytes, end: bytes) -> None:
        """Range deletes bypass the overlay: use them only for data nobody reads back (log trim,
        a completed invocation's journal)."""
        self._check()
        self._batch.delete_range(begin, end, self._handles[column])
        self._ops.append((_RANGE, column, begin, end, _MISSING))
        self._wakeup.set()

    def savepoint(self) -> int:
        """A mark in the staged writes, to :meth:`rollback` to if what follows must not commit."""
        return len(self._ops)

    def rollback(self, savepoint: int) -> None:
        """Unstage every write since ``savepoint`` (a command that failed half-way)."""
        for kind, column, key, _, previous in reversed(self._ops[savepoint:]):
            if kind == _RANGE:
                continue
            if previous is _MISSING:
                del self._overlay[(column, key)]
            else:
                self._overlay[(column, key)] = previous  # type: ignore[assignment]
        del self._ops[savepoint:]
        # WriteBatch has no savepoints in rocksdict: rebuild it from what stays staged.
        self._batch = rocksdict.WriteBatch(raw_mode=True)
        for kind, column, key, value, _ in self._ops:
            handle = self._handles[column]
            if kind == _PUT:
                self._batch.put(key, value, handle)
            elif kind == _DELETE:
                self._batch.delete(key, handle)
            else:
                assert value is not None
                self._batch.delete_range(key, value, handle)

    def after_commit(self, callback: CommitCallback) -> None:
        self._callbacks.append(callback)
        self._wakeup.set()

    def _check(self) -> None:
        if self._failure is not None:
            raise Unavailable(f"storage failed: {self._failure}")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._commit_loop(), name="quill-group-commit")

    async def close(self) -> None:
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._thread.shutdown(wait=True)
        # Column-family views keep the database open (and its lock held) until dropped.
        self._columns.clear()
        self._handles.clear()
        self._db.close()

    async def flush(self) -> None:
        """Wait until everything staged so far is durable."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(error: Exception | None) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(None)

        self.after_commit(settle)
        await done

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, staged, callbacks = self._batch, self._ops, self._callbacks
            self._batch = rocksdict.WriteBatch(raw_mode=True)
            self._ops, self._callbacks = [], []
            error: Exception | None = None
            if not batch.is_empty():
                self.commits += 1
                try:
                    if self.appender is not None:
                        await self._append(batch, staged, self.appender)
                        self._db.write(batch, self._unsynced)
                    else:
                        self._db.write(batch, self._unsynced)
                        await loop.run_in_executor(self._thread, self._db.flush_wal, True)
                except Exception as exc:  # noqa: BLE001 - any storage failure stops all writes
                    log.critical("storage write failed, refusing further writes: %s", exc)
                    self._failure = exc
                    error = Unavailable(f"storage write failed: {exc}")
            for kind, column, key, value, _ in staged:
                # Only drop overlay entries not overwritten by a later, still staged write.
                if kind != _RANGE and self._overlay.get((column, key), _MISSING) is value:
                    del self._overlay[(column, key)]
            for callback in callbacks:
                # A failing callback is a bug of its owner (which fails itself loudly); it must
                # never end this loop, or every later write would wait forever.
                try:
                    callback(error)
                except Exception:
                    log.exception("a commit callback failed")

    async def _append(self, batch: rocksdict.WriteBatch, staged: list[_Op], appender: Appender) -> None:
        """Append the batch's log entries as one record; the sequence it got is stored with it."""
        entries = [value for kind, column, _, value, _ in staged if kind == _PUT and column == keys.LOG]
        if entries:
            sequence = await appender.append(entries)  # type: ignore[arg-type]  # puts carry bytes
            batch.put(keys.APPLIED_KEY, appender.position(sequence), self._handles[keys.META])


class Appender(Protocol):
    """The replicated step of a group commit (``engine.cluster.appender``)."""

    async def append(self, entries: list[bytes]) -> int:
        """Append the entries as one record; its sequence once it is replicated."""
        ...

    def position(self, sequence: int) -> bytes:
        """What the store keeps as its applied position after record ``sequence``."""
        ...


_MISSING = object()
_PUT, _DELETE, _RANGE = 0, 1, 2
# (kind, column, key, value — or the range end —, the overlay value it replaced or _MISSING)
_Op = tuple[int, str, bytes, bytes | None, object]
