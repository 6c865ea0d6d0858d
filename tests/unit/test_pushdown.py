"""What /query reads for a query: pushed filters and limits must keep every row the query can use."""

from __future__ import annotations

from admin.pushdown import FULL, Scan, plan
from admin.tables import TABLES


def scan(query: str, table: str = "sys_invocation") -> Scan:
    planned = plan(query, TABLES)
    assert planned is not None
    return planned.scans[table]


def test_ids_services_and_the_limit_go_down() -> None:
    found = scan("SELECT id FROM sys_invocation WHERE id = 'inv_1a'")
    assert found.ids == {"inv_1a"}
    listed = scan(
        "SELECT i.id FROM sys_invocation i WHERE i.target_service_name IN ('A', 'B') AND target_handler_name = 'h'"
        " AND status = 'completed' ORDER BY i.created_at LIMIT 20 OFFSET 5"
    )
    assert (listed.services, listed.handlers, listed.unfinished, listed.completed) == ({"A", "B"}, {"h"}, False, True)
    assert (listed.limit, listed.newest_first) == (25, False)


def test_a_limit_stays_up_when_a_filter_is_not_answered_by_the_scan() -> None:
    inexact = scan("SELECT id FROM sys_invocation WHERE status = 'running' ORDER BY created_at DESC LIMIT 5")
    assert (inexact.unfinished, inexact.completed, inexact.limit) == (True, False, None)
    other = scan("SELECT id FROM sys_invocation WHERE target LIKE 'A/%' ORDER BY created_at DESC LIMIT 5")
    assert other.limit is None
    either = scan("SELECT id FROM sys_invocation WHERE id = 'a' OR target_service_name = 'B' LIMIT 5")
    assert (either.ids, either.services, either.limit) == (None, None, None)
    ordered = scan("SELECT id FROM sys_invocation ORDER BY modified_at DESC LIMIT 5")
    assert ordered.limit is None
    tie_broken = scan("SELECT id FROM sys_invocation ORDER BY created_at DESC, id DESC LIMIT 5")
    assert tie_broken.limit == 5  # the scans keep rows tied on created_at together
    grouped = scan("SELECT status, COUNT(*) FROM sys_invocation GROUP BY status LIMIT 5")
    assert grouped.limit is None and grouped.columns is not None and "status" in grouped.columns


def test_joins_and_second_references_read_whole() -> None:
    joined = plan("SELECT * FROM sys_invocation i JOIN sys_journal j ON i.id = j.id WHERE i.id = 'x'", TABLES)
    assert joined is not None
    assert joined.scans["sys_invocation"].ids is None and joined.scans["sys_journal"].columns is None
    twice = scan("SELECT a.id FROM sys_invocation a WHERE a.id IN (SELECT b.invoked_by_id FROM sys_invocation b)")
    assert twice.shared and twice.ids is None


def test_time_bounds_and_state_keys() -> None:
    window = scan(
        "SELECT id FROM sys_invocation WHERE created_at > '2026-01-01T00:00:00.000Z'"
        " AND created_at <= '2026-01-01T00:00:01Z' ORDER BY created_at DESC LIMIT 3"
    )
    assert (window.created_from, window.created_to, window.limit) == (1767225600001, 1767225601001, 3)
    state = scan("SELECT key FROM state WHERE service_name = 'C' AND service_key = 'k'", "state")
    assert (state.services, state.keys) == ({"C"}, {"k"})


def test_read_only_and_unparsed() -> None:
    assert plan("CREATE TABLE t AS SELECT 1", TABLES).read_only is False  # type: ignore[union-attr]
    assert plan("SELECT 1", TABLES).read_only is True  # type: ignore[union-attr]
    assert FULL.limit is None and FULL.completed and FULL.unfinished
