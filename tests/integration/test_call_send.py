"""Call and send through quill's ingress against a real restate-sdk service."""

from __future__ import annotations

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


async def test_delayed_send_reports_its_execution_time(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/send/Greeter/greet?delay=1s", json="Later")
    assert response.status_code == 202
    assert response.json()["executionTime"].endswith("Z")
    bad = await client.post(f"{quill.ingress}/restate/send/Greeter/greet?delay=soon", json="x")
    assert bad.status_code == 400
    on_call = await client.post(f"{quill.ingress}/restate/call/Greeter/greet?delay=1s", json="x")
    assert on_call.status_code == 400


async def test_ctx_run_journals_its_result_once(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
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


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/restate/call/Nope/greet", 404, "Service 'Nope' not found"),
        ("/restate/call/Greeter/nope", 404, "Service handler 'Greeter/nope' not found"),
        ("/restate/call/Greeter/k1/greet", 400, "takes no key"),
        ("/restate/call/Greeter", 400, "Bad path"),
        ("/restate/bogus/Greeter/greet", 404, "Bad path"),
    ],
)
async def test_bad_targets_get_restate_errors(
    quill: Quill, client: httpx.AsyncClient, path: str, status: int, message: str
) -> None:
    response = await client.post(f"{quill.ingress}{path}", json="x")
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status
    assert message in body["message"]
    assert response.headers["x-restate-error-source"] == "ingress"


async def test_unsupported_method_is_405(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.put(f"{quill.ingress}/restate/call/Greeter/greet", json="x")
    assert response.status_code == 405
    assert response.json()["code"] == 405


async def test_ingress_health_lists_services(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{quill.ingress}/restate/health")
    assert response.json() == {"services": ["Caller", "Counter", "Durable", "Greeter", "Signup", "Timers"]}
