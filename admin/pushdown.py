"""Which rows of each introspection table a query can need, read from its syntax tree, so the
tables are filled from index scans and point reads instead of whole-table snapshots.

DuckDB still runs the query as written over what was read: a scan only has to read a superset
of the rows the query uses. The rules keep it one:
- a table referenced in a ``FROM`` with no joins gets the conjuncts of that ``SELECT``'s
  ``WHERE`` that the partitions can answer: ``id = / IN``, the service name ``= / IN``, the
  object key, ``status`` (which decides unfinished and/or completed), ``created_at`` bounds;
- ``ORDER BY created_at [ASC|DESC][, ...] LIMIT n [OFFSET m]`` (or a ``LIMIT`` alone) goes down too
  (the scans return the first n + m and every row tied with the last on created_at), but
  only when every conjunct was answered exactly, and nothing (aggregates, DISTINCT, windows,
  GROUP BY) comes between the rows and the limit;
- anything else (a join, a second reference, SQL the parser does not know) reads the table whole,
  streamed page by page.
Columns the query never names are not built (filled with nulls), unless it selects ``*`` or joins
naturally.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlglot
from sqlglot import exp

# The words of sys_invocation.status and sys_invocation_status.status that mean "completed".
_COMPLETED_WORDS = frozenset({"completed"})
_STATUS_TABLES = frozenset({"sys_invocation", "sys_invocation_status", "sys_invocation_state"})
# Which column holds the service name / the object key, per table.
_SERVICE_COLUMN = {"target_service_name": _STATUS_TABLES, "service_name": frozenset({"state", "sys_inbox"})}
_KEY_COLUMN = {"target_service_key": _STATUS_TABLES, "service_key": frozenset({"state", "sys_inbox"})}


@dataclass(frozen=True)
class Scan:
    """What to read of one table. None: no restriction."""

    ids: frozenset[str] | None = None
    services: frozenset[str] | None = None
    keys: frozenset[str] | None = None
    handlers: frozenset[str] | None = None
    deployments: frozenset[str] | None = None
    succeeded: bool | None = None
    unfinished: bool = True
    completed: bool = True
    created_from: int | None = None  # ms, inclusive
    created_to: int | None = None  # ms, exclusive
    limit: int | None = None
    newest_first: bool = True
    columns: frozenset[str] | None = None  # the columns to build (None: all)
    shared: bool = False  # referenced more than once: materialize, a stream is read once


FULL = Scan()


@dataclass(frozen=True)
class Plan:
    scans: dict[str, Scan]
    read_only: bool  # every statement is a query (it creates nothing that outlives it)


def plan(query: str, tables: frozenset[str]) -> Plan | None:
    """The scan of each of ``tables`` the query references; None when it does not parse (the
    caller then reads every table the query's words name, whole)."""
    try:
        trees = sqlglot.parse(query, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    scans: dict[str, list[Scan]] = {}
    columns: set[str] | None = set()
    for tree in trees:
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            if name in tables and table.db.lower() in ("", "public"):
                scans.setdefault(name, []).append(_reference(table, name))
        if columns is not None:
            # Every identifier, not just column references: USING (id) names columns too.
            columns = None if _selects_star(tree) else columns | {i.name.lower() for i in tree.find_all(exp.Identifier)}
    chosen = {}
    for name, found in scans.items():
        merged = found[0] if len(found) == 1 else _union(found)
        chosen[name] = replace(merged, columns=frozenset(columns) if columns is not None else None)
    return Plan(chosen, all(isinstance(tree, exp.Query) for tree in trees))


def _union(scans: list[Scan]) -> Scan:
    if all(s.ids is not None for s in scans):
        return Scan(ids=frozenset().union(*(s.ids or () for s in scans)), shared=True)
    return replace(FULL, shared=True)


def _selects_star(tree: exp.Expr) -> bool:
    """Whether the query may use columns it does not name (``*``, a natural join)."""
    if any(join.args.get("method", "").upper() == "NATURAL" for join in tree.find_all(exp.Join)):
        return True
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return True
    return False


def _reference(table: exp.Table, name: str) -> Scan:
    select = table.find_ancestor(exp.Select)
    if select is None:
        return FULL
    source = select.args.get("from_") or select.args.get("from")
    if source is None or source.this is not table or select.args.get("joins"):
        return FULL
    owners = {"", table.alias_or_name.lower(), name}
    scan, exact = Scan(), True
    where = select.args.get("where")
    for conjunct in _conjuncts(where.this) if where is not None else []:
        narrowed = _narrow(scan, conjunct, owners, name)
        if narrowed is None:
            exact = False  # DuckDB applies it; the scan reads around it
        else:
            scan, answered = narrowed
            exact = exact and answered
    if scan.ids is None and name == "sys_invocation_state":
        scan = replace(scan, completed=False)  # rows only for invoked (unfinished) invocations
    if exact:
        scan = _with_limit(scan, select, owners)
    return scan


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _column(node: exp.Expr, owners: set[str]) -> str | None:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.Column) and node.table.lower() in owners:
        return node.name.lower()
    return None


def _literal(node: exp.Expr) -> str | None:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.Cast):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None


def _literals(nodes: list[exp.Expr]) -> frozenset[str] | None:
    values = [_literal(n) for n in nodes]
    return None if any(v is None for v in values) else frozenset(v for v in values if v is not None)


def _narrow(scan: Scan, conjunct: exp.Expr, owners: set[str], table: str) -> tuple[Scan, bool] | None:
    """``scan`` restricted by ``conjunct`` and whether that answers it exactly; None when the
    scans cannot use it."""
    negated = isinstance(conjunct, exp.Not)
    node = conjunct.this if negated else conjunct
    values: frozenset[str] | None = None
    column: str | None = None
    if isinstance(node, (exp.EQ, exp.NEQ)):
        for left, right in ((node.this, node.expression), (node.expression, node.this)):
            column, value = _column(left, owners), _literal(right)
            if column is not None and value is not None:
                values = frozenset({value})
                break
        negated = negated != isinstance(node, exp.NEQ)
    elif isinstance(node, exp.In) and not node.args.get("query"):
        column, values = _column(node.this, owners), _literals(node.expressions)
    elif isinstance(node, (exp.GT, exp.GTE, exp.LT, exp.LTE)) and not negated:
        bounded = _time_bound(scan, node, owners)
        return None if bounded is None else (bounded, True)
    if column is None or values is None:
        return None
    if column == "status" and table in _STATUS_TABLES:
        return _by_status(scan, values, negated)
    if negated:
        return None
    if column == "id" and table in _STATUS_TABLES | {"sys_journal", "sys_journal_events", "sys_inbox"}:
        return replace(scan, ids=values if scan.ids is None else scan.ids & values), True
    if table in _SERVICE_COLUMN.get(column, ()):
        return replace(scan, services=values if scan.services is None else scan.services & values), True
    if table in _KEY_COLUMN.get(column, ()) and table != "sys_inbox":
        return replace(scan, keys=values if scan.keys is None else scan.keys & values), True
    if table in _STATUS_TABLES:
        if column == "target_handler_name":
            return replace(scan, handlers=values if scan.handlers is None else scan.handlers & values), True
        if column == "pinned_deployment_id":
            deployments = values if scan.deployments is None else scan.deployments & values
            return replace(scan, deployments=deployments), True
        if column == "completion_result" and len(values) == 1 and values <= {"success", "failure"}:
            succeeded = values == {"success"}
            if scan.succeeded is not None and scan.succeeded != succeeded:
                return replace(scan, completed=False, unfinished=False), True
            return replace(scan, succeeded=succeeded, unfinished=False), True
    return None


def _by_status(scan: Scan, values: frozenset[str], negated: bool) -> tuple[Scan, bool]:
    """A status test decides which of unfinished and completed invocations can match; it is
    answered exactly when it splits along that line (``= 'completed'``, ``!= 'completed'``)."""
    others = values - _COMPLETED_WORDS
    if negated:
        completed = not values & _COMPLETED_WORDS
        unfinished = True
    else:
        completed = bool(values & _COMPLETED_WORDS)
        unfinished = bool(others)
    narrowed = replace(scan, completed=scan.completed and completed, unfinished=scan.unfinished and unfinished)
    return narrowed, values == _COMPLETED_WORDS


def _time_bound(scan: Scan, node: exp.Expr, owners: set[str]) -> Scan | None:
    column, value = _column(node.this, owners), _literal(node.expression)
    flipped = False
    if column is None:
        column, value, flipped = _column(node.expression, owners), _literal(node.this), True
    if column != "created_at" or value is None:
        return None
    at = _millis(value)
    if at is None:
        return None
    kind: type[exp.Expr] = type(node)
    if flipped:
        kind = _MIRRORED[kind]
    if kind is exp.GT:
        return replace(scan, created_from=max(scan.created_from or 0, at + 1))
    if kind is exp.GTE:
        return replace(scan, created_from=max(scan.created_from or 0, at))
    end = at if kind is exp.LT else at + 1
    return replace(scan, created_to=end if scan.created_to is None else min(scan.created_to, end))


_MIRRORED: dict[type[exp.Expr], type[exp.Expr]] = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


def _millis(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _with_limit(scan: Scan, select: exp.Select, owners: set[str]) -> Scan:
    limit = select.args.get("limit")
    if limit is None or scan.ids is not None:
        return scan
    count = _integer(limit.expression)
    offset = select.args.get("offset")
    skip = _integer(offset.expression) if offset is not None else 0
    if count is None or skip is None:
        return scan
    if select.args.get("group") or select.args.get("distinct") or select.args.get("having"):
        return scan
    for expression in select.expressions:
        if any(isinstance(n, (exp.AggFunc, exp.Window)) for n in expression.walk()):
            return scan
    newest_first = True
    order = select.args.get("order")
    if order is not None:
        # The scans keep rows tied on created_at together, so later sort keys only order ties.
        ordered = order.expressions[0]
        if _column(ordered.this, owners) != "created_at":
            return scan
        newest_first = bool(ordered.args.get("desc"))
    return replace(scan, limit=count + skip, newest_first=newest_first)


def _integer(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(str(node.this))
        except ValueError:
            return None
    return None
