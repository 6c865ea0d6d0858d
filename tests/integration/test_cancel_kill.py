"""Cancel (graceful, runs compensations) and kill (immediate) through the admin API."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_cancel_runs_compensation_and_the_caller_sees_409(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    call = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Caller/cancellable", json="c1"))
    invocation_id = (await client.get(f"{sdk_service.url}/test/published", params={"key": "c1"})).json()
    cancelled = await client.patch(f"{quill.admin}/invocations/{invocation_id}/cancel")
    assert cancelled.status_code == 202
    response = await call
    assert response.status_code == 409
    assert response.json()["message"] == "cancelled"
    assert response.headers["x-restate-id"] == invocation_id
    compensated = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "compensated:c1"})
    assert compensated.json() == {"compensated:c1": 1}


async def test_kill_releases_the_object_lock(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    held = await client.post(f"{quill.ingress}/restate/send/Counter/killed/hold", json="never-opened")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:killed", "total": 1})
    queued = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/killed/add", json=1))
    killed = await client.patch(f"{quill.admin}/invocations/{held.json()['invocationId']}/kill")
    assert killed.status_code == 200
    assert (await queued).json() == 1


async def _assert_forgotten(quill: Quill, client: httpx.AsyncClient, invocation_id: str) -> None:
    """What Restate answers about an invocation cancelled or killed before it started: nothing is left."""
    output = await client.get(f"{quill.ingress}/restate/output/{invocation_id}")
    assert (output.status_code, output.json()) == (
        404,
        {"code": 404, "message": "invocation not found", "source": "ingress"},
    )
    attach = await client.get(f"{quill.ingress}/restate/attach/{invocation_id}")
    assert (attach.status_code, attach.json()["source"], attach.headers["x-restate-id"]) == (
        404,
        "invocation",
        invocation_id,
    )
    again = await client.patch(f"{quill.admin}/invocations/{invocation_id}/cancel")
    assert again.status_code == 404


async def test_cancel_or_kill_of_an_inboxed_invocation_is_done_at_once_and_forgets_it(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    await client.post(f"{quill.ingress}/restate/send/Counter/inboxed/hold", json="inboxed-gate")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:inboxed", "total": 1})
    waiting = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/inboxed/add", json=7))
    queued = await client.post(f"{quill.ingress}/restate/send/Counter/inboxed/add", json=5)
    for operation in ("cancel", "kill"):
        invocation_id = queued.json()["invocationId"]
        answer = await client.patch(f"{quill.admin}/invocations/{invocation_id}/{operation}")
        assert answer.status_code == 200  # done, not signalled (that would be 202)
        await _assert_forgotten(quill, client, invocation_id)
        queued = await client.post(f"{quill.ingress}/restate/send/Counter/inboxed/add", json=5)
    waiting_id = queued.json()["invocationId"]
    # The older DELETE form answers 202, whatever it finds.
    assert (await client.delete(f"{quill.admin}/invocations/{waiting_id}?mode=kill")).status_code == 202
    await _assert_forgotten(quill, client, waiting_id)
    assert (await client.delete(f"{quill.admin}/invocations/{waiting_id}")).status_code == 202
    bad_mode = await client.delete(f"{quill.admin}/invocations/{waiting_id}?mode=bogus")
    assert bad_mode.status_code == 400 and "unknown variant `bogus`" in bad_mode.json()["message"]
    await client.get(f"{sdk_service.url}/test/open", params={"name": "inboxed-gate"})
    assert (await waiting).json() == 7  # the one not cancelled ran, alone
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/inboxed/add", json=0)).json() == 7


async def test_cancel_of_a_delayed_send_forgets_it_and_frees_its_idempotency_key(
    quill: Quill, client: httpx.AsyncClient
) -> None:
    send = f"{quill.ingress}/restate/send/Greeter/greet?delay=1h"
    headers = {"idempotency-key": "delayed-cancel"}
    sent = await client.post(send, json="later", headers=headers)
    invocation_id = sent.json()["invocationId"]
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/cancel")).status_code == 200
    await _assert_forgotten(quill, client, invocation_id)
    again = await client.post(send, json="later", headers=headers)
    assert (again.json()["invocationId"], again.json()["status"]) == (invocation_id, "Accepted")
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/kill")).status_code == 200
    await _assert_forgotten(quill, client, invocation_id)


async def test_unknown_and_malformed_ids(quill: Quill, client: httpx.AsyncClient) -> None:
    unknown = "inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae"
    assert (await client.patch(f"{quill.admin}/invocations/{unknown}/cancel")).status_code == 404
    assert (await client.patch(f"{quill.admin}/invocations/{unknown}/kill")).status_code == 404
    bad = await client.patch(f"{quill.admin}/invocations/not-an-id/kill")
    assert bad.status_code == 400
    assert bad.json()["message"] == "The request field 'invocation_id' is invalid. Reason: bad format"


async def test_completed_invocations_are_retained_then_purged_on_request(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    url = f"{quill.ingress}/restate/call/Greeter/counted"
    first = await client.post(url, json="purged", headers={"idempotency-key": "p1"})
    invocation_id = first.headers["x-restate-id"]
    # Completed: cancel and kill are conflicts, the result stays attachable.
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/cancel")).status_code == 409
    conflict = await client.patch(f"{quill.admin}/invocations/{invocation_id}/kill")
    assert conflict.json() == {
        "message": f"The invocation '{invocation_id}' was already completed.",
        "restate_code": None,
    }
    assert (await client.get(f"{quill.ingress}/restate/attach/{invocation_id}")).json() == "Hello purged #1"

    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/purge")).status_code == 200
    assert (await client.get(f"{quill.ingress}/restate/output/{invocation_id}")).status_code == 404
    # The idempotency key is free again: the same request runs anew under the same id.
    again = await client.post(url, json="purged", headers={"idempotency-key": "p1"})
    assert (again.json(), again.headers["x-restate-id"]) == ("Hello purged #2", invocation_id)
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/purge")).status_code == 200
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/purge")).status_code == 404


async def test_a_plain_call_stays_attachable_by_id(quill: Quill, client: httpx.AsyncClient) -> None:
    call = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="Zed")
    assert "idempotency-expires" not in call.headers
    attached = await client.get(f"{quill.ingress}/restate/attach/{call.headers['x-restate-id']}")
    assert attached.json() == "Hello Zed!"
    assert "idempotency-expires" in attached.headers


async def test_purge_of_a_running_invocation_is_409(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    sent = await client.post(f"{quill.ingress}/restate/send/Counter/purge-running/hold", json="purge-gate")
    invocation_id = sent.json()["invocationId"]
    response = await client.patch(f"{quill.admin}/invocations/{invocation_id}/purge")
    assert response.status_code == 409
    assert response.json()["message"] == f"The invocation '{invocation_id}' is not yet completed."
    await client.get(f"{sdk_service.url}/test/open", params={"name": "purge-gate"})


async def test_pause_and_resume(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    sent = await client.post(f"{quill.ingress}/restate/send/Counter/paused/hold", json="pause-gate")
    invocation_id = sent.json()["invocationId"]
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:paused", "total": 1})
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/pause")).status_code == 200
    assert (await client.get(f"{quill.admin}/invocations/{invocation_id}")).json()["status"] == "paused"
    await client.get(f"{sdk_service.url}/test/open", params={"name": "pause-gate"})
    # Paused: even with its gate open the invocation does not finish until resumed.
    assert (await client.get(f"{quill.ingress}/restate/output/{invocation_id}")).status_code == 470
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/resume")).status_code == 200
    assert (await client.get(f"{quill.ingress}/restate/attach/{invocation_id}")).json() == "released"
    assert (await client.patch(f"{quill.admin}/invocations/{invocation_id}/pause")).status_code == 409
    unknown = "inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae"
    assert (await client.patch(f"{quill.admin}/invocations/{unknown}/resume")).status_code == 404


async def test_resume_of_an_inboxed_invocation_is_425(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    await client.post(f"{quill.ingress}/restate/send/Counter/not-started/hold", json="not-started-gate")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:not-started", "total": 1})
    queued = await client.post(f"{quill.ingress}/restate/send/Counter/not-started/add", json=1)
    response = await client.patch(f"{quill.admin}/invocations/{queued.json()['invocationId']}/resume")
    assert response.status_code == 425
    await client.get(f"{sdk_service.url}/test/open", params={"name": "not-started-gate"})


async def test_batch_operations(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    held = [
        await client.post(f"{quill.ingress}/restate/send/Counter/batch-{i}/hold", json="batch-gate") for i in range(3)
    ]
    ids = [r.json()["invocationId"] for r in held]
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:batch-", "total": 3})
    unknown = "inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae"
    url = f"{quill.admin}/internal/invocations_batch_operations"
    killed = (await client.post(f"{url}/kill", json={"invocation_ids": [*ids, unknown]})).json()
    assert killed["succeeded"] == ids
    assert [f["invocation_id"] for f in killed["failed"]] == [unknown]
    purged = (await client.post(f"{url}/purge", json={"invocation_ids": ids})).json()
    assert (purged["succeeded"], purged["failed"]) == (ids, [])
    assert (await client.post(f"{url}/explode", json={"invocation_ids": ids})).status_code == 404
    malformed = await client.post(f"{url}/kill", content=b"{", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    await client.get(f"{sdk_service.url}/test/open", params={"name": "batch-gate"})


async def test_restart_as_new(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    first = await client.post(f"{quill.ingress}/restate/call/Greeter/counted", json="again")
    assert first.json() == "Hello again #1"
    old_id = first.headers["x-restate-id"]
    restarted = await client.patch(f"{quill.admin}/invocations/{old_id}/restart-as-new")
    assert restarted.status_code == 200
    new_id = restarted.json()["new_invocation_id"]
    assert new_id != old_id
    assert (await client.get(f"{quill.ingress}/restate/attach/{new_id}")).json() == "Hello again #2"
    assert (await client.get(f"{quill.ingress}/restate/output/{old_id}")).json() == "Hello again #1"
    assert (await client.patch(f"{quill.admin}/invocations/{old_id}/restart-as-new?from=3")).status_code == 400
    await client.post(f"{quill.ingress}/restate/send/Signup/restart-wf/run", json="w@example.com")
    await client.post(f"{quill.ingress}/restate/call/Signup/restart-wf/confirm", json="ok")
    workflow_id = (await client.get(f"{quill.ingress}/restate/workflow/Signup/restart-wf/attach")).headers[
        "x-restate-id"
    ]
    assert (await client.patch(f"{quill.admin}/invocations/{workflow_id}/restart-as-new")).status_code == 422


async def test_cancel_reaches_the_awaited_callee(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    sent = await client.post(f"{quill.ingress}/restate/send/Caller/call_cancellable", json="child")
    caller_id = sent.json()["invocationId"]
    callee_id = (await client.get(f"{sdk_service.url}/test/published", params={"key": "child"})).json()
    assert (await client.patch(f"{quill.admin}/invocations/{caller_id}/cancel")).status_code == 202
    # The callee is cancelled too: its compensation runs, and both end with 409 "cancelled".
    assert (
        await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "compensated:child", "total": 1})
    ).json() == 1
    for invocation_id in (callee_id, caller_id):
        result = await client.get(f"{quill.ingress}/restate/attach/{invocation_id}")
        assert (result.status_code, result.json()["message"]) == (409, "cancelled")
