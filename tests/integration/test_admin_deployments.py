"""Deployments and service settings changed by an operator, and that they survive a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


@pytest.fixture
def second_service() -> Iterator[SdkService]:
    service = SdkService()
    yield service
    service.stop()


async def test_patch_service_and_delete_deployment_survive_restart(
    tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    data = tmp_path / "data"
    server = Quill(data, env=QUILL_TEST_ENV)
    try:
        registered = await client.post(
            f"{server.admin}/v4/deployments", json={"uri": sdk_service.url, "use_http_11": True}
        )
        deployment_id = registered.json()["id"]
        patched = await client.patch(
            f"{server.admin}/services/Greeter", json={"public": False, "idempotency_retention": "PT1S"}
        )
        assert patched.status_code == 200
        server.stop()
        server = Quill(data, env=QUILL_TEST_ENV)

        greeter = (await client.get(f"{server.admin}/services/Greeter")).json()
        assert (greeter["public"], greeter["idempotency_retention"]) == (False, "1s")
        refused = await client.post(f"{server.ingress}/restate/call/Greeter/greet", json="x")
        assert (refused.status_code, refused.json()["message"]) == (400, "the invoked service is not public")

        not_forced = await client.delete(f"{server.admin}/deployments/{deployment_id}")
        assert not_forced.status_code == 501
        assert set(not_forced.json()) == {"message", "restate_code"}
        assert (await client.delete(f"{server.admin}/deployments/dp_nope?force=true")).status_code == 404
        removed = await client.delete(f"{server.admin}/v4/deployments/{deployment_id}?force=true")
        assert removed.status_code == 202
        assert (await client.get(f"{server.admin}/services")).json() == {"services": []}
        assert (await client.get(f"{server.admin}/deployments/{deployment_id}")).status_code == 404
        gone = await client.post(f"{server.ingress}/restate/call/Greeter/greet", json="x")
        assert gone.status_code == 404

        server.stop()
        server = Quill(data, env=QUILL_TEST_ENV)
        assert (await client.get(f"{server.admin}/deployments")).json() == {"deployments": []}
        assert (await client.get(f"{server.admin}/services")).json() == {"services": []}
        # Registering again starts from the manifest: the removed service's overrides went with it.
        again = await client.post(f"{server.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert again.status_code == 201
        assert (await client.get(f"{server.admin}/services/Greeter")).json()["public"] is True
    finally:
        server.stop()


async def test_patch_deployment_moves_it_to_a_new_uri(
    quill: Quill, sdk_service: SdkService, second_service: SdkService, client: httpx.AsyncClient
) -> None:
    registered = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    deployment_id = registered.json()["id"]
    dry = await client.patch(
        f"{quill.admin}/deployments/{deployment_id}", json={"uri": second_service.url, "dry_run": True}
    )
    assert dry.status_code == 200, dry.text
    assert (await client.get(f"{quill.admin}/deployments/{deployment_id}")).json()["uri"] == sdk_service.url + "/"

    updated = await client.patch(
        f"{quill.admin}/v4/deployments/{deployment_id}",
        json={"uri": second_service.url, "additional_headers": {"x-quill-test": "moved"}},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["id"], body["uri"], body["additional_headers"]) == (
        deployment_id, second_service.url + "/", {"x-quill-test": "moved"}
    )  # fmt: skip
    assert {s["name"] for s in body["services"]} >= {"Greeter", "Counter"}
    # Invocations now go to the new address.
    called = await client.post(f"{quill.ingress}/restate/call/Greeter/counted", json="moved-deployment")
    assert called.json() == "Hello moved-deployment #1"
    counters = {"prefix": "counted:moved-deployment"}
    assert (await client.get(f"{second_service.url}/test/counters", params=counters)).json() == {
        "counted:moved-deployment": 1
    }
    assert (await client.get(f"{sdk_service.url}/test/counters", params=counters)).json() == {}
    listed = (await client.get(f"{quill.admin}/deployments")).json()["deployments"]
    assert [(d["id"], d["uri"]) for d in listed] == [(deployment_id, second_service.url + "/")]

    assert (await client.patch(f"{quill.admin}/deployments/dp_nope", json={})).status_code == 404
    unreachable = await client.patch(f"{quill.admin}/deployments/{deployment_id}", json={"uri": "http://127.0.0.1:1"})
    assert unreachable.status_code == 400
    assert (
        await client.patch(f"{quill.admin}/deployments/{deployment_id}", json={"uri": "ftp://x"})
    ).status_code == 400
