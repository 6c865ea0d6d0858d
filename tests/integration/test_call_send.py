"""Call and send through quill's ingress against a real restate-sdk service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from engine.ids import InvocationId
from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_call_returns_the_handler_result(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="Mary")
    assert response.status_code == 200
    assert response.json() == "Hello Mary!"
    assert response.headers["content-type"] == "application/json"
    InvocationId.parse(response.headers["x-restate-id"])


async def test_older_unversioned_call_path(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/Greeter/greet", json="Ann")
    assert response.status_code == 200
    assert response.json() == "Hello Ann!"


async def test_send_is_accepted_and_runs(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/send/Greeter/counted", json="Sent")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "Accepted"
    assert body["invocationId"] == response.headers["x-restate-id"]
    InvocationId.parse(body["invocationId"])
    # The handler's side effect shows that the one-way invocation really ran.
    ran = await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "counted:Sent", "total": 1})
    assert ran.json() == 1


async def test_ctx_run_journals_its_result_once(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Greeter/counted", json="Run")
    assert response.status_code == 200
    assert response.json() == "Hello Run #1"
    counted = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "counted:Run"})
    # The run closure executed once although the invocation suspended and replayed after it.
    assert counted.json() == {"counted:Run": 1}


async def test_terminal_error_keeps_its_code_and_message(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Greeter/fail", json="Bob")
    assert response.status_code == 409
    assert response.json() == {"code": 409, "message": "no greeting for Bob", "source": "invocation"}
    assert response.headers["x-restate-error-source"] == "invocation"
    InvocationId.parse(response.headers["x-restate-id"])


async def test_retryable_errors_are_retried_until_success(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Greeter/flaky", json="F")
    assert response.status_code == 200
    assert response.json() == "F after 3 attempts"


async def test_input_headers_reach_the_handler(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{quill.ingress}/restate/call/Greeter/headers",
        headers={"x-custom": "yes", "idempotency-key": "not-forwarded"},
    )
    assert response.status_code == 200
    headers = response.json()
    assert headers["x-custom"] == "yes"
    assert headers["x-restate-ingress-path"] == "/restate/call/Greeter/headers"
    assert "idempotency-key" not in headers


BAD_PATH = (
    "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler,"
    " /restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id,"
    " /restate/output/:invocation_id, or /restate/lookup"
)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (
            "/restate/call/Nope/greet",
            404,
            "service 'Nope' not found, make sure to register the service before calling it.",
        ),
        (
            "/restate/call/Greeter/nope",
            404,
            "the service 'Greeter' exists, but the handler 'nope' was not found,"
            " check that the handler exists in the latest registered service version.",
        ),
        ("/restate/call/Greeter/k1/greet", 400, BAD_PATH),
        ("/restate/call/Greeter", 400, BAD_PATH),
        ("/restate/call/Greeter/greet/extra", 400, BAD_PATH),
        ("/restate/call/Counter/add", 400, BAD_PATH),
        (
            "/Counter/add",
            400,
            "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler",
        ),
        ("/restate", 400, "bad path: /restate"),
        ("/restate/bogus/Greeter/greet", 404, "not found"),
        ("/restate/scope/s1/call/Counter/c1/add", 400, "scope is not supported for Virtual Object targets"),
        (
            "/restate/scope/s1/call/Nope/greet",
            404,
            "service 'Nope' not found, make sure to register the service before calling it.",
        ),
        ("/restate/call/Greeter/greet?limit-key=x", 400, "limit-key requires a scope to be set"),
    ],
)
async def test_bad_targets_get_restate_errors(
    quill: Quill, client: httpx.AsyncClient, path: str, status: int, message: str
) -> None:
    response = await client.post(f"{quill.ingress}{path}", json="x")
    assert response.status_code == status
    assert response.json() == {"code": status, "message": message, "source": "ingress"}
    assert response.headers["x-restate-error-source"] == "ingress"


@pytest.mark.parametrize(
    ("handler", "headers", "body", "message"),
    [
        (
            "greet",
            {"content-type": "text/plain"},
            b'"Mary"',
            "Content-type 'text/plain' does not match 'application/json'",
        ),
        ("greet", {}, b'"Mary"', "Empty content-type"),
        ("greet", {"content-type": "application/json"}, b"", "Empty body not allowed"),
        (
            "headers",
            {"content-type": "application/json"},
            b"null",
            "Expected body and content-type to be empty, but wasn't with content-type 'Some(\"application/json\")'",
        ),
    ],
)
async def test_input_is_checked_against_the_handler_content_type(
    quill: Quill, client: httpx.AsyncClient, handler: str, headers: dict[str, str], body: bytes, message: str
) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Greeter/{handler}", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == f"input validation error: {message}"


async def test_malformed_json_reaches_the_handler_which_fails_it(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 500
    assert response.headers["x-restate-error-source"] == "invocation"
    assert "x-restate-id" in response.headers


async def test_delay_errors(quill: Quill, client: httpx.AsyncClient) -> None:
    for delay in ("bogus", "10000", "-5s", ""):
        response = await client.post(f"{quill.ingress}/restate/send/Greeter/greet", params={"delay": delay}, json="x")
        assert response.status_code == 400, delay
        assert response.json()["message"].startswith("bad delay query parameter, must be a ISO8601 duration: ")
    on_call = await client.post(f"{quill.ingress}/restate/call/Greeter/greet?delay=1s", json="x")
    assert on_call.json()["message"] == (
        "cannot use the delay query parameter with calls. The delay is supported only with sends"
    )
    for delay in ("PT10S", "1m30s", "0s"):
        accepted = await client.post(f"{quill.ingress}/restate/send/Greeter/greet", params={"delay": delay}, json="x")
        assert accepted.status_code == 202
        assert accepted.json()["executionTime"].endswith("000000Z")


async def test_body_over_the_size_limit_is_413(quill: Quill, client: httpx.AsyncClient) -> None:
    body = b'"' + b"x" * (32 * 1024 * 1024) + b'"'
    response = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.text == "length limit exceeded"

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(33):
            yield b"x" * (1024 * 1024)

    streamed = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", content=chunked(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json() == {"code": 413, "message": "cannot read body: LengthLimitError", "source": "ingress"}


async def test_unsupported_method_is_405(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.put(f"{quill.ingress}/restate/call/Greeter/greet", json="x")
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "method not allowed", "source": "ingress"}


async def test_ingress_health_lists_services(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{quill.ingress}/restate/health")
    assert response.json() == {"services": ["Caller", "Counter", "Durable", "Greeter", "Signup", "Timers"]}
