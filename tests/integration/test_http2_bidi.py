"""HTTP/2 deployments: bidirectional streaming with the Python SDK (hypercorn, h2c) and the
TypeScript SDK's restate.serve(), registered without use_http_11."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService, TsService

# A short inactivity timeout makes the suspend-and-resume path quick to exercise.
BIDI_ENV = {**QUILL_TEST_ENV, "QUILL_INACTIVITY_TIMEOUT": "700ms"}


@pytest.fixture(scope="module")
def h2_quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quill]:
    server = Quill(tmp_path_factory.mktemp("quill-h2") / "data", env=BIDI_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ts_h2_service() -> Iterator[TsService]:
    service = TsService(http2=True)
    yield service
    service.stop()


@pytest.fixture
async def bidi(h2_quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> Quill:
    deployments = (await client.get(f"{h2_quill.admin}/deployments")).json()["deployments"]
    if not any(d["uri"] == sdk_service.url + "/" for d in deployments):
        response = await client.post(f"{h2_quill.admin}/deployments", json={"uri": sdk_service.url})
        assert response.status_code == 201, response.text
    return h2_quill


async def test_registration_without_http11_uses_http2_and_bidi(
    bidi: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    listed = (await client.get(f"{bidi.admin}/deployments")).json()["deployments"]
    deployment = next(d for d in listed if d["uri"] == sdk_service.url + "/")
    assert (deployment["protocol_type"], deployment["http_version"]) == ("BidiStream", "HTTP/2.0")


async def test_runs_continue_on_the_open_stream(
    bidi: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{bidi.ingress}/restate/call/Greeter/two_steps", json="bidi-steps")
    assert response.json() == 3
    # Both run results came back on the stream: one attempt, no suspension round trips.
    attempts = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "attempt:bidi-steps"})
    assert attempts.json() == {"attempt:bidi-steps": 1}


async def test_state_calls_and_sleep_over_http2(bidi: Quill, client: httpx.AsyncClient) -> None:
    call = f"{bidi.ingress}/restate/call"
    assert (await client.post(f"{call}/Counter/h2/add", json=2)).json() == 2
    assert (await client.post(f"{call}/Counter/h2/add", json=3)).json() == 5
    assert (await client.post(f"{call}/Caller/call_counter", json="h2-call")).json() == 5
    assert (await client.post(f"{call}/Timers/sleep", json=100)).json() == "slept 100ms"


async def test_awakeable_resolved_after_the_sdk_suspended(
    bidi: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    call = asyncio.create_task(client.post(f"{bidi.ingress}/restate/call/Caller/wait_for_awakeable", json="h2-aw"))
    awakeable = (await client.get(f"{sdk_service.url}/test/published", params={"key": "h2-aw"})).json()
    resolved = await client.post(f"{bidi.ingress}/restate/awakeables/{awakeable}/resolve", json="late")
    assert resolved.status_code == 202
    assert (await call).json() == "got late"


async def test_a_long_sleep_suspends_and_resumes(bidi: Quill, client: httpx.AsyncClient) -> None:
    # Longer than the inactivity timeout: quill closes its side, the SDK suspends, the timer resumes it.
    assert (await client.post(f"{bidi.ingress}/restate/call/Timers/sleep", json=1200)).json() == "slept 1200ms"


async def test_operator_inactivity_timeout_makes_the_sdk_suspend(
    bidi: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    patched = await client.patch(f"{bidi.admin}/services/Greeter", json={"inactivity_timeout": "100ms"})
    assert patched.json()["inactivity_timeout"] == "100ms"
    try:
        response = await client.post(f"{bidi.ingress}/restate/call/Greeter/nap", json=500)
        assert response.json() == "rested"
        invocation_id = response.headers["x-restate-id"]
        attempts = await client.get(
            f"{sdk_service.url}/test/counters", params={"prefix": f"nap-attempt:{invocation_id}"}
        )
        # Closed after 100 ms of silence: the SDK suspended, the timer resumed it in a new attempt.
        assert attempts.json() == {f"nap-attempt:{invocation_id}": 2}
    finally:
        await client.patch(f"{bidi.admin}/services/Greeter", json={"inactivity_timeout": "700ms"})


async def test_typescript_restate_serve(h2_quill: Quill, ts_h2_service: TsService, client: httpx.AsyncClient) -> None:
    registered = await client.post(f"{h2_quill.admin}/deployments", json={"uri": ts_h2_service.url})
    assert registered.status_code == 201, registered.text
    call = f"{h2_quill.ingress}/restate/call"
    assert (await client.post(f"{call}/TsCounter/h2/add", json=4)).json() == 4
    assert (await client.post(f"{call}/TsGreeter/addViaCounter", json="h2")).json() == 14
    assert (await client.post(f"{call}/TsGreeter/greet", json="h2")).json() == "Hello h2 #1"
    assert (await client.post(f"{call}/TsGreeter/nap", json=50)).json() == "rested"


async def test_an_http11_only_deployment_needs_use_http_11(h2_quill: Quill, client: httpx.AsyncClient) -> None:
    http11_only = TsService()
    try:
        response = await client.post(f"{h2_quill.admin}/deployments", json={"uri": http11_only.url})
    finally:
        http11_only.stop()
    assert response.status_code == 400
    assert "possibly supports only HTTP1.1" in response.json()["message"]


@pytest.fixture
async def crashable(tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient) -> AsyncIterator[list[Quill]]:
    servers = [Quill(tmp_path / "data", env=BIDI_ENV)]
    assert (await client.post(f"{servers[0].admin}/deployments", json={"uri": sdk_service.url})).status_code == 201
    yield servers
    servers[-1].stop()


async def test_sigkill_in_the_middle_of_streams(
    crashable: list[Quill], sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    quill = crashable[0]
    names = [f"bidicrash-{i}" for i in range(3)]
    for name in names:
        assert (await client.post(f"{quill.ingress}/restate/send/Durable/process", json=name)).status_code == 202
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "entered:bidicrash-", "total": 3})
    quill.kill()
    crashable.append(Quill(quill.data_dir, env=BIDI_ENV))
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "entered:bidicrash-", "total": 6})
    await client.get(f"{sdk_service.url}/test/open", params={"name": "bidicrash"})
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "done:bidicrash-", "total": 3})
    counts = (await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "count:bidicrash-"})).json()
    assert counts == {f"count:{name}": 1 for name in names}
