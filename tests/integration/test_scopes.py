"""Scopes and flow control with a real SDK service: concurrency rules per scope and limit key
(``PUT /limits/rules``), FIFO waiting, rule changes on waiting invocations, suspension, cancel and
kill of waiting invocations, SIGKILL; refusals with the reference's status and message
(research/compat/NOTES.md section K, Restate 1.7.12 with vqueues)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService, TsService

JSON = {"accept": "application/json"}
ALLOWED = "value contains characters outside the allowed set [a-zA-Z0-9_.-]"


@pytest.fixture(scope="module")
def limited() -> Iterator[SdkService]:
    service = SdkService("tests.services.limited:app")
    yield service
    service.stop()


def _register(server: Quill, service: SdkService) -> None:
    response = httpx.post(f"{server.admin}/deployments", json={"uri": service.url, "use_http_11": True})
    assert response.status_code in (200, 201), response.text


@pytest.fixture(scope="module")
def quill(tmp_path_factory: pytest.TempPathFactory, limited: SdkService) -> Iterator[Quill]:
    server = Quill(tmp_path_factory.mktemp("scopes") / "data", env=QUILL_TEST_ENV)
    try:
        _register(server, limited)
        yield server
    finally:
        server.stop()


async def _rules(client: httpx.AsyncClient, server: Quill, *rules: tuple[str, int]) -> list[dict[str, Any]]:
    body = [{"pattern": pattern, "limits": {"concurrency": n}} for pattern, n in rules]
    response = await client.put(f"{server.admin}/limits/rules", json=body)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def _hold(client: httpx.AsyncClient, server: Quill, scope: str, gate: str, key: str | None = None) -> str:
    headers = {"x-restate-limit-key": key} if key is not None else {}
    sent = await client.post(f"{server.ingress}/restate/scope/{scope}/send/Limited/hold", json=gate, headers=headers)
    assert sent.status_code == 202, sent.text
    invocation_id: str = sent.json()["invocationId"]
    return invocation_id


async def _entered(client: httpx.AsyncClient, service: SdkService, prefix: str, total: int) -> None:
    await service.wait(client, f"entered:{prefix}", total)


async def _open(client: httpx.AsyncClient, service: SdkService, gate: str) -> None:
    await service.open(client, gate)


async def _statuses(client: httpx.AsyncClient, server: Quill, ids: list[str]) -> list[str]:
    query = "SELECT id, status FROM sys_invocation WHERE id IN (" + ",".join(f"'{i}'" for i in ids) + ")"
    rows = (await client.post(f"{server.admin}/query", json={"query": query}, headers=JSON)).json()["rows"]
    by_id = {row["id"]: row["status"] for row in rows}
    return [by_id.get(i, "gone") for i in ids]


async def _order(client: httpx.AsyncClient, service: SdkService, gate: str) -> int:
    return int((await client.get(f"{service.url}/test/published", params={"key": f"order:{gate}"})).json())


async def test_one_slot_per_limit_key_runs_calls_one_at_a_time_in_order(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("fifo/*", 1))
    gates = [f"fifo-{n}" for n in range(4)]
    ids = [await _hold(client, quill, "fifo", gate, "user-42") for gate in gates]
    for n, gate in enumerate(gates):
        await _entered(client, limited, gate, 1)
        statuses = await _statuses(client, quill, ids)
        assert statuses[n] == "running"
        assert statuses[n + 1 :] == ["pending"] * (3 - n)  # waiting for the slot
        detail = (await client.get(f"{quill.admin}/invocations/{ids[-1]}")).json()
        assert (detail["status"], detail["scope"], detail["limit_key"]) == (
            "pending" if n < 3 else "running",
            "fifo",
            "user-42",
        )
        await _open(client, limited, gate)
    orders = [await _order(client, limited, gate) for gate in gates]
    assert orders == sorted(orders)


async def test_different_limit_keys_run_together_and_no_key_is_not_limited_by_them(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("wide/*", 1))
    gates = [f"wide-{n}" for n in range(5)]
    for n, gate in enumerate(gates):
        await _hold(client, quill, "wide", gate, f"key-{n}" if n < 4 else None)
    await _entered(client, limited, "wide-", 5)  # all five hold their attempt at the same time
    for gate in gates:
        await _open(client, limited, gate)


async def test_a_scope_rule_limits_the_whole_scope(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("batch", 1))
    first = await _hold(client, quill, "batch", "batch-0", "a")
    await _entered(client, limited, "batch-0", 1)
    others = [await _hold(client, quill, "batch", "batch-1", "b"), await _hold(client, quill, "batch", "batch-2")]
    assert await _statuses(client, quill, [first, *others]) == ["running", "pending", "pending"]
    rows = (
        await client.post(
            f"{quill.admin}/query",
            json={"query": "SELECT * FROM sys_user_limits WHERE scope = 'batch' AND level = 'Scope'"},
            headers=JSON,
        )
    ).json()["rows"]
    assert rows[0]["usage"] == 1 and rows[0]["concurrency_limit"] == 1 and rows[0]["rule_pattern"] == "batch"
    assert rows[0]["available"] == 0
    await _open(client, limited, "batch-0")
    await _entered(client, limited, "batch-1", 1)
    assert (await _statuses(client, quill, others))[1] == "pending"
    await _open(client, limited, "batch-1")
    await _open(client, limited, "batch-2")
    await _entered(client, limited, "batch-2", 1)


async def test_rule_changes_take_effect_on_waiting_invocations(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("grow/*", 1))
    gates = [f"grow-{n}" for n in range(4)]
    ids = [await _hold(client, quill, "grow", gate, "k") for gate in gates]
    await _entered(client, limited, "grow-0", 1)
    assert await _statuses(client, quill, ids) == ["running", "pending", "pending", "pending"]
    await _rules(client, quill, ("grow/*", 3))
    await _entered(client, limited, "grow-", 3)
    assert (await _statuses(client, quill, ids))[3] == "pending"
    deleted = await client.post(f"{quill.admin}/limits/rules/bulk-delete", json=[{"pattern": "grow/*"}])
    assert deleted.json() == ["grow/*"]
    await _entered(client, limited, "grow-", 4)  # no rule left: unlimited
    for gate in gates:
        await _open(client, limited, gate)


async def test_a_suspended_invocation_does_not_hold_its_slot(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("naps/*", 1))
    headers = {"x-restate-limit-key": "k"}
    napping = asyncio.create_task(
        client.post(f"{quill.ingress}/restate/scope/naps/call/Limited/nap", json="first", headers=headers)
    )
    await client.get(f"{limited.url}/test/wait", params={"prefix": "napping:first", "total": 1})
    # The nap suspended on its sleep: the next invocation of the key gets the slot meanwhile.
    held = await _hold(client, quill, "naps", "naps-gate", "k")
    await _entered(client, limited, "naps-gate", 1)
    assert (await _statuses(client, quill, [held])) == ["running"]
    await _open(client, limited, "naps-gate")
    assert (await napping).json() == "rested first"


async def test_cancel_and_kill_of_waiting_invocations(
    quill: Quill, limited: SdkService, client: httpx.AsyncClient
) -> None:
    await _rules(client, quill, ("stop/*", 1))
    running = await _hold(client, quill, "stop", "stop-0", "k")
    await _entered(client, limited, "stop-0", 1)
    cancelled, killed, last = [await _hold(client, quill, "stop", f"stop-{n}", "k") for n in range(1, 4)]
    assert (await client.patch(f"{quill.admin}/invocations/{cancelled}/cancel")).status_code == 200
    assert (await client.patch(f"{quill.admin}/invocations/{killed}/kill")).status_code == 200
    assert await _statuses(client, quill, [running, last]) == ["running", "pending"]
    for gone in (cancelled, killed):
        output = await client.get(f"{quill.ingress}/restate/output/{gone}")
        assert output.status_code in (404, 409)  # never ran
    await _open(client, limited, "stop-0")
    await _entered(client, limited, "stop-3", 1)
    counters = (await client.get(f"{limited.url}/test/counters", params={"prefix": "entered:stop-"})).json()
    assert set(counters) == {"entered:stop-0", "entered:stop-3"}
    await _open(client, limited, "stop-3")


async def test_rules_and_waiting_invocations_survive_sigkill_in_order(
    tmp_path: Path, limited: SdkService, client: httpx.AsyncClient
) -> None:
    first = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        _register(first, limited)
        await _rules(client, first, ("crash/*", 1))
        gates = [f"crash-{n}" for n in range(4)]
        ids = [await _hold(client, first, "crash", gate, "k") for gate in gates]
        await _entered(client, limited, "crash-0", 1)
    finally:
        first.kill()
    restarted = Quill(tmp_path / "data", env=QUILL_TEST_ENV, ports=(first.ingress_port, first.admin_port))
    try:
        rules = (await client.post(f"{restarted.admin}/query", json={"query": "SELECT * FROM sys_rules"}, headers=JSON))
        assert [(r["pattern"], r["concurrency"]) for r in rules.json()["rows"]] == [("crash/*", 1)]
        await _entered(client, limited, "crash-0", 2)  # the running one got a new attempt
        assert await _statuses(client, restarted, ids) == ["running", "pending", "pending", "pending"]
        for n, gate in enumerate(gates):
            await _open(client, limited, gate)
            if n + 1 < len(gates):
                await _entered(client, limited, gates[n + 1], 1)
                assert (await _statuses(client, restarted, ids))[n + 2 :] == ["pending"] * (2 - n)
        orders = [await _order(client, limited, gate) for gate in gates[1:]]
        assert orders == sorted(orders)
    finally:
        restarted.stop()


async def test_scoped_idempotency_keys_and_workflows_are_other_invocations(
    quill: Quill, client: httpx.AsyncClient
) -> None:
    ingress = quill.ingress
    headers = {"idempotency-key": "ik-same"}
    unscoped = await client.post(f"{ingress}/restate/send/Limited/busy", json=1, headers=headers)
    s1 = await client.post(f"{ingress}/restate/scope/s1/send/Limited/busy", json=1, headers=headers)
    s2 = await client.post(f"{ingress}/restate/scope/s2/send/Limited/busy", json=1, headers=headers)
    again = await client.post(f"{ingress}/restate/scope/s1/send/Limited/busy", json=1, headers=headers)
    ids = [r.json()["invocationId"] for r in (unscoped, s1, s2)]
    assert len(set(ids)) == 3
    assert again.json() == {"invocationId": ids[1], "status": "PreviouslyAccepted"}
    target = {"target": "idempotentInvocation", "service": "Limited", "handler": "busy", "idempotencyKey": "ik-same"}
    assert (await client.post(f"{ingress}/restate/lookup", json={**target, "scope": "s1"})).json() == {
        "invocationId": ids[1]
    }
    assert (await client.post(f"{ingress}/restate/lookup", json={**target, "scope": None})).json() == {
        "invocationId": ids[0]
    }
    attached = await client.post(f"{ingress}/restate/attach", json={**target, "scope": "s2"})
    assert (attached.status_code, attached.json(), attached.headers["x-restate-id"]) == (200, 1, ids[2])
    never = await client.post(f"{ingress}/restate/output", json={**target, "scope": "s3"})
    assert (never.status_code, never.json()["message"]) == (404, "invocation not found")

    run = await client.post(f"{ingress}/restate/scope/s1/send/Signup/wf1/run", json="w@x")
    plain_run = await client.post(f"{ingress}/restate/send/Signup/wf1/run", json="w@y")
    assert run.json()["invocationId"] != plain_run.json()["invocationId"]
    workflow = {"target": "workflow", "workflowName": "Signup", "workflowKey": "wf1"}
    lookup = await client.post(f"{ingress}/restate/lookup", json={**workflow, "scope": "s1"})
    assert lookup.json() == {"invocationId": run.json()["invocationId"]}
    confirmed = await client.post(f"{ingress}/restate/scope/s1/call/Signup/wf1/confirm", json="ok-s1")
    assert confirmed.status_code == 200
    output = await client.post(f"{ingress}/restate/attach", json={**workflow, "scope": "s1"})
    assert output.json() == "w@x confirmed with ok-s1"
    # Only the scoped run was confirmed: the unscoped one of the same key still waits.
    assert (await client.post(f"{ingress}/restate/output", json=workflow)).status_code == 470
    # The scoped run's state (durable: it completed) is among the service's rows of the state table.
    query = "SELECT scope, value_utf8 FROM state WHERE service_name = 'Signup' AND key = 'email' AND scope = 's1'"
    rows = await client.post(f"{quill.admin}/query", json={"query": query}, headers={"accept": "application/json"})
    assert rows.json()["rows"] == [{"scope": "s1", "value_utf8": '"w@x"'}]


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        ("/restate/scope//call/Limited/busy", {}, 400, "bad scope value: value cannot be empty"),
        ("/restate/scope/a%20b/call/Limited/busy", {}, 400, f"bad scope value: {ALLOWED}"),
        ("/restate/scope/%2A/call/Limited/busy", {}, 400, f"bad scope value: {ALLOWED}"),
        ("/restate/scope/a%2Fb/call/Limited/busy", {}, 400, f"bad scope value: {ALLOWED}"),
        (f"/restate/scope/{'x' * 37}/call/Limited/busy", {}, 400, "bad scope value: value too long: 37 bytes (max 36)"),
        ("/restate/scope/s1/call/Counter/c1/add", {}, 400, "scope is not supported for Virtual Object targets"),
        ("/restate/scope/s1/send/Counter/c1/add", {}, 400, "scope is not supported for Virtual Object targets"),
        (
            "/restate/scope/s1/call/Limited/busy",
            {"x-restate-limit-key": "a/b/c"},
            400,
            "invalid limit-key: too many path components in the given limit-key (max 2)",
        ),
        (
            "/restate/scope/s1/call/Limited/busy?limit-key=a/b/c",
            {},
            400,
            "invalid limit-key: too many path components in the given limit-key (max 2)",
        ),
        (
            "/restate/scope/s1/call/Limited/busy",
            {"x-restate-limit-key": "a/*"},
            400,
            f"invalid limit-key: invalid limit-key component: {ALLOWED}",
        ),
        (
            "/restate/scope/s1/call/Limited/busy",
            {"x-restate-limit-key": "/a"},
            400,
            "invalid limit-key: invalid limit-key component: value cannot be empty",
        ),
        (
            "/restate/scope/s1/call/Limited/busy",
            {"x-restate-limit-key": "x" * 37},
            400,
            "invalid limit-key: invalid limit-key component: value too long: 37 bytes (max 36)",
        ),
        (
            "/restate/scope/s1/call/Limited/busy",
            {"x-restate-limit-key": "é".encode()},
            400,
            "bad header x-restate-limit-key: ToStrError { _priv: () }",
        ),
        ("/restate/call/Limited/busy", {"x-restate-limit-key": "k"}, 400, "limit-key requires a scope to be set"),
        ("/restate/call/Limited/busy?limit-key=k", {}, 400, "limit-key requires a scope to be set"),
        ("/Limited/busy", {"x-restate-limit-key": "k"}, 400, "limit-key requires a scope to be set"),
        ("/restate/scope/s1/call/Limited/busy/extra", {}, 400, None),
        ("/restate/scope/s1/Limited/busy", {}, 400, None),
    ],
)
async def test_refusals_get_the_references_status_and_message(
    quill: Quill, client: httpx.AsyncClient, path: str, headers: dict[str, Any], status: int, message: str | None
) -> None:
    response = await client.post(f"{quill.ingress}{path}", json=1, headers=headers)
    assert response.status_code == status
    assert response.headers["x-restate-error-source"] == "ingress"
    if message is not None:
        assert response.json() == {"code": status, "message": message, "source": "ingress"}


async def test_limit_keys_accepted_as_the_reference_accepts_them(quill: Quill, client: httpx.AsyncClient) -> None:
    cases = [({"x-restate-limit-key": ""}, "", None), ({"x-restate-limit-key": "a/"}, "", "a"),
             ({"x-restate-limit-key": "fromheader"}, "?limit-key=fromquery", "fromheader"),
             ({}, "?LIMIT-KEY=q1", "q1"), ({}, "?limit_key=ignored", None), ({}, "?limit-key=", None)]  # fmt: skip
    for headers, query, expected in cases:
        url = f"{quill.ingress}/restate/scope/keys/send/Limited/busy{query}"
        sent = await client.post(url, json=1, headers=headers)
        assert sent.status_code == 202, sent.text
        detail = (await client.get(f"{quill.admin}/invocations/{sent.json()['invocationId']}")).json()
        assert (detail["scope"], detail["limit_key"]) == ("keys", expected)
    scope_36 = "x" * 36
    assert (await client.post(f"{quill.ingress}/restate/scope/{scope_36}/call/Limited/busy", json=1)).json() == 1


async def test_the_rule_book_api(quill: Quill, client: httpx.AsyncClient) -> None:
    admin = quill.admin
    first = await client.put(f"{admin}/limits/rules", json=[{"pattern": "t3", "limits": {"concurrency": 1}}])
    rule = first.json()[0]
    assert (rule["pattern"], rule["limits"], rule["disabled"]) == ("t3", {"concurrency": 1}, False)
    version = rule["version"]
    assert isinstance(rule["last_modified_millis_since_epoch"], int) and "description" not in rule
    same = await client.put(f"{admin}/limits/rules", json=[{"pattern": "t3", "limits": {"concurrency": 1}}])
    assert same.json()[0]["version"] == version  # nothing changed, nothing bumped
    exists = await client.put(
        f"{admin}/limits/rules",
        json=[{"pattern": "new-one", "limits": {}}, {"pattern": "t3", "precondition": {"type": "does_not_exist"}}],
    )
    assert exists.status_code == 409
    assert exists.json() == {
        "message": f"rule precondition DoesNotExist for pattern t3 failed (actual version: Some(v{version}))",
        "restate_code": None,
    }
    mismatch = await client.put(
        f"{admin}/limits/rules", json=[{"pattern": "t4", "precondition": {"type": "matches", "version": 99}}]
    )
    assert mismatch.json()["message"] == "rule precondition Matches(v99) for pattern t4 failed (actual version: None)"
    described = await client.put(
        f"{admin}/limits/rules",
        json=[{"pattern": "t3", "limits": {"concurrency": 2}, "description": "why", "disabled": True,
               "precondition": {"type": "matches", "version": version}, "unknown": 1}],
    )  # fmt: skip
    assert described.json()[0]["version"] == version + 1 and described.json()[0]["description"] == "why"
    rows = (await client.post(f"{admin}/query", json={"query": "SELECT * FROM sys_rules"}, headers=JSON)).json()
    assert {r["pattern"] for r in rows["rows"]} >= {"t3"}
    assert "new-one" not in {r["pattern"] for r in rows["rows"]}  # the failed batch left nothing behind
    stale = await client.post(f"{admin}/limits/rules/bulk-delete", json=[{"pattern": "t3", "expected_version": 1}])
    assert stale.status_code == 409
    removed = await client.post(f"{admin}/limits/rules/bulk-delete", json=[{"pattern": "t3"}, {"pattern": "absent"}])
    assert removed.json() == ["t3"]
    assert (await client.get(f"{admin}/limits/rules")).status_code == 405
    assert (await client.get(f"{admin}/version")).json()["features"]["vqueues"] is True
    paths = (await client.get(f"{admin}/openapi")).json()["paths"]
    assert {"/limits/rules", "/limits/rules/bulk-delete"} <= set(paths)


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b'[{"pattern":"a/b/c/d","limits":{"concurrency":1}}]', 422,
         "Failed to deserialize the JSON body into the target type: [0].pattern: too many path components (max 3)"
         " at line 1 column 21"),
        (b'[{"pattern":"t1","limits":{"concurrency":0}}]', 422,
         "Failed to deserialize the JSON body into the target type: [0].limits.concurrency: invalid value:"
         " integer `0`, expected a nonzero u32 at line 1 column 42"),
        (b'{"pattern":"t1"}', 422,
         "Failed to deserialize the JSON body into the target type: invalid type: map, expected a sequence"
         " at line 1 column 0"),
        (b"[", 400, "Failed to parse the request body as JSON: EOF while parsing a list at line 1 column 1"),
    ],
)  # fmt: skip
async def test_rule_bodies_are_refused_in_restates_words(
    quill: Quill, client: httpx.AsyncClient, body: bytes, status: int, text: str
) -> None:
    headers = {"content-type": "application/json"}
    response = await client.put(f"{quill.admin}/limits/rules", content=body, headers=headers)
    assert (response.status_code, response.text) == (status, text)
    assert response.headers["content-type"].startswith("text/plain")
    untyped = await client.put(f"{quill.admin}/limits/rules", content=b"[]")
    assert untyped.status_code == 415


async def test_protocol_v7_carries_scope_and_limit_key_to_the_sdk_and_from_its_calls(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    server = Quill(tmp_path / "data", env={**QUILL_TEST_ENV, "QUILL_ENABLE_PROTOCOL_V7": "true"})
    ts = TsService()
    try:
        registered = await client.post(f"{server.admin}/deployments", json={"uri": ts.url, "use_http_11": True})
        assert registered.status_code == 201, registered.text
        whoami = await client.post(
            f"{server.ingress}/restate/scope/t1/call/TsGreeter/whoami",
            headers={"x-restate-limit-key": "u1/x", "idempotency-key": "ik1"},
        )
        assert whoami.json() == {"scope": "t1", "limitKey": "u1/x", "idempotencyKey": "ik1"}
        called = await client.post(
            f"{server.ingress}/restate/call/TsGreeter/callScoped", json={"scope": "t2", "limitKey": "user-7"}
        )
        assert called.json() == {"scope": "t2", "limitKey": "user-7", "idempotencyKey": None}
        query = "SELECT scope, limit_key FROM sys_invocation WHERE target = 'TsGreeter/whoami' AND scope = 't2'"
        rows = (await client.post(f"{server.admin}/query", json={"query": query}, headers=JSON)).json()["rows"]
        assert rows == [{"scope": "t2", "limit_key": "user-7"}]
    finally:
        ts.stop()
        server.stop()
