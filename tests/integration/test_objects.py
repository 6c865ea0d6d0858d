"""Virtual objects: per-key exclusive lock with a FIFO inbox, shared handlers, state commands."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_state_survives_across_invocations(quill: Quill, client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/s1/add", json=3)).json() == 3
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/s1/add", json=4)).json() == 7
    assert (await client.get(f"{quill.ingress}/restate/call/Counter/s1/get")).json() == 7
    # Keys are independent.
    assert (await client.get(f"{quill.ingress}/restate/call/Counter/s2/get")).json() == 0


async def test_state_keys_clear_and_clear_all(quill: Quill, client: httpx.AsyncClient) -> None:
    base = f"{quill.ingress}/restate/call/Counter/s3"
    await client.post(f"{base}/add", json=1)
    await client.post(f"{base}/tag", json="blue")
    assert (await client.post(f"{base}/describe")).json() == {"keys": ["label", "value"], "value": 1}
    await client.post(f"{base}/clear", json="label")
    assert (await client.post(f"{base}/describe")).json() == {"keys": ["value"], "value": 1}
    await client.post(f"{base}/clear", json="*")
    assert (await client.post(f"{base}/describe")).json() == {"keys": [], "value": None}


async def test_exclusive_handlers_of_one_key_run_one_at_a_time_in_order(
    quill: Quill, client: httpx.AsyncClient
) -> None:
    items = [f"item-{i}" for i in range(5)]
    for item in items:
        accepted = await client.post(f"{quill.ingress}/restate/send/Counter/order/append", json=item)
        assert accepted.status_code == 202
    # A call queues behind the sends: when it returns, every earlier append has run, none lost.
    result = await client.post(f"{quill.ingress}/restate/call/Counter/order/append", json="last")
    assert result.json() == [*items, "last"]


async def test_a_held_key_blocks_only_its_own_exclusive_handlers(
    quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    held = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/busy/hold", json="busy-gate"))
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:busy", "total": 1})
    queued = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/busy/add", json=1))
    # Another key and a shared handler of the held key both answer while the lock is held.
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/free/add", json=2)).json() == 2
    assert (await client.get(f"{quill.ingress}/restate/call/Counter/busy/get")).json() == 0
    assert not queued.done()
    await client.get(f"{sdk_service.url}/test/open", params={"name": "busy-gate"})
    assert (await held).json() == "released"
    assert (await queued).json() == 1


async def test_object_paths_need_a_key(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.ingress}/restate/call/Counter/add", json=1)
    assert response.status_code == 400
    assert response.json()["message"].startswith("bad path, expected /restate/call/:service/:handler")
    legacy = await client.post(f"{quill.ingress}/Counter/legacy/add", json=2)
    assert legacy.json() == 2
    legacy_send = await client.post(f"{quill.ingress}/Counter/legacy/add/send", json=2)
    assert legacy_send.status_code == 202
