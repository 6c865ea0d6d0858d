"""RocksDB storage with group commit.

Writers stage puts and deletes; a single background task writes everything staged so far as one
``WriteBatch`` and then syncs the WAL once on a dedicated thread, so the event loop never waits
for the disk. Callbacks registered with :meth:`Store.after_commit` run, in registration order,
once the writes staged before them are durable. Until then staged values are visible to
:meth:`Store.get` through an overlay, so the one writer of a partition reads its own writes.

**A failed write is retried, never dropped.** A full disk (or any I/O error) is environmental:
the batch that failed stays staged (and readable through the overlay), its callbacks are told
at once that it is not durable (``Unavailable``, a 503 for whoever waits), and the store reopens
the database (RocksDB refuses every write after a WAL error until it is reopened) and writes the
batch again, with backoff, together with whatever was staged meanwhile. Once it is durable every
callback runs again with no error, so the effects of those commands (answering a caller,
starting an attempt) happen then, and never before. :attr:`Store.failure` says whether writes
fail right now (the health endpoints answer 503 while it is set).

**One memory budget.** The block cache (shared by every column family) and the memtables (a
write-buffer manager shared by every column family) split ``memory_budget``; the WAL is bounded
by ``max_total_wal_size``, which makes RocksDB flush the column families that pin old WAL files
(a rarely written one such as ``meta`` would otherwise keep every WAL file alive: issue 17 saw
1.9 GB of WAL for 72 MB of data).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import rocksdict

from engine.errors import StartupError, Unavailable
from engine.storage import keys
from engine.telemetry.metrics import NO_METRICS, Metrics

log = logging.getLogger(__name__)

CommitCallback = Callable[["Exception | None"], None]

_RETRY_FIRST, _RETRY_MAX = 0.2, 5.0  # seconds between write retries while the disk fails


@dataclass(frozen=True)
class StorageOptions:
    memory_budget: int = 256 * 1024 * 1024  # block cache + memtables
    max_total_wal_size: int = 128 * 1024 * 1024
    max_open_files: int = 512


class Store:
    def __init__(self, path: Path, options: StorageOptions | None = None, metrics: Metrics = NO_METRICS) -> None:
        self._metrics = metrics
        self._path = path
        self._options = options or StorageOptions()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create data dir {path}: {exc.strerror}") from exc
        # Shared by every open of the database (a reopen after a disk failure keeps the budget).
        budget = self._options.memory_budget
        self._cache = rocksdict.Cache(budget // 2)
        self._write_buffers = rocksdict.WriteBufferManager(budget // 2, False)
        self._open()
        # Writes go to the WAL unsynced; durability comes from flush_wal(sync=True) afterwards.
        # rocksdict holds the GIL for the whole of a synced write (fsync included), which would
        # stall the event loop, while flush_wal releases it.
        self._unsynced = rocksdict.WriteOptions()
        self._unsynced.sync = False
        self._batch = rocksdict.WriteBatch(raw_mode=True)
        self._overlay: dict[tuple[str, bytes], bytes | None] = {}
        # Every staged write, with the overlay value it replaced: a savepoint can be undone, and the
        # batch rebuilt after a reopen.
        self._ops: list[_Op] = []
        self._callbacks: list[CommitCallback] = []
        self._wakeup = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quill-fsync")
        self._task: asyncio.Task[None] | None = None
        self.failure: Exception | None = None  # set while writes fail (a full disk, say)
        self.commits = 0  # group commits written, for tests and metrics
        # Cluster mode: a partition's log entries are appended to the replicated log before the
        # batch is written here; this RocksDB is then a cache of the log and needs no fsync.
        self.appender: Appender | None = None
        self.refused: Exception | None = None  # cluster mode: the log refused a write (deposed)

    @property
    def database(self) -> rocksdict.Rdict:
        """The RocksDB itself, for a checkpoint (cluster snapshots)."""
        return self._db

    def _open(self, *, read_only: bool = False) -> None:
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        try:
            self._db = rocksdict.Rdict(
                str(self._path),
                self._db_options(),
                column_families={name: self._db_options() for name in keys.COLUMN_FAMILIES},
                access_type=access,
            )
        except Exception as exc:  # noqa: BLE001 - rocksdict raises a plain Exception for every failure
            raise StartupError(_open_failure(self._path, exc)) from exc
        self._columns = {name: self._db.get_column_family(name) for name in keys.COLUMN_FAMILIES}
        self._handles = {name: self._db.get_column_family_handle(name) for name in keys.COLUMN_FAMILIES}

    def _db_options(self) -> rocksdict.Options:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        budget = self._options.memory_budget
        options.set_write_buffer_manager(self._write_buffers)
        options.set_db_write_buffer_size(budget // 2)
        # Small memtables per column family: 13 of them share the write budget.
        options.set_write_buffer_size(max(1 << 20, min(64 << 20, budget // 16)))
        options.set_max_total_wal_size(self._options.max_total_wal_size)
        options.set_max_open_files(self._options.max_open_files)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self._cache)
        options.set_block_based_table_factory(table)
        return options

    # -- reads -------------------------------------------------------------------------------
    def get(self, column: str, key: bytes) -> bytes | None:
        staged = self._overlay.get((column, key), _MISSING)
        if staged is not _MISSING:
            return staged  # type: ignore[return-value]
        value: bytes | None = self._columns[column].get(key)
        return value

    def scan(self, column: str, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed entries under ``prefix`` (used at start-up, when nothing is staged, and by
        readers on threads), from the one past ``after`` if given."""
        it = self._columns[column].iter()
        it.seek(prefix if after is None else max(after, prefix))
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            if key != after:
                yield key, it.value()
            it.next()

    def scan_range(
        self, column: str, begin: bytes, end: bytes, *, reverse: bool = False, after: bytes | None = None
    ) -> Iterator[bytes]:
        """Committed keys in ``[begin, end)``, ascending (or descending), strictly past ``after``
        in that order. Safe on a thread: it reads RocksDB only, never the staged overlay."""
        it = self._columns[column].iter()
        if not reverse:
            it.seek(begin if after is None else max(after, begin))
            while it.valid():
                key: bytes = it.key()
                if key >= end:
                    break
                if key != after:
                    yield key
                it.next()
            return
        it.seek_for_prev(end if after is None else min(after, end))
        while it.valid():
            key = it.key()
            if key < begin:
                break
            if key != after and key < end:
                yield key
            it.prev()

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
    # Staging never fails: a write that cannot be made durable is retried by the commit task, and
    # those who wait for it are told (see the module docstring). The facade refuses new work
    # while :attr:`failure` is set, which bounds what accumulates meanwhile.
    def put(self, column: str, key: bytes, value: bytes) -> None:
        self._batch.put(key, value, self._handles[column])
        self._ops.append((_PUT, column, key, value, self._overlay.get((column, key), _MISSING)))
        self._overlay[(column, key)] = value
        self._wakeup.set()

    def delete(self, column: str, key: bytes) -> None:
        self._batch.delete(key, self._handles[column])
        self._ops.append((_DELETE, column, key, None, self._overlay.get((column, key), _MISSING)))
        self._overlay[(column, key)] = None
        self._wakeup.set()

    def delete_range(self, column: str, begin: bytes, end: bytes) -> None:
        """Range deletes bypass the overlay: use them only for data nobody reads back (log trim,
        a completed invocation's journal)."""
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
        self._batch = self._rebuild(self._ops)

    def after_commit(self, callback: CommitCallback) -> None:
        """``callback(None)`` once everything staged so far is durable. If a write fails first,
        ``callback(error)`` is called at once, and ``callback(None)`` still follows once the
        retried write is durable."""
        self._callbacks.append(callback)
        self._wakeup.set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._commit_loop(), name="quill-group-commit")

    async def close(self) -> None:
        if self._task is not None:
            if self.failure is None:
                await self.flush()
            else:
                log.error("closing the store while writes fail: what was not yet durable is lost")
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._thread.shutdown(wait=True)
        self._close_db()

    async def flush(self) -> None:
        """Wait until everything staged so far is durable (Unavailable if a write fails first)."""
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

    # -- the commit task ---------------------------------------------------------------------
    def _take(self) -> tuple[rocksdict.WriteBatch, list[_Op], list[CommitCallback]]:
        taken = self._batch, self._ops, self._callbacks
        self._batch = rocksdict.WriteBatch(raw_mode=True)
        self._ops, self._callbacks = [], []
        return taken

    async def _write(self, batch: rocksdict.WriteBatch) -> Exception | None:
        self.commits += 1
        writes = batch.len()  # the write consumes the batch
        try:
            self._db.write(batch, self._unsynced)
            fsync_seconds = 0.0
            if self.appender is None:  # a cache of a replicated log needs no fsync
                fsync_seconds = await asyncio.get_running_loop().run_in_executor(self._thread, self._sync_wal)
        except Exception as exc:  # noqa: BLE001 - every storage failure is retried the same way
            return exc
        self._metrics.group_commit(writes, fsync_seconds)
        return None

    async def _commit_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # One call per commit, so nothing of this batch stays referenced while the task
            # waits for the next one (a 32 MiB body would otherwise stay alive until then).
            await self._commit()

    async def _commit(self) -> None:
        batch, staged, callbacks = self._take()
        if self.appender is not None and (self.refused is not None or not batch.is_empty()):
            try:
                if self.refused is None:
                    await self._append(batch, staged, self.appender)
            except Exception as exc:  # noqa: BLE001 - fenced or unreachable: this leader is done
                log.warning("the partition's log refused a write, so this node stops leading it: %s", exc)
                self.refused = Unavailable(f"the partition's log refused the write: {exc}")
            if self.refused is not None:
                self._settle(staged, [])
                for callback in callbacks:
                    _call(callback, self.refused)
                return
        error = await self._write(batch) if not batch.is_empty() else None
        if error is not None:
            await self._retry_until_durable(staged, callbacks, error)
        else:
            self._settle(staged, callbacks)

    async def _retry_until_durable(self, staged: list[_Op], callbacks: list[CommitCallback], error: Exception) -> None:
        self.failure = error
        log.error("storage write failed, retrying until it succeeds (new work is refused): %s", error)
        told = 0
        delay = _RETRY_FIRST
        failures = 1
        while True:
            failed = Unavailable(f"storage write failed: {error}")
            for callback in callbacks[told:]:
                _call(callback, failed)
            told = len(callbacks)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)
            _, more_staged, more_callbacks = self._take()  # staged meanwhile: written after, in order
            staged += more_staged
            callbacks += more_callbacks
            if not self._room_for(staged):
                error = OSError(28, "No space left on device (waiting for free space)")
            else:
                try:
                    self._reopen()
                except StartupError as exc:
                    error = exc
                else:
                    if (written := await self._write(self._rebuild(staged))) is None:
                        break
                    error = written
            failures += 1
            if failures % 10 == 0:
                log.error("storage writes still fail after %d attempts: %s", failures, error)
        self.failure = None
        log.warning("storage writes succeed again after %d failed attempts", failures)
        self._settle(staged, callbacks)

    def _sync_wal(self) -> float:
        """On the fsync thread: how long the sync took, without the hop to and from the thread."""
        started = time.perf_counter()
        self._db.flush_wal(True)
        return time.perf_counter() - started

    async def _append(self, batch: rocksdict.WriteBatch, staged: list[_Op], appender: Appender) -> None:
        """Append the batch's log entries as one record; the sequence it got is stored with it."""
        entries = [value for kind, column, _, value, _ in staged if kind == _PUT and column == keys.LOG]
        if entries:
            sequence = await appender.append(entries)
            batch.put(keys.APPLIED_KEY, appender.position(sequence), self._handles[keys.META])

    def _room_for(self, staged: list[_Op]) -> bool:
        """Whether the disk has room for the batch (and RocksDB's new WAL and MANIFEST): reopening
        on a disk that is still full would fail, and leave nothing to read from meanwhile."""
        needed = sum(len(key) + len(value) for kind, _, key, value, _ in staged if kind == _PUT and value)
        try:
            return shutil.disk_usage(self._path).free > 2 * needed + (4 << 20)
        except OSError:
            return False

    def _reopen(self) -> None:
        """RocksDB refuses all writes after a WAL error until the database is reopened."""
        self._close_db()
        try:
            self._open()
        except StartupError:
            self._open(read_only=True)  # reads go on (from what is durable plus the overlay)
            raise
        # Staged puts made before the reopen used the old handles: rebuilt from ``_ops`` too.
        self._batch = self._rebuild(self._ops)

    def _rebuild(self, staged: list[_Op]) -> rocksdict.WriteBatch:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for kind, column, key, value, _ in staged:
            handle = self._handles[column]
            if kind == _PUT:
                batch.put(key, value, handle)
            elif kind == _DELETE:
                batch.delete(key, handle)
            else:
                batch.delete_range(key, value, handle)
        return batch

    def _close_db(self) -> None:
        # Column-family views keep the database open (and its lock held) until dropped.
        self._columns = {}
        self._handles = {}
        try:
            self._db.close()
        except Exception as exc:  # noqa: BLE001 - after a write error close() fails; dropping still closes
            log.debug("closing the database after a failure: %s", exc)
        del self._db
        gc.collect()  # drop every remaining reference now, so the LOCK is free for the reopen

    def _settle(self, staged: list[_Op], callbacks: list[CommitCallback]) -> None:
        for kind, column, key, value, _ in staged:
            # Only drop overlay entries not overwritten by a later, still staged write.
            if kind != _RANGE and self._overlay.get((column, key), _MISSING) is value:
                del self._overlay[(column, key)]
        for callback in callbacks:
            _call(callback, None)


def _call(callback: CommitCallback, error: Exception | None) -> None:
    # A failing callback is a bug of its owner (which fails itself loudly); it must never end the
    # commit task, or every later write would wait forever.
    try:
        callback(error)
    except Exception:
        log.exception("a commit callback failed")


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
_Op = tuple[int, str, bytes, Any, object]


def _open_failure(path: Path, exc: Exception) -> str:
    """RocksDB's open error as one line an operator can act on."""
    text = str(exc)
    if "lock" in text.lower():
        return f"data dir {path} is in use by another quill process (its LOCK file is held)"
    if is_disk_full(exc):
        return f"data dir {path}: no space left on device"
    return f"cannot open data dir {path}: {text}"


def is_disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "no space left" in text or "enospc" in text or getattr(exc, "errno", None) == 28
