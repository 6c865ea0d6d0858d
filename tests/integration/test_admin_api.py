"""The admin API beyond registration: versioned prefixes, services and handlers, operator
overrides, invocation inspection and SQL introspection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from fastapi.routing import APIRoute

from admin import create_admin_app
from engine import Config, Engine
from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_version_and_versioned_prefixes(quill: Quill, client: httpx.AsyncClient) -> None:
    version = (await client.get(f"{quill.admin}/version")).json()
    assert (version["min_admin_api_version"], version["max_admin_api_version"]) == (2, 4)
    assert version["ingress_endpoint"] == f"http://127.0.0.1:{quill.ingress_port}/"
    assert version["features"]["protocol_v7"] is False
    plain = (await client.get(f"{quill.admin}/services/Greeter")).json()
    for prefix in ("/v2", "/v3", "/v4"):
        assert (await client.get(f"{quill.admin}{prefix}/services/Greeter")).json() == plain
        assert (await client.get(f"{quill.admin}{prefix}/health")).status_code == 200
    refused = await client.get(f"{quill.admin}/v1/services")
    assert refused.status_code == 400
    assert refused.json()["message"]


async def test_handlers_of_a_service(quill: Quill, client: httpx.AsyncClient) -> None:
    handlers = (await client.get(f"{quill.admin}/v4/services/Counter/handlers")).json()["handlers"]
    by_name = {h["name"]: h for h in handlers}
    assert (by_name["add"]["ty"], by_name["get"]["ty"]) == ("Exclusive", "Shared")
    one = (await client.get(f"{quill.admin}/services/Counter/handlers/add")).json()
    assert one == by_name["add"]
    missing = await client.get(f"{quill.admin}/services/Counter/handlers/nope")
    assert missing.status_code == 404
    assert (await client.get(f"{quill.admin}/services/Nope/handlers")).status_code == 404


async def test_deployment_detail_has_full_services(quill: Quill, client: httpx.AsyncClient) -> None:
    listed = (await client.get(f"{quill.admin}/deployments")).json()["deployments"][0]
    assert {"name", "revision"} == set(listed["services"][0])
    detail = (await client.get(f"{quill.admin}/deployments/{listed['id']}")).json()
    services = {s["name"]: s for s in detail["services"]}
    assert services["Greeter"]["ty"] == "Service" and services["Greeter"]["handlers"]


async def test_patch_service_overrides_show_and_apply(quill: Quill, client: httpx.AsyncClient) -> None:
    patched = await client.patch(
        f"{quill.admin}/v4/services/Greeter",
        json={
            "idempotency_retention": "PT2H",
            "journal_retention": "30m",
            "inactivity_timeout": "2m",
            "abort_timeout": "PT20M",
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["idempotency_retention"], body["journal_retention"]) == ("2h", "30m")
    assert (body["inactivity_timeout"], body["abort_timeout"]) == ("2m", "20m")
    assert (await client.get(f"{quill.admin}/services/Greeter")).json() == body
    # The new idempotency retention governs retained results from now on.
    call = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", json="ret", headers={"idempotency-key": "r1"}
    )
    again = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", json="ret", headers={"idempotency-key": "r1"}
    )
    assert call.json() == again.json() == "Hello ret!"
    expires = again.headers["idempotency-expires"]
    assert expires, again.headers
    bad = await client.patch(f"{quill.admin}/services/Greeter", json={"abort_timeout": "soon"})
    assert bad.status_code == 422  # valid JSON, a bad duration: as Restate
    assert (await client.patch(f"{quill.admin}/services/Greeter", json={"nope": 1})).status_code == 200  # ignored
    not_workflow = await client.patch(f"{quill.admin}/services/Greeter", json={"workflow_completion_retention": "1h"})
    assert not_workflow.status_code == 400
    workflow = await client.patch(f"{quill.admin}/services/Signup", json={"workflow_completion_retention": "1h"})
    assert workflow.json()["workflow_completion_retention"] == "1h"
    assert (await client.patch(f"{quill.admin}/services/Nope", json={})).status_code == 404


async def test_private_service_is_refused_by_the_ingress(quill: Quill, client: httpx.AsyncClient) -> None:
    private = await client.patch(f"{quill.admin}/services/Timers", json={"public": False})
    assert private.json()["public"] is False
    assert all(not h["public"] for h in private.json()["handlers"])
    try:
        refused = await client.post(f"{quill.ingress}/restate/send/Timers/sleep", json=1)
        assert refused.status_code == 400
        assert refused.json()["message"] == "the invoked service is not public"
    finally:
        public = await client.patch(f"{quill.admin}/services/Timers", json={"public": True})
        assert public.json()["public"] is True


async def test_get_invocation(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    done = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="inv")
    info = (await client.get(f"{quill.admin}/v4/invocations/{done.headers['x-restate-id']}")).json()
    assert info["id"] == done.headers["x-restate-id"]
    assert (info["target"], info["target_service_name"], info["target_handler_name"]) == (
        "Greeter/greet",
        "Greeter",
        "greet",
    )
    assert (info["status"], info["completion_result"], info["completion_failure"]) == ("completed", "success", None)
    assert info["created_at"].endswith("Z") and info["modified_at"] >= info["created_at"]

    failed = await client.post(f"{quill.ingress}/restate/call/Greeter/fail", json="x")
    info = (await client.get(f"{quill.admin}/invocations/{failed.headers['x-restate-id']}")).json()
    assert (info["completion_result"], info["completion_failure"]) == ("failure", "[409] no greeting for x")

    held = await client.post(f"{quill.ingress}/restate/send/Counter/inspect/hold", json="inspect-gate")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:inspect", "total": 1})
    queued = await client.post(f"{quill.ingress}/restate/send/Counter/inspect/add", json=1)
    running = (await client.get(f"{quill.admin}/invocations/{held.json()['invocationId']}")).json()
    assert running["status"] in ("running", "suspended")
    assert (running["target_service_key"], running["journal_size"]) == ("inspect", running["journal_size"])
    assert running["journal_size"] >= 1
    inboxed = (await client.get(f"{quill.admin}/invocations/{queued.json()['invocationId']}")).json()
    assert inboxed["status"] == "pending"  # as Restate's sys_invocation words queued work
    await client.get(f"{sdk_service.url}/test/open", params={"name": "inspect-gate"})

    unknown = await client.get(f"{quill.admin}/invocations/inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae")
    assert unknown.status_code == 404
    bad = await client.get(f"{quill.admin}/invocations/not-an-id")
    assert bad.status_code == 400 and "invocation_id" in bad.json()["message"]


async def test_backing_off_invocation(quill: Quill, client: httpx.AsyncClient) -> None:
    sent = await client.post(f"{quill.ingress}/restate/send/Greeter/flaky", json="inspect-flaky")
    invocation_id = sent.json()["invocationId"]
    seen = set()
    for _ in range(100):
        info = (await client.get(f"{quill.admin}/invocations/{invocation_id}")).json()
        seen.add(info["status"])
        if info["status"] == "backing-off":
            assert info["retry_count"] >= 1 and "attempt" in info["last_failure"]
        if info["status"] == "completed":
            break
        await asyncio.sleep(0.01)
    assert "backing-off" in seen and info["status"] == "completed"


async def test_sql_query_json_and_arrow(quill: Quill, client: httpx.AsyncClient) -> None:
    await client.post(f"{quill.ingress}/restate/call/Counter/sql-key/add", json=7)
    query = (
        "select service_name, service_key, key, value from state"
        " where service_name = 'Counter' and service_key = 'sql-key' ;"
    )
    rows = (
        await client.post(f"{quill.admin}/v4/query", json={"query": query}, headers={"accept": "application/json"})
    ).json()
    assert rows == {
        "rows": [{"service_name": "Counter", "service_key": "sql-key", "key": "value", "value": b"7".hex()}]
    }

    sql = "SELECT id, target, status FROM sys_invocation_status WHERE target LIKE 'Counter/sql-key/%'"
    rows = (
        await client.post(f"{quill.admin}/query", json={"query": sql}, headers={"accept": "application/json"})
    ).json()
    assert [r["target"] for r in rows["rows"]] == ["Counter/sql-key/add"]

    count = await client.post(
        f"{quill.admin}/query", json={"query": "SELECT COUNT(1) FROM sys_deployment"}, headers={"accept": "*/*"}
    )
    assert count.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(count.content).read_all()
    assert table.column(0).to_pylist() == [1] and table.schema.field(0).type == pa.int64()

    joined = (
        "SELECT inv.id, dp.id IS NOT NULL AS pinned_deployment_exists FROM sys_invocation inv"
        " LEFT JOIN sys_deployment dp ON dp.id = inv.pinned_deployment_id WHERE inv.target_service_name = 'Counter'"
    )
    rows = (
        await client.post(f"{quill.admin}/query", json={"query": joined}, headers={"accept": "application/json"})
    ).json()
    assert rows["rows"] and all(r["pinned_deployment_exists"] for r in rows["rows"])
    services = (
        await client.post(
            f"{quill.admin}/query",
            json={"query": "select name, ty from sys_service order by name"},
            headers={"accept": "application/json"},
        )
    ).json()
    assert {"name": "Counter", "ty": "virtual_object"} in services["rows"]


async def test_sql_errors_and_no_file_access(quill: Quill, client: httpx.AsyncClient) -> None:
    bad = await client.post(f"{quill.admin}/query", json={"query": "SELEC nonsense"})
    assert bad.status_code == 400 and bad.json()["message"]
    files = await client.post(f"{quill.admin}/query", json={"query": "SELECT * FROM read_text('/etc/hostname')"})
    assert files.status_code == 400
    # Deeper than the planner recurses: DuckDB answers, never a 500.
    nested = "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM sys_invocation"
    long_and = "SELECT 1 FROM sys_invocation WHERE " + " AND ".join(["id = 'x'"] * 3000)
    for query in (nested, long_and):
        answer = await client.post(f"{quill.admin}/query", json={"query": query})
        assert answer.status_code in (200, 400), answer.text[:200]


async def test_limit_rule_bodies_that_do_not_parse_are_400(quill: Quill, client: httpx.AsyncClient) -> None:
    deep = '[{"pattern":"a","x":' + "[" * 5000 + "]" * 5000 + "}]"
    for body, message in (
        (deep, "recursion limit exceeded"),
        ('[{"pattern":"\\ud800"}]', "lone leading surrogate in hex escape"),
        ('[{"pattern":"a","description":"\\ud800"}]', "lone leading surrogate in hex escape"),
    ):
        answer = await client.put(
            f"{quill.admin}/limits/rules", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400 and message in answer.text, answer.text


async def test_admin_openapi_is_valid(quill: Quill, client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    document = (await client.get(f"{quill.admin}/openapi")).json()
    validate(document)
    assert {"/query", "/services/{service}/handlers", "/invocations/{invocation_id}"} <= set(document["paths"])


def _served(routes: Iterable[object]) -> Iterator[APIRoute]:
    """Every API route of the admin app, through included routers (however FastAPI nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _served(route.original_router.routes)
        elif hasattr(route, "routes"):
            yield from _served(route.routes)


# Routes of Restate 1.7.12's admin document that quill serves, with its operation ids.
_RESTATE_OPERATIONS = {
    ("get", "/deployments"): "list_deployments",
    ("post", "/deployments"): "create_deployment",
    ("get", "/deployments/{deployment}"): "get_deployment",
    ("delete", "/deployments/{deployment}"): "delete_deployment",
    ("patch", "/deployments/{deployment}"): "update_deployment",
    ("get", "/health"): "health",
    ("get", "/version"): "version",
    ("get", "/services"): "list_services",
    ("get", "/services/{service}"): "get_service",
    ("patch", "/services/{service}"): "modify_service",
    ("get", "/services/{service}/handlers"): "list_service_handlers",
    ("get", "/services/{service}/handlers/{handler}"): "get_service_handler",
    ("get", "/services/{service}/openapi"): "get_service_openapi",
    ("post", "/services/{service}/state"): "modify_service_state",
    ("delete", "/invocations/{invocation_id}"): "delete_invocation",
    ("patch", "/invocations/{invocation_id}/cancel"): "cancel_invocation",
    ("patch", "/invocations/{invocation_id}/kill"): "kill_invocation",
    ("patch", "/invocations/{invocation_id}/pause"): "pause_invocation",
    ("patch", "/invocations/{invocation_id}/resume"): "resume_invocation",
    ("patch", "/invocations/{invocation_id}/purge"): "purge_invocation",
    ("patch", "/invocations/{invocation_id}/restart-as-new"): "restart_as_new_invocation",
    ("post", "/query"): "query",
}


def test_the_admin_document_lists_every_route_it_serves(tmp_path: Path) -> None:
    app = create_admin_app(Engine(Config(data_dir=str(tmp_path))))
    document = app.openapi()
    documented = {(method, path): op for path, item in document["paths"].items() for method, op in item.items()}
    served = {(method.lower(), route.path): route for route in _served(app.routes) for method in route.methods}
    undocumented = {key for key, route in served.items() if not route.include_in_schema}
    # The Prometheus scrape and the web UI's pages and files: not part of Restate's admin API.
    ui = {("get", "/"), ("get", "/ui"), ("get", "/ui/assets/{name}"), ("get", "/ui/{page:path}")}
    assert undocumented <= {("get", "/metrics"), *ui}
    assert served and set(served) - undocumented == set(documented)
    assert {key: documented[key]["operationId"] for key in _RESTATE_OPERATIONS} == _RESTATE_OPERATIONS
    # The errors each route may answer, in Restate's error shape; FastAPI's generic 422 is not one.
    assert set(documented[("get", "/services/{service}")]["responses"]) == {"200", "400", "404", "405", "409", "500"}
    assert set(documented[("patch", "/invocations/{invocation_id}/cancel")]["responses"]) >= {"200", "202"}
    assert "HTTPValidationError" not in str(document)
