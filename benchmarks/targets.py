"""How to install, start and health-check each server under test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from benchmarks import procs

REPO_ROOT = Path(__file__).resolve().parent.parent
RESTATE_VERSION = "1.7.12"
RESTATE_PREFIX = REPO_ROOT / ".tooling" / "restate-server"
RESTATE_BIN = RESTATE_PREFIX / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"

TargetName = Literal["quill", "quill-cluster", "restate"]


@dataclass(frozen=True)
class Ports:
    ingress: int
    admin: int
    node: int  # Restate's node-to-node port; unused by quill.


@dataclass
class Server:
    target: TargetName
    managed: procs.Managed
    ports: Ports
    version: str


def restate_installed_version() -> str | None:
    if not RESTATE_BIN.exists():
        return None
    out = subprocess.run([str(RESTATE_BIN), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().rsplit(" ", 1)[-1] or None


def ensure_restate() -> None:
    """Install the pinned restate-server from the npm registry if it is missing.

    Must run before entering the private network namespace (it needs the
    registry). --ignore-scripts skips the package's analytics postinstall hook.
    """
    if restate_installed_version() == RESTATE_VERSION:
        return
    RESTATE_PREFIX.mkdir(parents=True, exist_ok=True)
    cmd = [
        "npm", "install", "--prefix", str(RESTATE_PREFIX), "--no-save", "--ignore-scripts",
        "--no-audit", "--no-fund", f"@restatedev/restate-server@{RESTATE_VERSION}",
    ]  # fmt: skip
    print(f"installing restate-server {RESTATE_VERSION}: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True, timeout=600)
    if restate_installed_version() != RESTATE_VERSION:
        raise RuntimeError(f"restate-server {RESTATE_VERSION} not found at {RESTATE_BIN} after npm install")


def restate_config(ports: Ports) -> str:
    # Everything else stays at the server's defaults (24 partitions, RocksDB
    # with WAL fsync, prometheus on) so the baseline is the stock server.
    return f"""\
listen-mode = "tcp"
bind-address = "127.0.0.1:{ports.node}"
advertised-address = "http://127.0.0.1:{ports.node}/"
disable-telemetry = true

[admin]
bind-address = "127.0.0.1:{ports.admin}"
disable-web-ui = true

[ingress]
bind-address = "127.0.0.1:{ports.ingress}"
"""


def start_restate(workdir: Path, extra_env: dict[str, str]) -> Server:
    ports = Ports(procs.free_port(), procs.free_port(), procs.free_port())
    config_path = workdir / "restate.toml"
    config_path.write_text(restate_config(ports))
    env = {**os.environ, **extra_env}
    argv = [
        str(RESTATE_BIN), "--config-file", str(config_path), "--base-dir", str(workdir / "restate-data"),
        "--node-name", "bench", "--no-logo", "--log-disable-ansi-codes", "true",
    ]  # fmt: skip
    managed = procs.start("restate-server", argv, workdir / "restate-server.log", env=env, cwd=workdir)
    return Server("restate", managed, ports, RESTATE_VERSION)


def start_quill(workdir: Path, extra_env: dict[str, str]) -> Server:
    ports = Ports(procs.free_port(), procs.free_port(), 0)
    data_dir = workdir / "quill-data"
    data_dir.mkdir()
    argv = [
        sys.executable, "-m", "quill", "serve", "--ingress-port", str(ports.ingress),
        "--admin-port", str(ports.admin), "--data-dir", str(data_dir), "--bind", "127.0.0.1",
    ]  # fmt: skip
    env = {**os.environ, **extra_env}
    managed = procs.start("quill", argv, workdir / "quill.log", env=env, cwd=REPO_ROOT)
    return Server("quill", managed, ports, "repo")


def start_quill_cluster(workdir: Path, extra_env: dict[str, str]) -> Server:
    """``quill dev-cluster``: 3 NATS servers and 3 quill nodes, all children of one process, so the
    server CPU measured is theirs together. The load goes to n1."""
    base = procs.free_port()
    ports = Ports(base, base + 10, 0)
    argv = [
        sys.executable, "-m", "quill", "dev-cluster", "--dir", str(workdir / "cluster"),
        "--ingress-port", str(ports.ingress), "--admin-port", str(ports.admin), "--nats-port", str(base + 20),
    ]  # fmt: skip
    managed = procs.start("quill-cluster", argv, workdir / "quill.log", env={**os.environ, **extra_env}, cwd=REPO_ROOT)
    return Server("quill-cluster", managed, ports, "repo")


def start_server(target: TargetName, workdir: Path, extra_env: dict[str, str]) -> Server:
    if target == "restate":
        return start_restate(workdir, extra_env)
    if target == "quill-cluster":
        return start_quill_cluster(workdir, extra_env)
    return start_quill(workdir, extra_env)


def start_sdk(workdir: Path, worker_class: str) -> tuple[procs.Managed, int]:
    port = procs.free_port()
    argv = [
        sys.executable, "-m", "hypercorn", "benchmarks.services:app", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--worker-class", worker_class,
    ]  # fmt: skip
    return procs.start("sdk", argv, workdir / "sdk.log", cwd=REPO_ROOT), port


def wait_http_ok(managed: procs.Managed, url: str, timeout_s: float, method: str = "GET") -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not managed.alive():
                raise RuntimeError(f"{managed.name} exited early:\n{managed.log_tail()}")
            try:
                resp = client.request(method, url)
                if resp.status_code < 500 and (method != "GET" or resp.status_code == 200):
                    return
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
    raise TimeoutError(f"{managed.name}: {url} not ready after {timeout_s}s (last: {last})\n{managed.log_tail()}")


def wait_sdk_ready(managed: procs.Managed, port: int, timeout_s: float) -> None:
    # The SDK answers discovery on GET /discover; any non-5xx means it is serving.
    wait_http_ok(managed, f"http://127.0.0.1:{port}/discover", timeout_s, method="HEAD")


def register_deployment(admin_port: int, sdk_port: int, http2: bool = False) -> dict[str, object]:
    # HTTP/1.1: the SDK asks for request/response mode; HTTP/2 (h2c): bidirectional streaming.
    body: dict[str, object] = {"uri": f"http://127.0.0.1:{sdk_port}"}
    if not http2:
        body["use_http_11"] = True
    resp = httpx.post(f"http://127.0.0.1:{admin_port}/deployments", json=body, timeout=30.0)
    if resp.status_code // 100 != 2:
        raise RuntimeError(f"registration failed: HTTP {resp.status_code}: {resp.text[:500]}")
    result: dict[str, object] = resp.json()
    return result
