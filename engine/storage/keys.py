"""The storage keyspace: the only module that builds RocksDB keys.

Partitioned keys start with the big-endian partition id, so one partition is one contiguous range
in every column family (the boundary along which partitions will later move between processes).
"""

from __future__ import annotations

import struct

LOG = "log"
STATUS = "status"
JOURNAL = "journal"
STATE = "state"
INBOX = "inbox"
LOCKS = "locks"
TIMERS = "timers"
PROMISES = "promises"
OUTBOX = "outbox"
EXPIRY = "expiry"  # completed invocations by the time their retention ends
SCHEDULES = "schedules"  # recurring invocations (Dapr actor reminders and timers), per object
META = "meta"
UNFINISHED = "unfinished"  # the status keys of invocations not completed yet: what recovery loads
INBOUND = "inbound"  # per (partition, source partition): the last outbox sequence applied from it
CREATED = "created"  # every stored invocation by creation time, overall and per service (admin lists)
LIMITS = "limits"  # per partition: the rule book's enabled rules, as its last SetLimits applied them
COLUMN_FAMILIES = (
    LOG,
    STATUS,
    JOURNAL,
    STATE,
    INBOX,
    LOCKS,
    TIMERS,
    PROMISES,
    OUTBOX,
    EXPIRY,
    SCHEDULES,
    META,
    UNFINISHED,
    INBOUND,
    CREATED,
    LIMITS,
)

_PARTITION = struct.Struct(">H")
_LSN = struct.Struct(">HQ")
_INDEX = struct.Struct(">I")


def partition_prefix(partition: int) -> bytes:
    return _PARTITION.pack(partition)


def log_key(partition: int, lsn: int) -> bytes:
    return _LSN.pack(partition, lsn)


def invocation_key(partition: int, raw_id: bytes) -> bytes:
    """Key of an invocation's status, and prefix of its journal entries (raw id = 24 bytes)."""
    return _PARTITION.pack(partition) + raw_id


def journal_key(invocation: bytes, index: int) -> bytes:
    return invocation + _INDEX.pack(index)


def journal_range(invocation: bytes) -> tuple[bytes, bytes]:
    return invocation, invocation + b"\xff" * (_INDEX.size + 1)


def applied_lsn_key(partition: int) -> bytes:
    return b"applied_lsn/" + _PARTITION.pack(partition)


PARTITION_COUNT_KEY = b"partitions"
LAST_START_KEY = b"last_start"  # written at every start: proves the data dir is writable
DEPLOYMENT_PREFIX = b"deployment/"


def deployment_key(deployment_id: str) -> bytes:
    return DEPLOYMENT_PREFIX + deployment_id.encode()


_SCOPED = 1 << 31  # set in the service length of a scoped object's key, followed by the scope


def object_key(partition: int, service: str, key: str, scope: str | None = None) -> bytes:
    """Prefix of everything about one virtual-object / workflow key (lock, inbox, state, promises).
    A scoped workflow is another object than the unscoped one of the same key; unscoped keys keep
    the layout they always had."""
    service_bytes, key_bytes = service.encode(), key.encode()
    if scope is None:
        head = _PARTITION.pack(partition) + _INDEX.pack(len(service_bytes)) + service_bytes
    else:
        scope_bytes = scope.encode()
        head = (
            _PARTITION.pack(partition)
            + _INDEX.pack(len(service_bytes) | _SCOPED)
            + service_bytes
            + _INDEX.pack(len(scope_bytes))
            + scope_bytes
        )
    return head + _INDEX.pack(len(key_bytes)) + key_bytes


def service_prefix(partition: int, service: str, scoped: bool = False) -> bytes:
    """Prefix of every unscoped (or every ``scoped``) object key of ``service`` in a partition (see
    ``object_key``)."""
    service_bytes = service.encode()
    length = len(service_bytes) | (_SCOPED if scoped else 0)
    return _PARTITION.pack(partition) + _INDEX.pack(length) + service_bytes


def state_key(object_prefix: bytes, name: bytes) -> bytes:
    return object_prefix + name


def inbox_key(object_prefix: bytes, sequence: int) -> bytes:
    return object_prefix + sequence.to_bytes(8, "big")


def promise_key(object_prefix: bytes, name: str) -> bytes:
    return object_prefix + name.encode()


def timer_key(partition: int, fire_at: int, raw_id: bytes, completion_id: int | None) -> bytes:
    # Ordered by time, so start-up loads timers in firing order; the suffix tells timers of one
    # invocation apart (start = 0, sleep = completion id + 1).
    return _LSN.pack(partition, fire_at) + raw_id + _INDEX.pack(0 if completion_id is None else completion_id + 1)


def expiry_key(partition: int, expires_at: int, raw_id: bytes) -> bytes:
    return _LSN.pack(partition, expires_at) + raw_id


def expiry_time(key: bytes) -> int:
    return int.from_bytes(key[2:10], "big")


def expiry_raw_id(key: bytes) -> bytes:
    return key[10:]


def outbox_key(partition: int, sequence: int) -> bytes:
    return _LSN.pack(partition, sequence)


def outbox_sequence(key: bytes) -> int:
    return int.from_bytes(key[2:10], "big")


def outbox_mark_key(partition: int) -> bytes:
    """META: the last outbox sequence a partition used, kept when its outbox is empty."""
    return b"outbox_mark/" + _PARTITION.pack(partition)


def inbound_key(partition: int, source: int) -> bytes:
    return _PARTITION.pack(partition) + _PARTITION.pack(source)


# CREATED keys: partition, then 0 + created_at + raw id (all invocations by time), or 1 + the
# length-prefixed service name + created_at + raw id (one service's by time). Values are empty.
_BY_TIME, _BY_SERVICE = b"\x00", b"\x01"
_TIME = struct.Struct(">Q")


def created_keys(partition: int, service: str, created_at: int, raw_id: bytes) -> tuple[bytes, bytes]:
    """The two CREATED index keys of one invocation."""
    stamp = _TIME.pack(created_at) + raw_id
    return (
        _PARTITION.pack(partition) + _BY_TIME + stamp,
        created_service_prefix(partition, service) + stamp,
    )


def created_prefix(partition: int) -> bytes:
    """Prefix of a partition's invocations by creation time."""
    return _PARTITION.pack(partition) + _BY_TIME


def created_service_prefix(partition: int, service: str) -> bytes:
    """Prefix of a partition's invocations of ``service`` by creation time."""
    name = service.encode()
    return _PARTITION.pack(partition) + _BY_SERVICE + _INDEX.pack(len(name)) + name


def created_entry(key: bytes, prefix: bytes) -> tuple[int, bytes]:
    """(created_at, raw id) of a CREATED key under ``prefix``."""
    return _TIME.unpack_from(key, len(prefix))[0], key[len(prefix) + _TIME.size :]


def time_bound(prefix: bytes, at: int) -> bytes:
    """The first CREATED key under ``prefix`` created at ``at`` or later."""
    return prefix + _TIME.pack(max(0, min(at, (1 << 64) - 1)))


SERVICE_CONFIG_PREFIX = b"service_config/"


def service_config_key(service: str) -> bytes:
    """Operator overrides of a service's settings (admin ``PATCH /services/{name}``)."""
    return SERVICE_CONFIG_PREFIX + service.encode()


def parse_state_key(key: bytes) -> tuple[str | None, str, str, bytes]:
    """(scope, service, object key, state name) of a STATE key built by ``state_key(object_key(...))``."""
    offset = _PARTITION.size
    (service_len,) = _INDEX.unpack_from(key, offset)
    offset += _INDEX.size
    scope = None
    scoped, service_len = service_len & _SCOPED, service_len & ~_SCOPED
    service = key[offset : offset + service_len].decode()
    offset += service_len
    if scoped:
        (scope_len,) = _INDEX.unpack_from(key, offset)
        offset += _INDEX.size
        scope = key[offset : offset + scope_len].decode()
        offset += scope_len
    (key_len,) = _INDEX.unpack_from(key, offset)
    offset += _INDEX.size
    object_key_text = key[offset : offset + key_len].decode()
    return scope, service, object_key_text, key[offset + key_len :]


DAPR_APP_PREFIX = b"dapr_app/"


def dapr_app_key(app_id: str) -> bytes:
    """A registered Dapr app or HTTP endpoint (``engine.dapr_apps``), by app id / endpoint name."""
    return DAPR_APP_PREFIX + app_id.encode()


def schedule_key(object_prefix: bytes, name: str) -> bytes:
    return object_prefix + name.encode()


UNFINISHED_INDEX_KEY = b"unfinished_index"  # META: set once the UNFINISHED index covers the data dir
CREATED_INDEX_KEY = b"created_index"  # META: set once the CREATED index covers the data dir
LIMIT_RULES_PREFIX = b"limit_rules/"
LIMIT_RULE_BOOK_KEY = LIMIT_RULES_PREFIX + b"book"  # META: the concurrency rule book (metadata)
APPLIED_KEY = b"applied"  # META, cluster mode: (log sequence, epoch) of the last record applied
