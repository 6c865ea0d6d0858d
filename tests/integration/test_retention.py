"""Retained results expire: the sweeper purges them once their retention ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


@pytest.fixture
def short_retention(tmp_path: Path) -> Iterator[Quill]:
    env = {**QUILL_TEST_ENV, "QUILL_IDEMPOTENCY_RETENTION": "300ms", "QUILL_CLEANUP_INTERVAL": "100ms"}
    server = Quill(tmp_path / "data", env=env)
    yield server
    server.stop()


async def test_expired_results_are_purged_and_the_key_runs_again(
    short_retention: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    quill = short_retention
    await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    url = f"{quill.ingress}/restate/call/Greeter/counted"
    first = await client.post(url, json="expiring", headers={"idempotency-key": "e1"})
    invocation_id = first.headers["x-restate-id"]
    assert (await client.get(f"{quill.ingress}/restate/output/{invocation_id}")).status_code == 200
    # Polling the public API is the observable event here: the sweeper runs every 100 ms.
    for _ in range(100):
        if (await client.get(f"{quill.ingress}/restate/output/{invocation_id}")).status_code == 404:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the retained result was never purged")
    again = await client.post(url, json="expiring", headers={"idempotency-key": "e1"})
    assert again.json() == "Hello expiring #2"
