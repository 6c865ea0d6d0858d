"""Sleeps, inboxes, promises and awakeables survive a SIGKILL of quill."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


class Restartable:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.quill = Quill(data_dir, env=QUILL_TEST_ENV)

    def crash_and_restart(self) -> Quill:
        self.quill.kill()
        self.quill = Quill(self.data_dir, env=QUILL_TEST_ENV)
        return self.quill


@pytest.fixture
async def server(tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient) -> AsyncIterator[Restartable]:
    restartable = Restartable(tmp_path / "data")
    response = await client.post(
        f"{restartable.quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True}
    )
    assert response.status_code == 201
    yield restartable
    restartable.quill.stop()


async def _wait(client: httpx.AsyncClient, sdk: SdkService, prefix: str, total: int) -> int:
    return (await client.get(f"{sdk.url}/test/wait", params={"prefix": prefix, "total": total})).json()


async def test_a_sleep_fires_once_after_a_crash(
    server: Restartable, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    sent = await client.post(f"{server.quill.ingress}/restate/send/Timers/sleep", json=1500)
    invocation_id = sent.json()["invocationId"]
    await _wait(client, sdk_service, f"sleeping:{invocation_id}", 1)
    server.crash_and_restart()
    assert await _wait(client, sdk_service, f"woke:{invocation_id}", 1) == 1
    counters = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": f"woke:{invocation_id}"})
    assert counters.json() == {f"woke:{invocation_id}": 1}


async def test_an_object_inbox_survives_a_crash(
    server: Restartable, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    ingress = server.quill.ingress
    assert (await client.post(f"{ingress}/restate/send/Counter/crash-inbox/hold", json="crash-gate")).status_code == 202
    await _wait(client, sdk_service, "holding:crash-inbox", 1)
    for _ in range(3):
        assert (await client.post(f"{ingress}/restate/send/Counter/crash-inbox/add", json=1)).status_code == 202
    quill = server.crash_and_restart()
    await _wait(client, sdk_service, "holding:crash-inbox", 2)  # the holder resumed
    await client.get(f"{sdk_service.url}/test/open", params={"name": "crash-gate"})
    # Exclusive: this call runs after the holder and the three queued adds.
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/crash-inbox/add", json=0)).json() == 3


async def test_a_workflow_promise_survives_a_crash(
    server: Restartable, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    sent = await client.post(f"{server.quill.ingress}/restate/send/Signup/crash-wf/run", json="c@example.com")
    assert sent.status_code == 202
    await _wait(client, sdk_service, "signup-run:crash-wf", 1)
    quill = server.crash_and_restart()
    assert (await client.post(f"{quill.ingress}/restate/call/Signup/crash-wf/confirm", json="K1")).status_code == 200
    assert await _wait(client, sdk_service, "signup-done:crash-wf:K1", 1) == 1


async def test_an_awakeable_survives_a_crash(
    server: Restartable, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    sent = await client.post(f"{server.quill.ingress}/restate/send/Caller/wait_for_awakeable", json="crash-aw")
    assert sent.status_code == 202
    awakeable = (await client.get(f"{sdk_service.url}/test/published", params={"key": "crash-aw"})).json()
    quill = server.crash_and_restart()
    resolved = await client.post(f"{quill.ingress}/restate/awakeables/{awakeable}/resolve", json="late")
    assert resolved.status_code == 202
    assert await _wait(client, sdk_service, "awakened:crash-aw:late", 1) == 1


async def test_delayed_sends_and_retained_results_survive_a_crash(
    server: Restartable, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    ingress = server.quill.ingress
    delayed = await client.post(f"{ingress}/restate/send/Caller/mark?delay=1s", json="crash-delayed")
    assert delayed.status_code == 202
    first = await client.post(
        f"{ingress}/restate/call/Greeter/counted", json="crash-idem", headers={"idempotency-key": "ck"}
    )
    await client.post(f"{ingress}/restate/send/Signup/crash-out/run", json="o@example.com")
    await client.post(f"{ingress}/restate/call/Signup/crash-out/confirm", json="K2")
    workflow_result = (await client.get(f"{ingress}/restate/workflow/Signup/crash-out/attach")).json()

    quill = server.crash_and_restart()
    assert await _wait(client, sdk_service, "marked:crash-delayed", 1) == 1
    again = await client.post(
        f"{quill.ingress}/restate/call/Greeter/counted", json="crash-idem", headers={"idempotency-key": "ck"}
    )
    assert (again.json(), again.headers["x-restate-id"]) == (first.json(), first.headers["x-restate-id"])
    ran = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "counted:crash-idem"})
    assert ran.json() == {"counted:crash-idem": 1}
    output = await client.get(f"{quill.ingress}/restate/workflow/Signup/crash-out/output")
    assert output.json() == workflow_result == "o@example.com confirmed with K2"
