"""What happens when an invocation's retries run out: pause (the default) or kill, and resuming a
paused invocation with a fresh retry budget, one at a time or in a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


def _quill(path: Path, sdk_service: SdkService, on_max_attempts: str) -> Iterator[Quill]:
    env = {
        **QUILL_TEST_ENV,
        "QUILL_RETRY_POLICY__MAX_ATTEMPTS": "2",
        "QUILL_RETRY_POLICY__ON_MAX_ATTEMPTS": on_max_attempts,
    }
    server = Quill(path, env=env)
    try:
        response = httpx.post(f"{server.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert response.status_code == 201, response.text
        yield server
    finally:
        server.stop()


@pytest.fixture
def killing(tmp_path: Path, sdk_service: SdkService) -> Iterator[Quill]:
    yield from _quill(tmp_path / "data", sdk_service, "kill")


@pytest.fixture
def pausing(tmp_path: Path, sdk_service: SdkService) -> Iterator[Quill]:
    yield from _quill(tmp_path / "data", sdk_service, "pause")


async def test_on_max_attempts_kill_kills_the_invocation(killing: Quill, sdk_service: SdkService) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        # Would succeed at its third attempt; the policy allows two.
        response = await client.post(f"{killing.ingress}/restate/call/Greeter/flaky", json="killed-after-two")
        # As Restate 1.7.12 answers (observed, on-max-attempts = "kill"): the last failure, not "killed".
        assert response.status_code == 500, response.text
        assert response.json()["message"] == "ValueError('attempt 2 fails')"
        counters = await client.get(f"{sdk_service.url}/test/counters", params={"prefix": "flaky:killed-after-two"})
        assert counters.json() == {"flaky:killed-after-two": 2}


async def _paused(client: httpx.AsyncClient, quill: Quill, invocation_id: str) -> None:
    # Retries exhausting is internal to quill: nothing to await but its status (bounded).
    deadline = asyncio.get_running_loop().time() + 20
    while (await client.get(f"{quill.admin}/invocations/{invocation_id}")).json()["status"] != "paused":
        assert asyncio.get_running_loop().time() < deadline, "the invocation never paused"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_resume_gives_a_paused_invocation_a_fresh_retry_budget(
    pausing: Quill, sdk_service: SdkService, batch: bool
) -> None:
    name = f"resumed-{'batch' if batch else 'single'}"
    async with httpx.AsyncClient(timeout=30) as client:
        sent = await client.post(f"{pausing.ingress}/restate/send/Greeter/stubborn", json=name)
        invocation_id = sent.json()["invocationId"]
        await _paused(client, pausing, invocation_id)
        if batch:
            url = f"{pausing.admin}/internal/invocations_batch_operations/resume"
            answer = await client.post(url, json={"invocation_ids": [invocation_id]})
            assert answer.json() == {"succeeded": [invocation_id], "failed": []}
        else:
            assert (await client.patch(f"{pausing.admin}/invocations/{invocation_id}/resume")).status_code == 200
        # Fails once more (attempt 3), then succeeds (attempt 4): two attempts after the resume.
        result = await client.get(f"{pausing.ingress}/restate/attach/{invocation_id}")
        assert result.status_code == 200, result.text
        assert result.json() == f"{name} after 4 attempts"
