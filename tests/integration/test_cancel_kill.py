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


async def test_cancel_of_an_inboxed_invocation_completes_it_without_running(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    await client.post(f"{quill.ingress}/restate/send/Counter/inboxed/hold", json="inboxed-gate")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:inboxed", "total": 1})
    queued = await client.post(f"{quill.ingress}/restate/send/Counter/inboxed/add", json=5)
    cancelled = await client.patch(f"{quill.admin}/invocations/{queued.json()['invocationId']}/cancel")
    assert cancelled.status_code == 202
    await client.get(f"{sdk_service.url}/test/open", params={"name": "inboxed-gate"})
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/inboxed/add", json=0)).json() == 0


async def test_unknown_and_malformed_ids(quill: Quill, client: httpx.AsyncClient) -> None:
    unknown = "inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae"
    assert (await client.patch(f"{quill.admin}/invocations/{unknown}/cancel")).status_code == 404
    assert (await client.patch(f"{quill.admin}/invocations/{unknown}/kill")).status_code == 404
    bad = await client.patch(f"{quill.admin}/invocations/not-an-id/kill")
    assert bad.status_code == 400
    assert "invocation id" in bad.json()["message"]
