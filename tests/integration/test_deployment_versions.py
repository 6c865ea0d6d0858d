"""A new deployment of a service takes new invocations; running ones finish on the deployment
they started on (their pinned deployment), as in Restate."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


async def test_running_invocations_stay_on_their_deployment(tmp_path: Path, client: httpx.AsyncClient) -> None:
    quill = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    old, new = SdkService(), SdkService()
    try:
        first = await client.post(f"{quill.admin}/deployments", json={"uri": old.url, "use_http_11": True})
        assert first.status_code == 201
        sent = await client.post(f"{quill.ingress}/restate/send/Timers/sleep", json=1000)
        invocation_id = sent.json()["invocationId"]
        # It started on the old deployment (its first step ran there) and now sleeps, suspended.
        await client.get(f"{old.url}/test/wait", params={"prefix": f"sleeping:{invocation_id}", "total": 1})

        second = await client.post(f"{quill.admin}/deployments", json={"uri": new.url, "use_http_11": True})
        assert second.status_code == 201
        services = {s["name"]: s for s in (await client.get(f"{quill.admin}/services")).json()["services"]}
        assert services["Timers"]["deployment_id"] == second.json()["id"]
        assert services["Timers"]["revision"] == 2

        fresh = await client.post(f"{quill.ingress}/restate/call/Timers/sleep", json=1)
        fresh_id = fresh.headers["x-restate-id"]
        assert (await client.get(f"{new.url}/test/counters", params={"prefix": f"woke:{fresh_id}"})).json() == {
            f"woke:{fresh_id}": 1
        }
        # The sleeping one wakes up on the deployment it is pinned to.
        assert (
            await client.get(f"{old.url}/test/wait", params={"prefix": f"woke:{invocation_id}", "total": 1})
        ).json() == 1
        assert (await client.get(f"{new.url}/test/counters", params={"prefix": f"woke:{invocation_id}"})).json() == {}
    finally:
        old.stop()
        new.stop()
        quill.stop()
