"""A partition's RocksDB as one byte stream for the snapshot store, and back.

A RocksDB checkpoint is a consistent copy of the database as of one moment that costs almost
nothing when made on the database's own filesystem (SST files are hard-linked, only the manifest
and WAL are copied); it is packed as an uncompressed tar (SST blocks are compressed already). Both
functions block on the disk: call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

import rocksdict


def pack_checkpoint(db: rocksdict.Rdict, scratch: Path, into: BinaryIO) -> None:
    """Write a checkpoint of ``db`` into ``into`` as a tar; ``scratch`` must be on the db's filesystem."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="checkpoint-") as work:
        checkpoint = Path(work) / "db"  # must not exist yet: RocksDB creates it
        rocksdict.Checkpoint(db).create_checkpoint(str(checkpoint))
        with tarfile.open(fileobj=into, mode="w") as tar:
            for path in sorted(checkpoint.iterdir()):
                tar.add(path, arcname=path.name)


def unpack_checkpoint(source: BinaryIO, into: Path) -> None:
    """Recreate the database directory ``into`` (replacing what is there) from a packed checkpoint."""
    staging = into.with_name(into.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=source, mode="r") as tar:
        tar.extractall(staging, filter="data")  # no absolute paths, links out or devices
    shutil.rmtree(into, ignore_errors=True)
    staging.rename(into)
