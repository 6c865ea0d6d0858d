"""A real NATS JetStream cluster for tests: N nats-server processes on free loopback ports.

Each server gets a generated config (own store dir, routes to every peer, ``sync_interval: always``
as cluster mode requires, a raised ``max_payload``) and is started, SIGKILLed and restarted by pid.
Readiness is awaited, not slept for: every server's monitoring endpoint is polled until JetStream
answers healthy and the servers agree on a meta leader, with a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from quill.devcluster import nats_config
from tests.support import Process, free_port

NATS_SERVER = str(Path(sys.executable).with_name("nats-server"))
READY_DEADLINE = 30.0
POLL_INTERVAL = 0.05


@dataclass
class NatsServer:
    """One member of the cluster; its ports and store dir survive a restart."""

    name: str
    client_port: int
    route_port: int
    monitor_port: int
    store_dir: Path
    config_path: Path
    process: Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def monitor(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def running(self) -> bool:
        return self.process is not None

    def write_config(self, peers: list[NatsServer]) -> None:
        routes = [peer.route_port for peer in peers if peer is not self]
        self.config_path.write_text(
            nats_config(self.name, self.client_port, self.route_port, self.monitor_port, self.store_dir, routes)
        )

    def start(self) -> None:
        assert self.process is None, f"{self.name} is already running"
        self.process = Process([NATS_SERVER, "-c", str(self.config_path)], ready_marker="Server is ready")

    def kill(self) -> None:
        """SIGKILL by pid: a crash, nothing flushed or handed over."""
        assert self.process is not None
        self.process.kill()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the server holds its sockets open but answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def healthy(self, http: httpx.Client) -> bool:
        try:
            health = http.get(f"{self.monitor}/healthz")
            jsz = http.get(f"{self.monitor}/jsz")
        except httpx.TransportError:
            return False
        meta = jsz.json().get("meta_cluster", {}) if jsz.status_code == 200 else {}
        return health.status_code == 200 and bool(meta.get("leader"))


class NatsCluster:
    """N JetStream servers routed to each other as one cluster."""

    def __init__(self, root: Path, size: int = 3) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.servers = [
            NatsServer(
                name=f"n{i + 1}",
                client_port=free_port(),
                route_port=free_port(),
                monitor_port=free_port(),
                store_dir=root / f"n{i + 1}",
                config_path=root / f"n{i + 1}.conf",
            )
            for i in range(size)
        ]
        for server in self.servers:
            server.write_config(self.servers)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def server(self, name: str) -> NatsServer:
        (found,) = [server for server in self.servers if server.name == name]
        return found

    def start(self) -> None:
        try:
            for server in self.servers:
                server.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def restart(self, server: NatsServer) -> None:
        server.start()
        self.wait_ready()

    def wait_ready(self, deadline: float = READY_DEADLINE) -> None:
        """Until every running server reports JetStream healthy with a known meta leader."""
        give_up = time.monotonic() + deadline
        running = [server for server in self.servers if server.running]
        with httpx.Client(timeout=2) as http:
            while not all(server.healthy(http) for server in running):
                if time.monotonic() > give_up:
                    raise TimeoutError(f"JetStream not ready within {deadline}s on {[s.name for s in running]}")
                time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def wipe(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
