"""Dapr service invocation (``/v1.0/invoke``) against a real FastAPI app, with raw HTTP and with the
official Dapr Python SDK (``DaprClient.invoke_method``) pointed at quill."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprHttpError

from tests.conftest import QUILL_TEST_ENV
from tests.support import Process, Quill, free_port

MATH_ACCESS = {
    "defaultAction": "allow",
    "operations": [
        {"name": "/admin/**", "action": "deny"},
        {"name": "/admin/open", "httpVerb": ["GET"], "action": "allow"},
    ],
}


class DaprApp(Process):
    """tests/services/dapr_app.py under uvicorn."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.services.dapr_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "info",
        ]
        super().__init__(argv, ready_marker="Uvicorn running on")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class DaprQuill(Quill):
    def __init__(self, data_dir: Path) -> None:
        self.dapr_port = free_port()
        env = {**QUILL_TEST_ENV, "QUILL_DAPR_PORT": str(self.dapr_port), "QUILL_DAPR_ALLOW_URL_TARGETS": "true"}
        super().__init__(data_dir, env=env)

    @property
    def dapr(self) -> str:
        return f"http://127.0.0.1:{self.dapr_port}"


@pytest.fixture(scope="module")
def app() -> Iterator[DaprApp]:
    process = DaprApp()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, app: DaprApp) -> Iterator[DaprQuill]:
    """quill with mathService (access policy), locked (deny by default) and an HTTP endpoint."""
    quill = DaprQuill(tmp_path_factory.mktemp("quill") / "data")
    try:
        registrations = [
            {"uri": app.url, "app_id": "mathService", "kind": "dapr", "access": MATH_ACCESS},
            {
                "uri": app.url,
                "app_id": "locked",
                "kind": "dapr",
                "access": {"defaultAction": "deny", "operations": [{"name": "/public/*", "action": "allow"}]},
            },
            {"uri": app.url, "app_id": "mathHTTPEndpoint", "kind": "http_endpoint"},
        ]
        for body in registrations:
            response = httpx.post(f"{quill.admin}/deployments", json=body)
            assert response.status_code == 201, response.text
        yield quill
    finally:
        quill.stop()


def _invoke(server: DaprQuill, app_id: str, method: str) -> str:
    return f"{server.ingress}/v1.0/invoke/{app_id}/method/{method}"


# -- registration ------------------------------------------------------------------------------
async def test_registration_shapes_and_conflicts(server: DaprQuill, app: DaprApp, client: httpx.AsyncClient) -> None:
    described = (await client.get(f"{server.admin}/dapr/apps/mathService")).json()
    assert described["app_id"] == "mathService" and described["uri"] == app.url and described["kind"] == "dapr"
    assert described["healthz"] is True and described["dapr_config"] is None  # no actors: /dapr/config is 404
    assert described["access"] == {
        "defaultAction": "allow",
        "operations": [
            {"name": "/admin/**", "action": "deny", "httpVerb": ["*"]},
            {"name": "/admin/open", "action": "allow", "httpVerb": ["GET"]},
        ],
    }
    listed = (await client.get(f"{server.admin}/dapr/apps")).json()["apps"]
    assert {a["app_id"] for a in listed} == {"mathService", "locked", "mathHTTPEndpoint"}
    # Restate's /deployments (parsed by the restate CLI) is not mixed with Dapr apps.
    assert (await client.get(f"{server.admin}/deployments")).json() == {"deployments": []}

    same = {"uri": app.url, "app_id": "mathService", "kind": "dapr", "access": MATH_ACCESS}
    assert (await client.post(f"{server.admin}/deployments", json=same)).status_code == 200
    changed = await client.post(f"{server.admin}/deployments", json={**same, "access": None})
    assert changed.status_code == 409, changed.text
    dry = await client.post(
        f"{server.admin}/deployments", json={**same, "access": None, "force": True, "dry_run": True}
    )
    assert dry.status_code == 200 and dry.json()["access"]["operations"] == []
    assert (await client.get(f"{server.admin}/dapr/apps/mathService")).json()["access"] == described["access"]

    unreachable = await client.post(
        f"{server.admin}/deployments", json={"uri": f"http://127.0.0.1:{free_port()}", "app_id": "gone", "kind": "dapr"}
    )
    assert unreachable.status_code == 400 and "gone" in unreachable.json()["message"]
    for bad, status in (
        ({"uri": app.url, "app_id": "a.b", "kind": "dapr"}, 400),
        ({"uri": app.url, "app_id": "x", "kind": "grpc"}, 400),
        ({"uri": "ftp://x", "app_id": "x", "kind": "dapr"}, 400),
        ({"uri": app.url, "app_id": "x", "kind": "dapr", "access": {"defaultAction": "maybe"}}, 400),
        # JSON of the wrong shape is a 422, as for every admin body.
        ({"uri": app.url, "app_id": "x", "kind": "dapr", "unknown": 1}, 422),
    ):
        refused = await client.post(f"{server.admin}/deployments", json=bad)
        assert refused.status_code == status, (bad, refused.text)
    assert (await client.get(f"{server.admin}/dapr/apps/x")).status_code == 404


async def test_registration_survives_restart_and_delete(
    tmp_path: Path, app: DaprApp, client: httpx.AsyncClient
) -> None:
    quill = DaprQuill(tmp_path / "data")
    try:
        body = {"uri": app.url, "app_id": "calc", "kind": "dapr"}
        assert (await client.post(f"{quill.admin}/deployments", json=body)).status_code == 201
        quill.stop()
        quill = DaprQuill(tmp_path / "data")
        answer = await client.post(_invoke(quill, "calc", "add"), json={"a": 20, "b": 22})
        assert (answer.status_code, answer.json()) == (200, 42)
        assert (await client.delete(f"{quill.admin}/dapr/apps/calc")).status_code == 202
        gone = await client.post(_invoke(quill, "calc", "add"), json={"a": 1, "b": 1})
        assert gone.status_code == 500 and gone.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    finally:
        quill.stop()


# -- forwarding --------------------------------------------------------------------------------
async def test_post_add(server: DaprQuill, client: httpx.AsyncClient) -> None:
    answer = await client.post(_invoke(server, "mathService", "add"), json={"a": 2, "b": 3})
    assert answer.status_code == 200
    assert answer.json() == 5
    assert answer.headers["x-math"] == "done"
    assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_every_verb_nested_path_query_headers_body(
    server: DaprQuill, app: DaprApp, client: httpx.AsyncClient, verb: str
) -> None:
    body = b"" if verb == "GET" else b'{"k": "v"}'
    answer = await client.request(
        verb,
        _invoke(server, "mathService", "api/v1/echo") + "?x=1&y=a+b&y=%2F",
        content=body,
        headers={"x-custom": "yes", "content-type": "application/json", "dapr-app-id": "ignored"},
    )
    assert answer.status_code == 200, answer.text
    echoed = answer.json()
    assert (echoed["method"], echoed["path"], echoed["query"]) == (verb, "/api/v1/echo", "x=1&y=a+b&y=%2F")
    assert echoed["body"] == body.decode()
    headers = dict(echoed["headers"])
    assert headers["x-custom"] == "yes" and headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{app.port}"
    assert headers["dapr-callee-app-id"] == "mathService"
    assert "dapr-app-id" not in headers
    assert answer.headers["x-echo"] == "1"


@pytest.mark.parametrize("code", [201, 204, 404, 418, 500, 503])
async def test_status_passthrough(server: DaprQuill, client: httpx.AsyncClient, code: int) -> None:
    answer = await client.put(_invoke(server, "mathService", f"status/{code}"))
    assert answer.status_code == code
    assert answer.headers["x-status"] == str(code)
    assert answer.content == (b"" if code == 204 else f"status {code}".encode())


async def test_encoded_bodies_pass_through(server: DaprQuill, client: httpx.AsyncClient) -> None:
    async with client.stream("GET", _invoke(server, "mathService", "gzip")) as answer:
        raw = b"".join([chunk async for chunk in answer.aiter_raw()])
    assert answer.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"hello, gzip"  # the app's bytes, not decompressed on the way


async def test_app_id_forms(server: DaprQuill, app: DaprApp, client: httpx.AsyncClient) -> None:
    for app_id in ("mathService.testing", "mathHTTPEndpoint", app.url, quote(app.url, safe="")):
        answer = await client.post(_invoke(server, app_id, "add"), json={"a": 1, "b": 2})
        assert (answer.status_code, answer.json()) == (200, 3), (app_id, answer.text)
    nested = await client.get(_invoke(server, quote(app.url, safe=""), "echo/a/b/c") + "?q=1")
    assert (nested.json()["path"], nested.json()["query"]) == ("/echo/a/b/c", "q=1")


async def test_header_forms_and_health(server: DaprQuill, client: httpx.AsyncClient) -> None:
    # On the --dapr-port listener, as on daprd's :3500, the app id may come from a header and the
    # whole path is the method.
    by_header = await client.get(f"{server.dapr}/api/v1/echo?x=7", headers={"dapr-app-id": "mathService"})
    assert by_header.status_code == 200 and by_header.json()["query"] == "x=7"
    basic = base64.b64encode(b"dapr-app-id:mathService").decode()
    by_auth = await client.post(
        f"{server.dapr}/add", json={"a": 4, "b": 4}, headers={"authorization": f"Basic {basic}"}
    )
    assert (by_auth.status_code, by_auth.json()) == (200, 8)
    on_port = await client.post(f"{server.dapr}/v1.0/invoke/mathService/method/add", json={"a": 1, "b": 1})
    assert on_port.json() == 2
    for base in (server.ingress, server.dapr):
        for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
            health = await client.get(base + path)
            assert (health.status_code, health.content) == (204, b"")
        assert (await client.get(base + "/v1.0/nothing")).status_code == 404
    # The Restate ingress is untouched by the Dapr routes.
    assert (await client.get(f"{server.ingress}/restate/health")).json() == {"services": []}
    assert (await client.get(f"{server.dapr}/restate/health")).status_code == 404


# -- errors ------------------------------------------------------------------------------------
async def test_missing_method_and_unknown_app(server: DaprQuill, client: httpx.AsyncClient) -> None:
    no_slash = await client.get(f"{server.ingress}/v1.0/invoke/mathService/method")
    assert no_slash.status_code == 404
    assert no_slash.json() == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": "failed getting app id either from the URL path or the header dapr-app-id",
    }
    empty = await client.get(f"{server.ingress}/v1.0/invoke/mathService/method/")
    assert (empty.status_code, empty.json()) == (
        400,
        {"errorCode": "ERR_DIRECT_INVOKE", "message": "invalid method name"},
    )
    unknown = await client.post(_invoke(server, "nope", "add"), json={})
    assert unknown.status_code == 500
    assert unknown.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert unknown.json()["message"].startswith("failed to invoke, id: nope, err: ")


async def test_unreachable_app_is_500_with_details(server: DaprQuill, client: httpx.AsyncClient) -> None:
    port = free_port()
    body = {
        "uri": f"http://127.0.0.1:{port}",
        "app_id": "down",
        "kind": "http_endpoint",
        "retry": {"maxRetries": 2, "duration": "10ms"},
    }
    assert (await client.post(f"{server.admin}/deployments", json=body)).status_code == 201
    answer = await client.post(_invoke(server, "down", "add"), json={"a": 1, "b": 1})
    assert answer.status_code == 500
    error = answer.json()
    assert error["errorCode"] == "ERR_DIRECT_INVOKE"
    message = error["message"]
    assert message.startswith("failed to invoke, id: down, err: POST http://127.0.0.1:")
    assert f"{port}/add" in message and "connect" in message.lower() and "after 3 attempts" in message


async def test_transport_failures_are_retried_and_answers_never(server: DaprQuill, client: httpx.AsyncClient) -> None:
    port = free_port()
    body = {
        "uri": f"http://127.0.0.1:{port}",
        "app_id": "late",
        "kind": "http_endpoint",
        "retry": {"maxRetries": 300, "duration": "50ms"},
    }
    assert (await client.post(f"{server.admin}/deployments", json=body)).status_code == 201
    call = asyncio.create_task(client.post(_invoke(server, "late", "add"), json={"a": 5, "b": 6}))
    await asyncio.sleep(0.3)
    assert not call.done()  # connection refused, retrying
    late = await asyncio.to_thread(DaprApp, port)
    try:
        answer = await call
        assert (answer.status_code, answer.json()) == (200, 11)
        # A 503 is the app's answer: passed through, never retried.
        failed = await client.post(_invoke(server, "late", "fail"))
        assert failed.status_code == 503 and failed.json() == {"error": "unavailable"}
        assert (await client.get(_invoke(server, "late", "calls/fail"))).json() == 1
    finally:
        late.stop()


async def test_access_control(server: DaprQuill, client: httpx.AsyncClient) -> None:
    denied = await client.get(_invoke(server, "mathService", "admin/secret"))
    assert denied.status_code == 403
    assert denied.json() == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": "failed to invoke, id: mathService, err: access control policy has denied access"
        " to id: mathService operation: /admin/secret verb: GET",
    }
    assert (await client.get(_invoke(server, "mathService", "admin/open"))).json() == {"admin": "open"}
    assert (await client.post(_invoke(server, "mathService", "admin/open"))).status_code == 403
    # Encodings and dot segments do not slip past a deny rule.
    for sneaky in ("public/../admin/secret", "public/%2E%2E/admin/secret", "%61dmin/secret", "admin%2Fsecret"):
        assert (await client.get(_invoke(server, "mathService", sneaky))).status_code == 403, sneaky
    assert (await client.get(_invoke(server, "locked", "public/x"))).json() == {"public": "x"}
    assert (await client.post(_invoke(server, "locked", "add"), json={"a": 1, "b": 1})).status_code == 403
    assert (await client.get(_invoke(server, "locked.default", "public/y"))).json() == {"public": "y"}


# -- the official Dapr Python SDK --------------------------------------------------------------
@pytest.fixture
def closing_loops(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The synchronous DaprClient runs each call on a new event loop that it never closes."""
    loops: list[asyncio.AbstractEventLoop] = []
    new_loop = asyncio.new_event_loop

    def tracked() -> asyncio.AbstractEventLoop:
        loops.append(new_loop())
        return loops[-1]

    monkeypatch.setattr(asyncio, "new_event_loop", tracked)
    yield
    asyncio.set_event_loop(None)
    for loop in loops:
        loop.close()


@pytest.mark.usefixtures("closing_loops")
def test_dapr_sdk_invoke_method(server: DaprQuill, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_HTTP_ENDPOINT", server.ingress)
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
    with DaprClient() as dapr:
        added = dapr.invoke_method("mathService", "add", data=json.dumps({"a": 20, "b": 3}), http_verb="POST")
        assert (added.status_code, json.loads(added.data)) == (200, 23)
        assert dict(added.headers)["x-math"] == ["done"]  # the SDK keeps header values as lists
        echoed = dapr.invoke_method(
            "mathService",
            "api/v1/echo",
            http_verb="GET",
            http_querystring=(("x", "a b"), ("x", "2")),
            metadata=(("x-trace", "t1"),),
        )
        body = json.loads(echoed.data)
        assert (body["path"], body["query"]) == ("/api/v1/echo", "x=a+b&x=2")
        assert dict(body["headers"])["x-trace"] == "t1"
        with pytest.raises(DaprHttpError) as teapot:
            dapr.invoke_method("mathService", "status/418", http_verb="PUT")
        assert teapot.value.status_code == 418
        with pytest.raises(DaprHttpError) as denied:
            dapr.invoke_method("mathService", "admin/secret", http_verb="GET")
        assert denied.value.status_code == 403
        assert denied.value.error_code == "ERR_DIRECT_INVOKE"
        assert "access control" in (denied.value.message or "")


async def test_dapr_sdk_with_dapr_http_port(server: DaprQuill, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's defaults (no endpoint, just DAPR_HTTP_PORT) reach the --dapr-port listener; the
    asyncio client this time."""
    monkeypatch.delenv("DAPR_HTTP_ENDPOINT", raising=False)
    monkeypatch.setenv("DAPR_RUNTIME_HOST", "127.0.0.1")
    monkeypatch.setenv("DAPR_HTTP_PORT", str(server.dapr_port))
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
    async with AsyncDaprClient() as dapr:
        added = await dapr.invoke_method("mathService.production", "add", data=b'{"a": 1, "b": 41}', http_verb="POST")
        assert json.loads(added.data) == 42
        echoed = await dapr.invoke_method("mathService", "echo/deep/path", http_verb="DELETE")
        assert json.loads(echoed.data)["method"] == "DELETE"
