"""The group-committing store over a real RocksDB in a temp dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
