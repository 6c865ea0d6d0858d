"""The replicated log of cluster mode: interfaces here, NATS JetStream behind them.

Importing this package (or ``engine.log.interface`` / ``engine.log.record``) never imports nats;
only ``engine.log.jetstream`` and its ``jetstream_*`` siblings do, and only cluster mode loads them.
"""

from __future__ import annotations

from engine.log.interface import (
    Lease,
    LeaseStore,
    MetadataEntry,
    MetadataStore,
    PartitionLog,
    SnapshotInfo,
    SnapshotStore,
)
from engine.log.record import EpochFence, Record, RecordKind, append_msg_id

__all__ = [
    "EpochFence",
    "Lease",
    "LeaseStore",
    "MetadataEntry",
    "MetadataStore",
    "PartitionLog",
    "Record",
    "RecordKind",
    "SnapshotInfo",
    "SnapshotStore",
    "append_msg_id",
]
