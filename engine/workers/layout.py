"""How a data dir is laid out across workers, fixed at its first start.

One worker (the default) keeps today's layout: one RocksDB in the data dir. N workers keep one
RocksDB per worker under ``w{k}/`` and a ``quill-layout.json`` saying N; starting a data dir with
another N is refused, since ids and keys were routed with it (no silent re-partitioning).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

LAYOUT_FILE = "quill-layout.json"


class Layout(msgspec.Struct, frozen=True):
    workers: int


class LayoutError(ValueError):
    """The data dir was created for another number of workers."""


class WorkerPlan(msgspec.Struct, frozen=True):
    """Which worker this process is, of how many, for which data dir."""

    index: int
    count: int
    namespace: str  # unique per data dir: names the workers' local sockets

    def owns(self, partition: int) -> bool:
        return partition % self.count == self.index


def settle(data_dir: Path, workers: int) -> Layout:
    """The data dir's layout, written at its first start; LayoutError if ``workers`` differs."""
    if workers < 1:
        raise LayoutError("workers must be at least 1")
    path = data_dir / LAYOUT_FILE
    if path.exists():
        stored = msgspec.json.decode(path.read_bytes(), type=Layout)
    elif (data_dir / "CURRENT").exists():
        stored = Layout(workers=1)  # a data dir of the single-process layout
    else:
        stored = Layout(workers=workers)
        if workers > 1:
            data_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(msgspec.json.encode(stored))
    if stored.workers != workers:
        raise LayoutError(
            f"the data dir {data_dir} was created with {stored.workers} worker(s); start it with"
            f" --workers {stored.workers} (quill does not re-partition an existing data dir)"
        )
    return stored


def store_path(data_dir: Path, plan: WorkerPlan | None) -> Path:
    return data_dir if plan is None else data_dir / f"w{plan.index}"


def namespace(data_dir: Path) -> str:
    return hashlib.blake2b(str(data_dir.resolve()).encode(), digest_size=6).hexdigest()
