"""The storage keyspace: the only module that builds RocksDB keys.

Partitioned keys start with the big-endian partition id, so one partition is one contiguous range
in every column family (the boundary along which partitions will later move between processes).
"""

from __future__ import annotations

import struct

from engine.ids import InvocationId

LOG = "log"
STATUS = "status"
JOURNAL = "journal"
STATE = "state"
INBOX = "inbox"
LOCKS = "locks"
TIMERS = "timers"
IDEMPOTENCY = "idempotency"
PROMISES = "promises"
OUTBOX = "outbox"
META = "meta"
COLUMN_FAMILIES = (LOG, STATUS, JOURNAL, STATE, INBOX, LOCKS, TIMERS, IDEMPOTENCY, PROMISES, OUTBOX, META)

_PARTITION = struct.Struct(">H")
_LSN = struct.Struct(">HQ")
_INDEX = struct.Struct(">I")


def partition_prefix(partition: int) -> bytes:
    return _PARTITION.pack(partition)


def log_key(partition: int, lsn: int) -> bytes:
    return _LSN.pack(partition, lsn)


def status_key(partition: int, invocation_id: InvocationId) -> bytes:
    return _PARTITION.pack(partition) + invocation_id.to_bytes()


def invocation_id_of_status_key(key: bytes) -> bytes:
    return key[2:]


def journal_prefix(partition: int, invocation_id: InvocationId) -> bytes:
    return _PARTITION.pack(partition) + invocation_id.to_bytes()


def journal_key(partition: int, invocation_id: InvocationId, index: int) -> bytes:
    return journal_prefix(partition, invocation_id) + _INDEX.pack(index)


def applied_lsn_key(partition: int) -> bytes:
    return b"applied_lsn/" + _PARTITION.pack(partition)


PARTITION_COUNT_KEY = b"partitions"
DEPLOYMENT_PREFIX = b"deployment/"


def deployment_key(deployment_id: str) -> bytes:
    return DEPLOYMENT_PREFIX + deployment_id.encode()
