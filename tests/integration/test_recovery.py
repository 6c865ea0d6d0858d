"""Crash recovery: SIGKILL quill with invocations in flight, restart it on the same data."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


async def test_sigkill_loses_nothing_and_repeats_no_journaled_step(
    tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    names = [f"crash-{i}" for i in range(10)]
    quill = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        registered = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201
        accepted = []
        for name in names:
            response = await client.post(f"{quill.ingress}/restate/send/Durable/process", json=name)
            assert response.status_code == 202
            accepted.append(response.json()["invocationId"])
        # Every invocation has journaled its first step and waits at the gate when quill dies.
        waiting = await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "entered:crash-", "total": 10})
        assert waiting.json() == 10
    finally:
        quill.kill()

    restarted = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        # The restarted server resumes all ten from their journals: each reaches the gate again.
        resumed = await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "entered:crash-", "total": 20})
        assert resumed.json() == 20
        await client.get(f"{sdk_service.url}/test/open", params={"name": "crash"})
        done = await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "done:crash-", "total": 10})
        assert done.json() == 10
        counts = (await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "count:crash-"})).json()
        dones = (await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "done:crash-"})).json()
        # The first step ran exactly once per invocation: its journaled result was replayed.
        assert counts == {f"count:{name}": 1 for name in names}
        assert dones == {f"done:{name}": 1 for name in names}
        assert len(set(accepted)) == 10
    finally:
        restarted.stop()
