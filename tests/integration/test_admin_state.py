"""Operators overwrite a virtual object's state: POST /services/{name}/state."""

from __future__ import annotations

import httpx
import pytest

from engine.partition.objects import state_version
from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def test_state_is_replaced_between_invocations(quill: Quill, client: httpx.AsyncClient) -> None:
    call = f"{quill.ingress}/restate/call/Counter/edited"
    await client.post(f"{call}/add", json=5)
    await client.post(f"{call}/tag", json="old")
    replaced = await client.post(
        f"{quill.admin}/services/Counter/state",
        json={"object_key": "edited", "new_state": {"value": list(b"41")}},
    )
    assert replaced.status_code == 202
    assert (await client.post(f"{call}/describe")).json() == {"keys": ["value"], "value": 41}
    assert (await client.post(f"{call}/add", json=1)).json() == 42


async def test_version_guards_concurrent_edits(quill: Quill, client: httpx.AsyncClient) -> None:
    await client.post(f"{quill.ingress}/restate/call/Counter/versioned/add", json=1)
    current = state_version([(b"value", b"1")])
    body = {"object_key": "versioned", "new_state": {"value": "7"}, "version": current}
    assert (await client.post(f"{quill.admin}/services/Counter/state", json=body)).status_code == 202
    stale = await client.post(f"{quill.admin}/services/Counter/state", json=body)
    assert stale.status_code == 409
    assert "outdated" in stale.json()["message"]


async def test_a_locked_object_is_not_edited(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    await client.post(f"{quill.ingress}/restate/send/Counter/locked-edit/hold", json="edit-gate")
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:locked-edit", "total": 1})
    response = await client.post(
        f"{quill.admin}/services/Counter/state", json={"object_key": "locked-edit", "new_state": {}}
    )
    assert response.status_code == 409
    await client.get(f"{sdk_service.url}/test/open", params={"name": "edit-gate"})


@pytest.mark.parametrize(
    ("service", "body", "status"),
    [
        ("Greeter", {"object_key": "k", "new_state": {}}, 400),
        ("Nope", {"object_key": "k", "new_state": {}}, 404),
        ("Counter", {"new_state": {}}, 422),
        ("Counter", {"object_key": "k", "new_state": {"v": [300]}}, 422),
    ],
)
async def test_bad_state_edits(
    quill: Quill, client: httpx.AsyncClient, service: str, body: dict[str, object], status: int
) -> None:
    response = await client.post(f"{quill.admin}/services/{service}/state", json=body)
    assert response.status_code == status
    assert response.json()["message"]
