"""``POST /query``: SQL over the introspection tables, with DuckDB as the engine.

The query is planned first (``admin.pushdown``): each table it names is read only as far as its
filters and limit need, through the engine's index scans and point reads. Bounded reads arrive
whole; an unbounded scan of completed invocations is handed to DuckDB as an Arrow stream whose
pages are fetched from the event loop as DuckDB pulls them, so memory holds a page, not the
table. DuckDB runs on a worker thread with a memory limit, one query at a time per slot, and the
event loop only ever does the page reads, which are short. External access (files,
extensions) is switched off before the user's SQL runs, so the endpoint reads nothing but these
tables.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from admin.introspect import Registry
from admin.pushdown import FULL, Plan, plan
from admin.tables import TABLES, Source, empty, read
from admin.version import SERVER_VERSION
from engine import BadRequest, Engine

_WORD = re.compile(r"[a-z_]+")
MEMORY_LIMIT = "512MB"
_FIRST_VALUE = re.compile(r"\bfirst_value\s*\(", re.IGNORECASE)
_OVER = re.compile(r"\s*over\b", re.IGNORECASE)


def translate(query: str) -> str:
    """Restate's SQL engine (DataFusion) in DuckDB's dialect: ``first_value(x [ORDER BY y])`` used
    as an aggregate, as the CLI's `services status` does, is DuckDB's ``first``; as a window
    function (followed by ``OVER``) it stays."""
    parts: list[str] = []
    done = 0
    for match in _FIRST_VALUE.finditer(query):
        close = _closing_paren(query, match.end() - 1)
        if close is None or _OVER.match(query, close + 1):
            continue
        parts.append(query[done : match.start()] + "first(")
        done = match.end()
    return "".join(parts) + query[done:]


def _closing_paren(text: str, opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


class _Connections:
    """DuckDB connections kept between queries (opening one costs tens of milliseconds), each used
    by one query at a time; at most ``size`` queries run at once."""

    def __init__(self, size: int) -> None:
        self._free: list[duckdb.DuckDBPyConnection] = []
        self.slots = asyncio.Semaphore(size)

    def take(self) -> duckdb.DuckDBPyConnection:
        if self._free:
            return self._free.pop()
        con = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": MEMORY_LIMIT})
        con.execute("SET arrow_large_buffer_size = true")  # strings as large_string, like Restate
        con.execute("SET enable_external_access = false")  # no files, no extensions: only our tables
        con.execute("SET lock_configuration = true")
        return con

    def give_back(self, con: duckdb.DuckDBPyConnection, reusable: bool) -> None:
        """``reusable``: the query created nothing and did not fail (else the connection goes)."""
        if reusable:
            self._free.append(con)
        else:
            con.close()


_POOL = _Connections(2)


def scans(query: str) -> tuple[Plan, bool]:
    """The tables ``query`` reads and how, and whether it asks ``information_schema``."""
    words = set(_WORD.findall(query.lower()))
    try:
        planned = plan(query, TABLES)
    except RecursionError:  # nested deeper than the planner's recursion: DuckDB answers it
        planned = None
    if planned is None:  # not parsed: every table it names, whole
        planned = Plan({name: FULL for name in TABLES if name in words}, read_only=False)
    return planned, "information_schema" in words


async def run_query(engine: Engine, query: str) -> pa.Table:
    planned, schema_probe = scans(query)
    registry = Registry.of(engine, SERVER_VERSION)
    sources = {name: await read(engine, name, scan, registry) for name, scan in planned.scans.items()}
    if schema_probe:  # the CLI probes the columns before it reads sys_journal
        for name in TABLES - sources.keys():
            sources[name] = empty(name)
    loop = asyncio.get_running_loop()
    async with _POOL.slots:
        try:
            return await asyncio.to_thread(execute, sources, query, loop, planned.read_only)
        finally:
            for source in sources.values():
                if source.pages is not None:
                    await source.pages.aclose()  # type: ignore[attr-defined]


def _stream(source: Source, loop: asyncio.AbstractEventLoop) -> pa.RecordBatchReader:
    """The pages of ``source`` as a reader DuckDB pulls on its thread; each page is read on the
    event loop (that is where the partitions are)."""
    pages = source.pages
    assert pages is not None

    async def following() -> pa.RecordBatch | None:
        return await anext(pages, None)

    def batches() -> Iterator[pa.RecordBatch]:
        while (batch := asyncio.run_coroutine_threadsafe(following(), loop).result()) is not None:
            yield batch

    return pa.RecordBatchReader.from_batches(source.schema, batches())


def execute(sources: dict[str, Source], query: str, loop: asyncio.AbstractEventLoop, read_only: bool) -> pa.Table:
    """Run ``query`` over ``sources`` (blocking: call it on a worker thread)."""
    con = _POOL.take()
    reusable = False
    try:
        for name, source in sources.items():
            data: Any = source.table if source.table is not None else _stream(source, loop)
            con.register(name, data)
        try:
            relation = con.sql(translate(query))
        except duckdb.Error as exc:
            raise BadRequest(f"Error when executing the query: {exc}") from exc
        if relation is None:  # a statement that returns nothing
            return pa.table({})
        try:
            result = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise BadRequest(f"Error when executing the query: {exc}") from exc
        reusable = read_only
        return result
    finally:
        for name in sources:
            con.unregister(name)
        _POOL.give_back(con, reusable)


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as Restate's JSON answer has them: nulls left out, times in RFC 3339 with
    milliseconds, durations in ISO 8601 seconds, binary hex-encoded."""
    rows = []
    for row in table.to_pylist():
        rendered = {}
        for name, value in row.items():
            if value is None:
                continue
            rendered[name] = _json_value(value)
        rows.append(rendered)
    return rows


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, timedelta):
        return _iso_seconds(value.total_seconds())
    if isinstance(value, pa.MonthDayNano):
        return _iso_seconds(value.days * 86400 + value.nanoseconds / 1e9)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, Decimal):
        # DuckDB sums integers as HUGEINT, which Arrow carries as a decimal: a number still.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, int, float, bool, dict)):
        return value
    return str(value)


def _iso_seconds(seconds: float) -> str:
    return f"PT{int(seconds)}S" if seconds == int(seconds) else f"PT{seconds:.3f}S"


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data
