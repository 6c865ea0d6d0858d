"""Registering deployments through the admin API (discovery against a real SDK service)."""

from __future__ import annotations

import httpx

from tests.support import Quill, SdkService, free_port


async def test_register_then_list(quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("dp_")
    services = {s["name"]: s for s in body["services"]}
    assert set(services) == {"Greeter", "Durable", "Counter", "Timers", "Caller", "Signup"}
    assert services["Greeter"]["ty"] == "Service"
    assert services["Counter"]["ty"] == "VirtualObject"
    assert services["Signup"]["ty"] == "Workflow"
    handler_types = {h["name"]: h["ty"] for h in services["Counter"]["handlers"]}
    assert (handler_types["add"], handler_types["get"]) == ("Exclusive", "Shared")
    assert {h["name"] for h in services["Greeter"]["handlers"]} >= {"greet", "counted", "fail"}

    again = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]

    listed = (await client.get(f"{quill.admin}/deployments")).json()["deployments"]
    assert [d["id"] for d in listed] == [body["id"]]
    assert listed[0]["protocol_type"] == "RequestResponse"
    assert listed[0]["sdk_version"].startswith("restate-sdk-python/")
    service = (await client.get(f"{quill.admin}/services/Greeter")).json()
    assert service["deployment_id"] == body["id"]
    assert service["retry_policy"]["initial_interval"] == "50ms"


async def test_unreachable_deployment_is_rejected_and_not_stored(quill: Quill, client: httpx.AsyncClient) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    response = await client.post(f"{quill.admin}/deployments", json={"uri": uri, "use_http_11": True})
    assert response.status_code == 400
    assert "discover" in response.json()["message"]
    assert (await client.get(f"{quill.admin}/deployments")).json() == {"deployments": []}
    assert (await client.get(f"{quill.admin}/services")).json() == {"services": []}


async def test_bad_registration_bodies_are_4xx(quill: Quill, client: httpx.AsyncClient) -> None:
    # Not JSON: 400; JSON of the wrong shape: 422; not an HTTP URL: 400 (tests/integration/test_registration.py).
    json = {"content-type": "application/json"}
    bodies = ((b"{", 400), (b'{"url": "http://x"}', 422), (b'{"uri": "ftp://x"}', 400), (b'{"uri": 5}', 422))
    for body, status in bodies:
        response = await client.post(f"{quill.admin}/deployments", content=body, headers=json)
        assert response.status_code == status, body
        assert response.json()["message"]


async def test_unknown_service_and_deployment_are_404(quill: Quill, client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{quill.admin}/services/Nope")).status_code == 404
    assert (await client.get(f"{quill.admin}/deployments/dp_nope")).status_code == 404
    assert (await client.get(f"{quill.admin}/health")).status_code == 200
