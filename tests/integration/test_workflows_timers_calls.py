"""Workflows and promises, durable sleeps, service-to-service calls, awakeables."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_workflow_run_waits_for_its_promise(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    base = f"{quill.ingress}/restate/call/Signup/w1"
    run = asyncio.create_task(client.post(f"{base}/run", json="ann@example.com"))
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "signup-run:w1", "total": 1})
    assert (await client.get(f"{base}/peek")).json() == "pending"
    assert (await client.post(f"{base}/confirm", json="XYZ")).status_code == 200
    response = await run
    assert response.json() == "ann@example.com confirmed with XYZ"
    assert (await client.get(f"{base}/peek")).json() == "XYZ"
    # A promise completes once.
    again = await client.post(f"{base}/confirm", json="other")
    assert again.status_code == 409


async def test_workflow_run_executes_once_per_key(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    base = f"{quill.ingress}/restate/call/Signup/w2"
    first = await client.post(f"{quill.ingress}/restate/send/Signup/w2/run", json="bob@example.com")
    assert first.json()["status"] == "Accepted"
    second = await client.post(f"{quill.ingress}/restate/send/Signup/w2/run", json="bob@example.com")
    assert second.json() == {"invocationId": first.json()["invocationId"], "status": "PreviouslyAccepted"}
    called = await client.post(f"{base}/run", json="bob@example.com")
    assert called.status_code == 409
    assert called.headers["x-restate-id"] == first.json()["invocationId"]
    await client.post(f"{base}/confirm", json="ok")
    runs = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "signup-run:w2"})
    assert runs.json() == {"signup-run:w2": 1}


async def test_sleep_completes_after_its_duration(quill: Quill, client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.post(f"{quill.ingress}/restate/call/Timers/sleep", json=300)
    assert response.json() == "slept 300ms"
    assert loop.time() - started >= 0.3


async def test_call_between_services_returns_the_callee_result(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Caller/call_counter", json="c1")
    assert response.json() == 5
    assert (await client.get(f"{quill.ingress}/restate/call/Counter/c1/get")).json() == 5


async def test_callee_terminal_error_reaches_the_caller(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Caller/call_failing")
    assert response.json() == "callee failed: 403 refused"


async def test_one_way_calls_including_delayed_ones_run(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    assert (await client.post(f"{quill.ingress}/restate/call/Caller/send_marks", json="m1")).json() == "sent"
    marked = await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "marked:m1-", "total": 2})
    assert marked.json() == 2
    counters = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "marked:m1-"})
    assert counters.json() == {"marked:m1-now": 1, "marked:m1-later": 1}


async def _published(client: httpx.AsyncClient, sdk_service: SdkService, label: str) -> str:
    return (await client.get(f"{sdk_service.url}/test/published", params={"key": label})).json()


async def test_awakeable_resolved_through_the_ingress(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    call = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Caller/wait_for_awakeable", json="a1"))
    awakeable = await _published(client, sdk_service, "a1")
    assert awakeable.startswith("sign_1")
    resolved = await client.post(f"{quill.ingress}/restate/awakeables/{awakeable}/resolve", json="hello")
    assert resolved.status_code == 202
    assert resolved.content == b""
    assert (await call).json() == "got hello"


async def test_awakeable_rejected_through_the_ingress(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    call = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Caller/wait_for_awakeable", json="a2"))
    awakeable = await _published(client, sdk_service, "a2")
    rejected = await client.post(f"{quill.ingress}/restate/a/{awakeable}/reject", content=b"bad thing")
    assert rejected.status_code == 202
    response = await call
    assert response.status_code == 500
    assert response.json()["message"] == "bad thing"


async def test_awakeable_completed_by_another_handler(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    call = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Caller/wait_for_awakeable", json="a3"))
    awakeable = await _published(client, sdk_service, "a3")
    await client.post(f"{quill.ingress}/restate/call/Caller/resolve_awakeable", json=awakeable)
    assert (await call).json() == "got from a handler"

    call = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Caller/wait_for_awakeable", json="a4"))
    awakeable = await _published(client, sdk_service, "a4")
    await client.post(f"{quill.ingress}/restate/call/Caller/reject_awakeable", json=awakeable)
    response = await call
    assert (response.status_code, response.json()["message"]) == (418, "nope")


@pytest.mark.parametrize("awakeable", ["nope", "sign_1abc", "prom_1" + "A" * 10])
async def test_bad_awakeable_ids_are_400(quill: Quill, client: httpx.AsyncClient, awakeable: str) -> None:
    response = await client.post(f"{quill.ingress}/restate/awakeables/{awakeable}/resolve", json="x")
    assert response.status_code == 400
    assert response.json()["code"] == 400
