"""Service protocol negotiation: v6 by default, v7 when enabled, clear errors outside [5, 7]."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService, free_port


@pytest.fixture
def quill_v7(tmp_path: Path) -> Iterator[Quill]:
    server = Quill(tmp_path / "data", env={**QUILL_TEST_ENV, "QUILL_ENABLE_PROTOCOL_V7": "true"})
    yield server
    server.stop()


async def test_protocol_v7_runs_every_kind_of_step(
    quill_v7: Quill, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    version = (await client.get(f"{quill_v7.admin}/version")).json()
    assert version["features"]["protocol_v7"] is True
    registered = await client.post(f"{quill_v7.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    assert registered.status_code == 201
    call = f"{quill_v7.ingress}/restate/call"
    assert (await client.post(f"{call}/Greeter/counted", json="v7")).json() == "Hello v7 #1"
    assert (await client.post(f"{call}/Counter/v7/add", json=2)).json() == 2
    assert (await client.post(f"{call}/Timers/sleep", json=50)).json() == "slept 50ms"
    waiting = asyncio.create_task(client.post(f"{call}/Caller/wait_for_awakeable", json="v7-aw"))
    awakeable = (await client.get(f"{sdk_service.url}/test/published", params={"key": "v7-aw"})).json()
    await client.post(f"{quill_v7.ingress}/restate/awakeables/{awakeable}/resolve", json="seven")
    assert (await waiting).json() == "got seven"


class _ManifestServer:
    """Serves a fixed discovery manifest, to register SDKs quill cannot talk to."""

    def __init__(self, manifest: dict[str, object]) -> None:
        body = json.dumps(manifest).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                self.send_response(200)
                self.send_header("content-type", "application/vnd.restate.endpointmanifest.v2+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize(("low", "high"), [(1, 4), (8, 9), (6, 5)])
async def test_sdks_outside_the_supported_range_are_refused(
    quill: Quill, client: httpx.AsyncClient, low: int, high: int
) -> None:
    manifest = {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": low,
        "maxProtocolVersion": high,
        "services": [],
    }
    fake = _ManifestServer(manifest)
    try:
        response = await client.post(f"{quill.admin}/deployments", json={"uri": fake.url, "use_http_11": True})
    finally:
        fake.close()
    assert response.status_code == 400
    assert "protocol" in response.json()["message"].lower()
    assert (await client.get(f"{quill.admin}/deployments")).json() == {"deployments": []}
