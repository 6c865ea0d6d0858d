"""A service written with the TypeScript SDK (@restatedev/restate-sdk) runs on quill unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import Quill, TsService


@pytest.fixture(scope="module")
def ts_service() -> Iterator[TsService]:
    service = TsService()
    yield service
    service.stop()


@pytest.fixture
async def ts_quill(quill: Quill, ts_service: TsService, client: httpx.AsyncClient) -> Quill:
    response = await client.post(f"{quill.admin}/deployments", json={"uri": ts_service.url, "use_http_11": True})
    assert response.status_code == 201, response.text
    assert {s["name"] for s in response.json()["services"]} == {"TsCounter", "TsGreeter"}
    return quill


async def test_virtual_object_counter(ts_quill: Quill, client: httpx.AsyncClient) -> None:
    base = f"{ts_quill.ingress}/restate/call/TsCounter/k1"
    assert (await client.post(f"{base}/add", json=2)).json() == 2
    assert (await client.post(f"{base}/add", json=3)).json() == 5
    assert (await client.get(f"{base}/get")).json() == 5


async def test_service_to_object_call_run_and_sleep(ts_quill: Quill, client: httpx.AsyncClient) -> None:
    ingress = f"{ts_quill.ingress}/restate/call/TsGreeter"
    assert (await client.post(f"{ingress}/addViaCounter", json="k2")).json() == 10
    assert (await client.get(f"{ts_quill.ingress}/restate/call/TsCounter/k2/get")).json() == 10
    assert (await client.post(f"{ingress}/greet", json="ts")).json() == "Hello ts #1"
    assert (await client.post(f"{ingress}/nap", json=100)).json() == "rested"
