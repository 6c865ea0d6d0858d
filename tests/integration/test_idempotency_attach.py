"""Idempotency keys, attach / output / lookup, from the ingress and from handlers."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest

from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_a_repeated_idempotent_call_runs_once_and_returns_the_same_response(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    url = f"{quill.ingress}/restate/call/Greeter/counted"
    first = await client.post(url, json="idem", headers={"idempotency-key": "k1"})
    second = await client.post(url, json="idem", headers={"idempotency-key": "k1"})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == "Hello idem #1"
    assert first.headers["x-restate-id"] == second.headers["x-restate-id"]
    expires = datetime.fromisoformat(second.headers["idempotency-expires"].replace("Z", "+00:00"))
    assert (expires - datetime.now(expires.tzinfo)).total_seconds() > 80_000  # default retention: 1 day
    ran = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "counted:idem"})
    assert ran.json() == {"counted:idem": 1}
    other_key = await client.post(url, json="idem", headers={"idempotency-key": "k2"})
    assert other_key.headers["x-restate-id"] != first.headers["x-restate-id"]


async def test_a_repeated_failure_is_returned_too(quill: Quill, client: httpx.AsyncClient) -> None:
    url = f"{quill.ingress}/restate/call/Greeter/fail"
    first = await client.post(url, json="x", headers={"idempotency-key": "f1"})
    second = await client.post(url, json="x", headers={"idempotency-key": "f1"})
    assert first.status_code == second.status_code == 409
    assert first.json() == second.json()


async def test_a_repeat_while_running_waits_for_the_first(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    url = f"{quill.ingress}/restate/call/Counter/idem-hold/hold"
    headers = {"idempotency-key": "h1"}
    first = asyncio.create_task(client.post(url, json="idem-gate", headers=headers))
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:idem-hold", "total": 1})
    second = asyncio.create_task(client.post(url, json="idem-gate", headers=headers))
    sent = await client.post(url.replace("/call/", "/send/"), json="idem-gate", headers=headers)
    assert sent.json()["status"] == "PreviouslyAccepted"
    await client.get(f"{sdk_service.url}/test/open", params={"name": "idem-gate"})
    assert (await first).json() == (await second).json() == "released"
    holds = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "holding:idem-hold"})
    assert holds.json() == {"holding:idem-hold": 1}


async def test_idempotency_key_is_scoped_by_target(quill: Quill, client: httpx.AsyncClient) -> None:
    headers = {"idempotency-key": "shared"}
    a = await client.post(f"{quill.ingress}/restate/call/Counter/scope-a/add", json=1, headers=headers)
    b = await client.post(f"{quill.ingress}/restate/call/Counter/scope-b/add", json=1, headers=headers)
    assert a.headers["x-restate-id"] != b.headers["x-restate-id"]
    assert a.json() == b.json() == 1


async def test_idempotency_key_on_a_workflow_run_is_rejected(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{quill.ingress}/restate/call/Signup/wk/run", json="x", headers={"idempotency-key": "nope"}
    )
    assert response.status_code == 400


async def test_attach_output_and_lookup(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    ingress = quill.ingress
    headers = {"idempotency-key": "out-1"}
    sent = await client.post(f"{ingress}/restate/send/Counter/out/hold", json="out-gate", headers=headers)
    invocation_id = sent.json()["invocationId"]
    target = {
        "target": "idempotentInvocation",
        "service": "Counter",
        "key": "out",
        "handler": "hold",
        "idempotencyKey": "out-1",
    }
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:out", "total": 1})

    looked_up = await client.post(f"{ingress}/restate/lookup", json=target)
    assert looked_up.json() == {"invocationId": invocation_id}
    not_ready = await client.get(f"{ingress}/restate/output/{invocation_id}")
    assert not_ready.status_code == 470
    attached = asyncio.create_task(client.post(f"{ingress}/restate/attach", json=target))
    await client.get(f"{sdk_service.url}/test/open", params={"name": "out-gate"})
    response = await attached
    assert response.json() == "released"
    assert response.headers["x-restate-id"] == invocation_id

    for url in (
        f"{ingress}/restate/output/{invocation_id}",
        f"{ingress}/restate/attach/{invocation_id}",
        f"{ingress}/restate/invocation/{invocation_id}/output",
        f"{ingress}/restate/invocation/Counter/out/hold/out-1/output",
    ):
        done = await client.get(url)
        assert (done.status_code, done.json()) == (200, "released"), url
        assert "idempotency-expires" in done.headers
    output = await client.post(f"{ingress}/restate/output", json=target)
    assert output.json() == "released"


async def test_workflow_output_by_target(quill: Quill, client: httpx.AsyncClient) -> None:
    ingress = quill.ingress
    sent = await client.post(f"{ingress}/restate/send/Signup/wo/run", json="w@example.com")
    await client.post(f"{ingress}/restate/call/Signup/wo/confirm", json="C0DE")
    attached = await client.get(f"{ingress}/restate/workflow/Signup/wo/attach")
    assert attached.json() == "w@example.com confirmed with C0DE"
    target = {"target": "workflow", "workflowName": "Signup", "workflowKey": "wo"}
    assert (await client.post(f"{ingress}/restate/output", json=target)).json() == attached.json()
    assert (await client.post(f"{ingress}/restate/lookup", json=target)).json() == {
        "invocationId": sent.json()["invocationId"]
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/restate/output/inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae", None, 404),
        ("GET", "/restate/output/garbage", None, 400),
        ("POST", "/restate/lookup", b"{", 400),
        ("POST", "/restate/lookup", b'{"target":"bogus"}', 400),
        ("PUT", "/restate/attach", b"{}", 405),
        ("POST", "/restate/output/inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae", None, 405),
        ("POST", "/restate/lookup", b'{"target":"workflow","workflowName":"S","workflowKey":"k","scope":"a b"}', 400),
    ],
)
async def test_bad_queries(
    quill: Quill, client: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = await client.request(method, f"{quill.ingress}{path}", content=body)
    assert response.status_code == status
    assert response.json()["code"] == status


async def test_lookup_answers_the_derived_id_even_for_unknown_targets(quill: Quill, client: httpx.AsyncClient) -> None:
    target = {"target": "workflow", "workflowName": "Signup", "workflowKey": "never-ran"}
    first = await client.post(f"{quill.ingress}/restate/lookup", json=target)
    second = await client.post(f"{quill.ingress}/restate/lookup", json=target)
    assert first.status_code == 200
    assert first.json() == second.json()
    output = await client.post(f"{quill.ingress}/restate/output", json=target)
    assert (output.status_code, output.json()["message"]) == (404, "invocation not found")
    attach = await client.post(f"{quill.ingress}/restate/attach", json=target)
    assert (attach.status_code, attach.json()["source"]) == (404, "invocation")
    assert attach.headers["x-restate-id"] == first.json()["invocationId"]


async def test_handlers_attach_and_call_idempotently(quill: Quill, client: httpx.AsyncClient) -> None:
    call = f"{quill.ingress}/restate/call/Caller"
    assert (await client.post(f"{call}/send_then_attach", json="ha")).json() == 7
    assert (await client.post(f"{call}/call_twice_idempotently", json="hi")).json() == [1, 1]
    assert (await client.get(f"{quill.ingress}/restate/call/Counter/hi/get")).json() == 1
