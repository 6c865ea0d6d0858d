"""The introspection tables of ``POST /query``: their Arrow schemas (Restate's names, order and
types) and how each is read from the engine for one query's :class:`~admin.pushdown.Scan`.

A table is read either whole into memory (small tables, and bounded scans: ids, a limit,
unfinished invocations only) or as a stream of pages (completed invocations without a limit), so a
query over a million retained invocations holds one page at a time, never the table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from admin.introspect import (
    DURATION,
    SYS_INVOCATION,
    SYS_INVOCATION_STATE,
    SYS_INVOCATION_STATUS,
    TIME,
    Column,
    Pair,
    Registry,
    entry_view,
    has_invocation_state,
)
from admin.pushdown import Scan
from engine import Engine, InvocationId, Phase, QuillError
from engine.dapr.actors import TTL_SUFFIX, dapr_state_key
from engine.dapr.targets import ACTOR_PREFIX
from engine.ids import hashed_partition_key, object_partition_key
from engine.partition.reads import InvocationFilter

PAGE = 2000  # completed invocations per page of a streamed scan
_STR, _U32, _U64, _BOOL, _BIN = pa.large_string(), pa.uint32(), pa.uint64(), pa.bool_(), pa.large_binary()

Rows = list[dict[str, Any]]


def _schema(fields: Iterable[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


INVOCATION_TABLES: dict[str, tuple[Column, ...]] = {
    "sys_invocation": SYS_INVOCATION,
    "sys_invocation_status": SYS_INVOCATION_STATUS,
    "sys_invocation_state": SYS_INVOCATION_STATE,
}
SCHEMAS: dict[str, pa.Schema] = {
    **{name: _schema((c.name, c.type) for c in columns) for name, columns in INVOCATION_TABLES.items()},
    "sys_journal": _schema(
        [
            ("partition_key", _U64),
            ("id", _STR),
            ("index", _U32),
            ("entry_type", _STR),
            ("name", _STR),
            ("completed", _BOOL),
            ("invoked_id", _STR),
            ("invoked_target", _STR),
            ("sleep_wakeup_at", TIME),
            ("promise_name", _STR),
            ("raw", _BIN),
            ("raw_length", _U64),
            ("version", _U32),
            ("entry_json", _STR),
            ("entry_lite_json", _STR),
            ("appended_at", TIME),
        ]
    ),
    "sys_journal_events": _schema(
        [
            ("partition_key", _U64),
            ("id", _STR),
            ("after_journal_entry_index", _U32),
            ("appended_at", TIME),
            ("event_type", _STR),
            ("event_json", _STR),
        ]
    ),
    "state": _schema(
        [
            ("partition_key", _U64),
            ("scope", _STR),
            ("service_name", _STR),
            ("service_key", _STR),
            ("key", _STR),
            ("key_length", _U64),
            ("value_utf8", _STR),
            ("value", _BIN),
            ("value_length", _U64),
        ]
    ),
    "sys_inbox": _schema(
        [
            ("partition_key", _U64),
            ("service_name", _STR),
            ("service_key", _STR),
            ("id", _STR),
            ("sequence_number", _U64),
            ("created_at", TIME),
        ]
    ),
    "sys_keyed_service_status": _schema(
        [("partition_key", _U64), ("service_name", _STR), ("service_key", _STR), ("invocation_id", _STR)]
    ),
    "sys_promise": _schema(
        [
            ("partition_key", _U64),
            ("scope", _STR),
            ("service_name", _STR),
            ("service_key", _STR),
            ("key", _STR),
            ("completed", _BOOL),
            ("completion_success_value", _BIN),
            ("completion_success_value_utf8", _STR),
            ("completion_failure", _STR),
        ]
    ),
    "sys_deployment": _schema(
        [
            ("id", _STR),
            ("ty", _STR),
            ("endpoint", _STR),
            ("created_at", TIME),
            ("min_service_protocol_version", _U32),
            ("max_service_protocol_version", _U32),
            ("services", pa.list_(_STR)),
            ("sdk_version", _STR),
        ]
    ),
    "sys_service": _schema(
        [("name", _STR), ("revision", _U64), ("public", _BOOL), ("ty", _STR), ("deployment_id", _STR)]
    ),
    "sys_user_limits": _schema(
        [
            ("partition_key", _U64),
            ("scope", _STR),
            ("l1", _STR),
            ("l2", _STR),
            ("level", _STR),
            ("usage", _U32),
            ("concurrency_limit", _U32),
            ("rule_pattern", _STR),
            ("available", _U32),
            ("num_waiters", _U64),
        ]
    ),
    "sys_rules": _schema(
        [
            ("pattern", _STR),
            ("concurrency", _U32),
            ("description", _STR),
            ("disabled", _BOOL),
            ("version", _U32),
            ("last_modified", TIME),
        ]
    ),
}
TABLES = frozenset(SCHEMAS)


@dataclass
class Source:
    """One table for one query: in memory, or pages still to be read."""

    schema: pa.Schema
    table: pa.Table | None = None
    pages: AsyncIterator[pa.RecordBatch] | None = None


def _table(name: str, rows: Rows) -> Source:
    return Source(SCHEMAS[name], table=pa.Table.from_pylist(rows, schema=SCHEMAS[name]))


def invocation_batch(
    name: str, pairs: Sequence[Pair], registry: Registry, wanted: frozenset[str] | None
) -> pa.RecordBatch:
    """Rows of invocation table ``name``, column by column; unwanted columns stay null."""
    columns = INVOCATION_TABLES[name]
    arrays = []
    for column in columns:
        if wanted is not None and column.name not in wanted:
            arrays.append(pa.nulls(len(pairs), column.type))
            continue
        get = column.get
        values = [get(status, retry, registry) for status, retry in pairs]
        if column.type == DURATION:
            arrays.append(pa.array(values, type=pa.int64()).cast(DURATION))
        else:
            arrays.append(pa.array(values, type=column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMAS[name])


async def read(engine: Engine, name: str, scan: Scan, registry: Registry) -> Source:
    """Table ``name`` as far as ``scan`` needs it."""
    if name in INVOCATION_TABLES:
        return await _invocations(engine, name, scan, registry)
    reader = _READERS[name]
    return _table(name, await reader(engine, scan))


def empty(name: str) -> Source:
    """The table with no rows (``information_schema`` only needs its columns)."""
    return Source(SCHEMAS[name], table=SCHEMAS[name].empty_table())


async def _invocations(engine: Engine, name: str, scan: Scan, registry: Registry) -> Source:
    wanted = InvocationFilter(
        services=_listed(scan.services),
        handlers=_listed(scan.handlers),
        keys=_listed(scan.keys),
        deployments=_listed(scan.deployments),
        succeeded=scan.succeeded,
        created_from=scan.created_from,
        created_to=scan.created_to,
        newest_first=scan.newest_first,
    )
    keep: Callable[[Pair], bool] = (
        (lambda pair: has_invocation_state(pair[0])) if name == "sys_invocation_state" else (lambda pair: True)
    )
    if scan.ids is not None:
        found = [p for p in await engine.find_invocations(sorted(scan.ids)) if keep(p) and _admits(scan, p)]
        return _in_memory(name, [invocation_batch(name, found, registry, scan.columns)])
    if scan.limit is not None:
        found = await engine.list_invocations(
            wanted, unfinished=scan.unfinished, completed=scan.completed, limit=scan.limit
        )
        found = [p for p in found if keep(p)]
        return _in_memory(name, [invocation_batch(name, found, registry, scan.columns)])
    unfinished = [p for p in await engine.unfinished_invocations(wanted) if keep(p)] if scan.unfinished else []
    first = invocation_batch(name, unfinished, registry, scan.columns)
    if not scan.completed:
        return _in_memory(name, [first])

    async def pages() -> AsyncIterator[pa.RecordBatch]:
        yield first
        async for statuses in engine.completed_invocations(wanted, PAGE):
            yield invocation_batch(name, [(s, None) for s in statuses], registry, scan.columns)

    if scan.shared:  # read by more than one scan of the query: a stream is read once
        return _in_memory(name, [batch async for batch in pages()])
    return Source(SCHEMAS[name], pages=pages())


def _listed(values: frozenset[str] | None) -> list[str] | None:
    return sorted(values) if values is not None else None


def _admits(scan: Scan, pair: Pair) -> bool:
    status = pair[0]
    completed = status.phase is Phase.COMPLETED
    return scan.completed if completed else scan.unfinished


def _in_memory(name: str, batches: list[pa.RecordBatch]) -> Source:
    return Source(SCHEMAS[name], table=pa.Table.from_batches(batches, schema=SCHEMAS[name]))


# -- the other tables ------------------------------------------------------------------------
async def _journal(engine: Engine, scan: Scan) -> Rows:
    rows: Rows = []
    for status, journal in await _journals(engine, scan):
        partition_key = InvocationId(status.id).partition_key
        for index, (message_type, payload) in enumerate(journal):
            view = entry_view(status, index, message_type, payload)
            rows.append(
                {
                    "partition_key": partition_key,
                    "id": status.id,
                    "index": index,
                    "entry_type": view.entry_type,
                    "name": view.name,
                    "completed": view.completed,
                    "invoked_id": view.invoked_id,
                    "invoked_target": view.invoked_target,
                    "sleep_wakeup_at": view.sleep_wakeup_at,
                    "promise_name": view.promise_name,
                    "raw": payload,
                    "raw_length": len(payload),
                    "version": 2,
                    "entry_json": view.entry_json,
                    "entry_lite_json": view.entry_lite_json,
                    "appended_at": None,
                }
            )
    return rows


async def _journals(engine: Engine, scan: Scan) -> list[tuple[Any, list[tuple[int, bytes]]]]:
    if scan.ids is None:
        return await engine.all_journals()  # unfinished invocations only: completed keep none
    found = []
    for invocation_id in sorted(scan.ids):
        try:
            found.append(await engine.inspect_invocation(invocation_id))
        except QuillError:
            continue  # an unknown or malformed id matches no row
    return found


async def _journal_events(engine: Engine, scan: Scan) -> Rows:
    """Restate records each attempt's transient error and pauses; quill's invoker keeps the last
    failure of an invocation that is retrying (in memory), shown as its one event."""
    if scan.ids is not None:
        pairs = await engine.find_invocations(sorted(scan.ids))
    else:
        pairs = await engine.unfinished_invocations(InvocationFilter())
    rows: Rows = []
    for status, retry in pairs:
        if retry is None or retry.last_failure is None:
            continue
        kind = "Paused" if retry.paused else "TransientError"
        event = {"ty": kind, "error_message": retry.last_failure, "count": retry.count}
        rows.append(
            {
                "partition_key": InvocationId(status.id).partition_key,
                "id": status.id,
                "after_journal_entry_index": max(0, status.journal_length - 1),
                "appended_at": status.modified_at,
                "event_type": kind,
                "event_json": json.dumps(event),
            }
        )
    return rows


async def _state(engine: Engine, scan: Scan) -> Rows:
    if scan.services is None:
        entries = await engine.object_state(None, None)
    elif scan.keys is not None:
        entries = [e for s in sorted(scan.services) for k in sorted(scan.keys) for e in await engine.object_state(s, k)]
    else:
        entries = [e for s in sorted(scan.services) for e in await engine.object_state(s, None)]
    rows = []
    for _, scope, service, object_key, name, value in entries:
        if name.endswith(TTL_SUFFIX):
            continue  # an actor state entry's expiry, shown with nothing of its own
        try:
            text: str | None = value.decode()
        except UnicodeDecodeError:
            text = None
        label = name.decode(errors="replace")
        if service.startswith(ACTOR_PREFIX):
            label = dapr_state_key(engine.dapr_apps, service, object_key, label)
        rows.append(
            {
                "partition_key": object_partition_key(service, object_key, scope),
                "scope": scope,
                "service_name": service,
                "service_key": object_key,
                "key": label,
                "key_length": len(name),
                "value_utf8": text,
                "value": value,
                "value_length": len(value),
            }
        )
    return rows


async def _inbox(engine: Engine, scan: Scan) -> Rows:
    entries = await engine.inbox()
    created = {s.id: s.created_at for s, _ in await engine.find_invocations([e[4] for e in entries])}
    return [
        {
            "partition_key": hashed_partition_key(service, key),
            "service_name": service,
            "service_key": key,
            "id": invocation_id,
            "sequence_number": sequence,
            "created_at": created.get(invocation_id),
        }
        for _, service, key, sequence, invocation_id in entries
    ]


async def _keyed_status(engine: Engine, scan: Scan) -> Rows:
    return [
        {
            "partition_key": hashed_partition_key(service, key),
            "service_name": service,
            "service_key": key,
            "invocation_id": holder,
        }
        for _, service, key, holder in await engine.locks()
    ]


async def _promises(engine: Engine, scan: Scan) -> Rows:
    rows = []
    for _, service, key, name, promise in await engine.promises():
        completion = promise.completion
        value = completion.value if completion is not None else None
        failure = completion.failure if completion is not None else None
        try:
            text = value.decode() if value is not None else None
        except UnicodeDecodeError:
            text = None
        rows.append(
            {
                "partition_key": hashed_partition_key(service, key),
                "scope": None,
                "service_name": service,
                "service_key": key,
                "key": name,
                "completed": completion is not None,
                "completion_success_value": value,
                "completion_success_value_utf8": text,
                "completion_failure": f"[{failure.code}] {failure.message}" if failure is not None else None,
            }
        )
    return rows


async def _deployments(engine: Engine, scan: Scan) -> Rows:
    schema = engine.schema
    return [
        {
            "id": d.id,
            "ty": "http",
            "endpoint": d.uri,
            "created_at": d.created_at,
            "min_service_protocol_version": d.min_protocol_version,
            "max_service_protocol_version": d.max_protocol_version,
            "services": sorted(name for name, e in schema.services.items() if e.deployment_id == d.id),
            "sdk_version": d.sdk_version,
        }
        for d in schema.deployments.values()
    ]


async def _services(engine: Engine, scan: Scan) -> Rows:
    types = {"SERVICE": "service", "VIRTUAL_OBJECT": "virtual_object", "WORKFLOW": "workflow"}
    return [
        {
            "name": name,
            "revision": e.revision,
            "public": engine.schema.is_public(name),
            "ty": types.get(e.manifest.ty, e.manifest.ty),
            "deployment_id": e.deployment_id,
        }
        for name, e in engine.schema.services.items()
    ]


async def _limit_usage(engine: Engine, scan: Scan) -> Rows:
    return [usage._asdict() for usage in await engine.limit_usage()]


async def _rules(engine: Engine, scan: Scan) -> Rows:
    return [
        {
            "pattern": pattern,
            "concurrency": rule.concurrency,
            "description": rule.description,
            "disabled": rule.disabled,
            "version": rule.version,
            "last_modified": rule.last_modified,
        }
        for pattern, rule in sorted(engine.limits.book.rules.items())
    ]


_READERS: dict[str, Callable[[Engine, Scan], Any]] = {
    "sys_journal": _journal,
    "sys_journal_events": _journal_events,
    "state": _state,
    "sys_inbox": _inbox,
    "sys_keyed_service_status": _keyed_status,
    "sys_promise": _promises,
    "sys_deployment": _deployments,
    "sys_service": _services,
    "sys_user_limits": _limit_usage,
    "sys_rules": _rules,
}
