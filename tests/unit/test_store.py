"""The group-committing store over a real RocksDB in a temp dir."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Unavailable
from engine.storage import keys
from engine.storage.store import Store


async def test_many_writers_share_few_fsyncs(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()
    order: list[int] = []

    async def writer(i: int) -> None:
        store.put(keys.META, b"k%d" % i, b"v%d" % i)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        store.after_commit(lambda exc: (order.append(i), done.set_result(None)))
        await done

    await asyncio.gather(*(writer(i) for i in range(500)))
    assert order == list(range(500))  # callbacks run in registration order
    assert 1 <= store.commits < 50  # 500 commits, grouped into few batches
    await store.close()


async def test_staged_writes_are_readable_before_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()
    store.put(keys.STATUS, b"a", b"1")
    assert store.get(keys.STATUS, b"a") == b"1"
    store.delete(keys.STATUS, b"a")
    assert store.get(keys.STATUS, b"a") is None
    store.put(keys.STATUS, b"a", b"2")
    await store.flush()
    assert store.get(keys.STATUS, b"a") == b"2"
    assert store._overlay == {}
    await store.close()


async def test_committed_data_survives_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()
    for i in range(3):
        store.put(keys.JOURNAL, b"p" + bytes([i]), bytes([i]))
    store.put(keys.JOURNAL, b"q", b"other")
    await store.flush()
    await store.close()

    reopened = Store(tmp_path / "db")
    assert list(reopened.scan(keys.JOURNAL, b"p")) == [(b"p\x00", b"\x00"), (b"p\x01", b"\x01"), (b"p\x02", b"\x02")]
    assert reopened.last_key(keys.JOURNAL, b"p") == b"p\x02"
    assert reopened.last_key(keys.JOURNAL, b"z") is None
    reopened.start()
    await reopened.close()


async def test_a_raising_commit_callback_does_not_stop_later_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()

    def broken(error: Exception | None) -> None:
        raise RuntimeError("a bug in a callback")

    store.put(keys.META, b"a", b"1")
    store.after_commit(broken)
    await store.flush()  # the callback's commit, and the flush queued behind it
    store.put(keys.META, b"b", b"2")
    await asyncio.wait_for(store.flush(), 5)  # before the fix: the commit task was dead, this hung
    await store.close()
    reopened = Store(tmp_path / "db")
    assert reopened.get(keys.META, b"b") == b"2"
    reopened.start()
    await reopened.close()


async def test_a_failed_write_is_reported_then_retried_until_durable(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()
    faults = 3
    real_write = store._write

    async def failing_write(batch: Any) -> Exception | None:  # an injected disk fault, three times
        nonlocal faults
        if faults:
            faults -= 1
            return OSError(28, "No space left on device")
        return await real_write(batch)

    store._write = failing_write  # type: ignore[method-assign]
    heard: list[Exception | None] = []
    store.put(keys.META, b"a", b"1")
    store.after_commit(heard.append)
    with pytest.raises(Unavailable, match="storage write failed"):
        await store.flush()  # not durable: those who wait hear it at once (a 503 for a caller)
    assert store.failure is not None  # what the health endpoints report
    assert store.get(keys.META, b"a") == b"1"  # still staged, still readable
    store.put(keys.META, b"b", b"2")  # staging goes on meanwhile ...
    for _ in range(faults + 1):  # ... each retry that fails tells the new waiters ...
        try:
            await asyncio.wait_for(store.flush(), 10)
            break
        except Unavailable:
            continue
    # ... and it is all written, in order, once the disk has room.
    assert store.failure is None
    assert [type(e) for e in heard] == [Unavailable, type(None)]  # told of the failure, then durable
    await store.close()
    reopened = Store(tmp_path / "db")
    assert (reopened.get(keys.META, b"a"), reopened.get(keys.META, b"b")) == (b"1", b"2")
    reopened.start()
    await reopened.close()
