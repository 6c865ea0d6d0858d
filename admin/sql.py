"""``POST /query``: SQL over the partition tables, with DuckDB as the engine.

Each query gets a fresh in-memory DuckDB holding a snapshot of just the tables it names, taken on
the event loop (the partitions' in-memory state is only consistent there); the query itself runs
on a worker thread. External access (files, extensions) is switched off before the user's SQL
runs, so the endpoint can read nothing but these tables.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from admin.introspect import INVOCATION_COLUMNS, INVOCATION_TIMES, invocation_row, journal_rows
from engine import BadRequest, Engine, Phase
from engine.dapr.actors import TTL_SUFFIX, dapr_state_key
from engine.dapr.targets import ACTOR_PREFIX

_TIME = pa.timestamp("ms", tz="UTC")
_INT_COLUMNS = frozenset(
    {
        "pinned_service_protocol_version",
        "journal_size",
        "journal_commands",
        "retry_count",
        "completion_retention",
        "last_failure_error_code",
        "last_failure_related_entry_index",
    }
)


def _invocation_schema() -> pa.Schema:
    fields = []
    for name in INVOCATION_COLUMNS:
        kind = _TIME if name in INVOCATION_TIMES else pa.int64() if name in _INT_COLUMNS else pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


_SCHEMAS: dict[str, pa.Schema] = {
    "sys_invocation": _invocation_schema(),
    "sys_journal": pa.schema(
        [
            ("id", pa.string()),
            ("index", pa.int64()),
            ("entry_type", pa.string()),
            ("name", pa.string()),
            ("completed", pa.bool_()),
            ("invoked_id", pa.string()),
            ("invoked_target", pa.string()),
            ("sleep_wakeup_at", _TIME),
            ("promise_name", pa.string()),
            ("version", pa.int64()),
            ("raw", pa.binary()),
            ("entry_json", pa.string()),
            ("appended_at", _TIME),
        ]
    ),
    "state": pa.schema(
        [
            ("partition_key", pa.int64()),
            ("scope", pa.string()),
            ("service_name", pa.string()),
            ("service_key", pa.string()),
            ("key", pa.string()),
            ("value_utf8", pa.string()),
            ("value", pa.binary()),
        ]
    ),
    "sys_inbox": pa.schema(
        [
            ("service_name", pa.string()),
            ("service_key", pa.string()),
            ("id", pa.string()),
            ("sequence_number", pa.int64()),
            ("created_at", _TIME),
        ]
    ),
    "sys_deployment": pa.schema(
        [
            ("id", pa.string()),
            ("ty", pa.string()),
            ("endpoint", pa.string()),
            ("created_at", _TIME),
            ("min_service_protocol_version", pa.int64()),
            ("max_service_protocol_version", pa.int64()),
            ("sdk_version", pa.string()),
        ]
    ),
    "sys_service": pa.schema(
        [
            ("name", pa.string()),
            ("revision", pa.int64()),
            ("public", pa.bool_()),
            ("ty", pa.string()),
            ("deployment_id", pa.string()),
        ]
    ),
    "sys_user_limits": pa.schema(
        [
            ("partition_key", pa.uint64()),
            ("scope", pa.string()),
            ("l1", pa.string()),
            ("l2", pa.string()),
            ("level", pa.string()),
            ("usage", pa.uint32()),
            ("concurrency_limit", pa.uint32()),
            ("rule_pattern", pa.string()),
            ("available", pa.uint32()),
            ("num_waiters", pa.uint64()),
        ]
    ),
    "sys_rules": pa.schema(
        [
            ("pattern", pa.string()),
            ("concurrency", pa.uint32()),
            ("description", pa.string()),
            ("disabled", pa.bool_()),
            ("version", pa.uint32()),
            ("last_modified", _TIME),
        ]
    ),
}
# Views over another table: built whenever the query names them.
_VIEWS = {"sys_invocation_status": "sys_invocation"}
_WORD = re.compile(r"[a-z_]+")


async def _state_rows(engine: Engine) -> list[dict[str, Any]]:
    rows = []
    for partition, scope, service, object_key, name, value in await engine.all_state():
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
                "partition_key": partition,
                "scope": scope,
                "service_name": service,
                "service_key": object_key,
                "key": label,
                "value_utf8": text,
                "value": value,
            }
        )
    return rows


async def _inbox_rows(engine: Engine) -> list[dict[str, Any]]:
    invocations = await engine.all_invocations()
    inboxed = sorted((s for s, _ in invocations if s.phase is Phase.INBOXED), key=lambda s: s.created_at)
    return [
        {
            "service_name": s.target.service,
            "service_key": s.target.key,
            "id": s.id,
            "sequence_number": n,
            "created_at": s.created_at,
        }
        for n, s in enumerate(inboxed)
    ]


async def _deployment_rows(engine: Engine) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "ty": "http",
            "endpoint": d.uri,
            "created_at": d.created_at,
            "min_service_protocol_version": d.min_protocol_version,
            "max_service_protocol_version": d.max_protocol_version,
            "sdk_version": d.sdk_version,
        }
        for d in engine.schema.deployments.values()
    ]


async def _service_rows(engine: Engine) -> list[dict[str, Any]]:
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


async def _rule_rows(engine: Engine) -> list[dict[str, Any]]:
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


async def _invocation_rows(engine: Engine) -> list[dict[str, Any]]:
    return [invocation_row(engine, status, retry) for status, retry in await engine.all_invocations()]


async def _usage_rows(engine: Engine) -> list[dict[str, Any]]:
    return [usage._asdict() for usage in await engine.limit_usage()]


_BUILDERS: dict[str, Callable[[Engine], Awaitable[list[dict[str, Any]]]]] = {
    "sys_invocation": _invocation_rows,
    "sys_journal": journal_rows,
    "state": _state_rows,
    "sys_inbox": _inbox_rows,
    "sys_deployment": _deployment_rows,
    "sys_service": _service_rows,
    "sys_user_limits": _usage_rows,
    "sys_rules": _rule_rows,
}


async def snapshot(engine: Engine, query: str) -> dict[str, pa.Table]:
    """The tables ``query`` names, read now (on the event loop)."""
    words = set(_WORD.findall(query.lower()))
    wanted = {name for name in _SCHEMAS if name in words}
    wanted |= {base for view, base in _VIEWS.items() if view in words}
    if "information_schema" in words:
        wanted = set(_SCHEMAS)  # the CLI probes columns before it reads sys_journal
    return {name: pa.Table.from_pylist(await _BUILDERS[name](engine), schema=_SCHEMAS[name]) for name in wanted}


def execute(tables: dict[str, pa.Table], query: str) -> pa.Table:
    """Run ``query`` over ``tables`` (blocking: call it on a worker thread)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET arrow_large_buffer_size = true")  # strings as large_string, like Restate
        for name, table in tables.items():
            con.register("_snapshot", table)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _snapshot')
            con.unregister("_snapshot")
        for view, base in _VIEWS.items():
            if base in tables:
                con.execute(f'CREATE VIEW "{view}" AS SELECT * FROM "{base}"')
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            raise BadRequest(f"Error when executing the query: {exc}") from exc
        if relation is None:  # a statement that returns nothing
            return pa.table({})
        try:
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise BadRequest(f"Error when executing the query: {exc}") from exc
    finally:
        con.close()


async def run_query(engine: Engine, query: str) -> pa.Table:
    tables = await snapshot(engine, query)
    return await asyncio.to_thread(execute, tables, query)


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as Restate's JSON answer has them: nulls left out, times in RFC 3339 with
    milliseconds, binary hex-encoded."""
    rows = []
    for row in table.to_pylist():
        rendered = {}
        for name, value in row.items():
            if value is None:
                continue
            if isinstance(value, datetime):
                utc = value.astimezone(UTC)
                value = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
            elif isinstance(value, (bytes, bytearray)):
                value = value.hex()
            elif not isinstance(value, (str, int, float, bool, list, dict)):
                value = str(value)
            rendered[name] = value
        rows.append(rendered)
    return rows


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data
