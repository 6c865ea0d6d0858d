"""Listeners and what may reach them: one address per listener, and the Dapr proxy never reaching
quill's own ports (the ingress must not become a way into the admin API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.integration.test_dapr_invoke import DaprApp
from tests.support import Quill, free_port


@pytest.fixture(scope="module")
def dapr_app() -> Iterator[DaprApp]:
    process = DaprApp()
    yield process
    process.stop()


class DaprPortQuill(Quill):
    def __init__(self, data_dir: Path, *, allow_urls: bool) -> None:
        self.dapr_port = free_port()
        env = {**QUILL_TEST_ENV, "QUILL_DAPR_PORT": str(self.dapr_port)}
        super().__init__(data_dir, env=env, args=["--dapr-allow-url-targets"] if allow_urls else [])

    def own_urls(self) -> dict[str, str]:
        """quill's listeners under the names a caller may use for them."""
        urls = {}
        for face, port in (("ingress", self.ingress_port), ("admin", self.admin_port), ("dapr", self.dapr_port)):
            for host in ("127.0.0.1", "localhost", "127.0.0.2", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]"):
                urls[f"{face}@{host}"] = f"http://{host}:{port}"
        return urls


@pytest.fixture(scope="module")
def default_quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprPortQuill]:
    server = DaprPortQuill(tmp_path_factory.mktemp("quill") / "data", allow_urls=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def url_quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprPortQuill]:
    server = DaprPortQuill(tmp_path_factory.mktemp("quill") / "data", allow_urls=True)
    yield server
    server.stop()


async def test_url_targets_are_off_by_default(
    default_quill: DaprPortQuill, dapr_app: DaprApp, client: httpx.AsyncClient
) -> None:
    server = default_quill
    admin = f"http://127.0.0.1:{server.admin_port}"
    for app_id in (quote(admin, safe=""), admin, quote(dapr_app.url, safe="")):
        answer = await client.get(f"{server.ingress}/v1.0/invoke/{app_id}/method/deployments")
        assert answer.status_code == 403, answer.text
        error = answer.json()
        assert error["errorCode"] == "ERR_DIRECT_INVOKE"
        assert "invoking a URL is disabled" in error["message"] and "--dapr-allow-url-targets" in error["message"]
    # Nor through the dapr-app-id header on the sidecar port, nor as a POST that would register.
    by_header = await client.get(f"http://127.0.0.1:{server.dapr_port}/deployments", headers={"dapr-app-id": admin})
    assert by_header.status_code == 403
    register = await client.post(
        f"{server.ingress}/v1.0/invoke/{quote(admin, safe='')}/method/deployments", json={"uri": dapr_app.url}
    )
    assert register.status_code == 403
    assert (await client.get(f"{server.admin}/deployments")).json() == {"deployments": []}
    # Registered targets still work.
    body = {"uri": dapr_app.url, "app_id": "math", "kind": "http_endpoint"}
    assert (await client.post(f"{server.admin}/deployments", json=body)).status_code == 201
    added = await client.post(f"{server.ingress}/v1.0/invoke/math/method/add", json={"a": 1, "b": 2})
    assert (added.status_code, added.json()) == (200, 3)


async def test_url_targets_never_reach_quill_itself(
    url_quill: DaprPortQuill, dapr_app: DaprApp, client: httpx.AsyncClient
) -> None:
    server = url_quill
    allowed = await client.post(
        f"{server.ingress}/v1.0/invoke/{quote(dapr_app.url, safe='')}/method/add", json={"a": 2, "b": 2}
    )
    assert (allowed.status_code, allowed.json()) == (200, 4)
    for name, url in server.own_urls().items():
        for base in (server.ingress, f"http://127.0.0.1:{server.dapr_port}"):
            answer = await client.get(f"{base}/v1.0/invoke/{quote(url, safe='')}/method/deployments")
            assert answer.status_code == 403, (name, answer.text)
            error = answer.json()
            assert error["errorCode"] == "ERR_DIRECT_INVOKE"
            assert "the target is quill's own" in error["message"], (name, error)
    assert (await client.get(f"{server.admin}/deployments")).json() == {"deployments": []}


async def test_registering_quills_own_listener_is_refused(url_quill: DaprPortQuill, client: httpx.AsyncClient) -> None:
    server = url_quill
    for kind in ("dapr", "http_endpoint"):
        for name, url in server.own_urls().items():
            body = {"uri": url, "app_id": "sneaky", "kind": kind}
            answer = await client.post(f"{server.admin}/deployments", json=body)
            assert answer.status_code == 400, (kind, name, answer.text)
            assert "quill's own" in answer.json()["message"]
    assert (await client.get(f"{server.admin}/dapr/apps")).json()["apps"] == []


def test_each_listener_has_its_own_address(tmp_path: Path) -> None:
    # The ingress on 127.0.0.3 (from --bind), the admin API on 127.0.0.1 (its own address).
    server = Quill(tmp_path / "data", env=QUILL_TEST_ENV, host="127.0.0.3", args=["--admin-bind", "127.0.0.1"])
    try:
        ingress_port, admin_port = server.ingress_port, server.admin_port
        assert httpx.get(f"http://127.0.0.3:{ingress_port}/restate/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{admin_port}/health").status_code == 200
        for url in (f"http://127.0.0.1:{ingress_port}/restate/health", f"http://127.0.0.3:{admin_port}/health"):
            with pytest.raises(httpx.ConnectError):
                httpx.get(url)
        version = httpx.get(f"http://127.0.0.1:{admin_port}/version").json()
        assert version["ingress_endpoint"] == f"http://127.0.0.3:{ingress_port}/"
    finally:
        server.stop()


def test_listener_addresses_from_the_environment(tmp_path: Path) -> None:
    env = {**QUILL_TEST_ENV, "QUILL_INGRESS_BIND": "127.0.0.4"}
    server = Quill(tmp_path / "data", env=env)  # --bind 127.0.0.1 fills in only the admin API
    try:
        assert httpx.get(f"http://127.0.0.4:{server.ingress_port}/restate/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{server.admin_port}/health").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{server.ingress_port}/restate/health")
    finally:
        server.stop()
