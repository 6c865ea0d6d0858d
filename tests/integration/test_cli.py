"""The official `restate` CLI (1.7.12, from the npm registry) against a live quill.

`make test` installs it into the git-ignored `.tooling/restate-cli`; run directly, this module
installs it there on first use and is skipped only when npm cannot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, Quill, SdkService

CLI_VERSION = "1.7.12"
CLI_PREFIX = REPO / ".tooling" / "restate-cli"
CLI = CLI_PREFIX / "node_modules" / ".bin" / "restate"


def _installed_version() -> str | None:
    if not CLI.exists():
        return None
    done = subprocess.run([str(CLI), "--version"], check=False, capture_output=True, text=True, timeout=60)
    return done.stdout.split()[1] if done.returncode == 0 and done.stdout.split()[1:] else None


@pytest.fixture(scope="module")
def cli() -> Path:
    if _installed_version() != CLI_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not available to install @restatedev/restate")
        install = subprocess.run(
            [npm, "install", "--prefix", str(CLI_PREFIX), "--no-audit", "--no-fund", "--ignore-scripts",
             f"@restatedev/restate@{CLI_VERSION}"],
            check=False, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if install.returncode != 0 or _installed_version() != CLI_VERSION:
            pytest.skip(f"npm could not install @restatedev/restate@{CLI_VERSION}: {install.stderr[-500:]}")
    return CLI


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


def restate(cli: Path, quill: Quill, tmp_path: Path, *args: str, editor: Path | None = None) -> str:
    env = {
        **os.environ,
        "RESTATE_ADMIN_URL": quill.admin,
        "RESTATE_INGRESS_URL": quill.ingress,
        "RESTATE_CLI_CONFIG_HOME": str(tmp_path / "cli-config"),
        "NO_COLOR": "1",
        **({"EDITOR": str(editor)} if editor is not None else {}),
    }
    done = subprocess.run([str(cli), *args], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"restate {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def run_cli(cli: Path, quill: Quill, tmp_path: Path, *args: str, editor: Path | None = None) -> str:
    # Off the event loop: the SDK service and quill answer while the CLI waits.
    return await asyncio.to_thread(restate, cli, quill, tmp_path, *args, editor=editor)


async def test_deployments_and_services(
    cli: Path, quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    deployment_id = (await client.get(f"{quill.admin}/deployments")).json()["deployments"][0]["id"]
    listed = await run_cli(cli, quill, tmp_path, "deployments", "list")
    assert deployment_id in listed and sdk_service.url in listed
    assert "- Greeter [1]" in listed and "- Counter [1]" in listed

    services = await run_cli(cli, quill, tmp_path, "services", "list")
    rows = {line.split()[1]: line for line in services.splitlines() if line.strip().startswith("[public]")}
    assert set(rows) == {"Greeter", "Durable", "Counter", "Timers", "Caller", "Signup"}
    assert "virtual object" in rows["Counter"] and "workflow" in rows["Signup"]
    assert all(deployment_id in row for row in rows.values())

    described = await run_cli(cli, quill, tmp_path, "services", "describe", "Greeter")
    assert "Name:            Greeter" in described
    assert "Service type:    Service" in described
    assert f"Deployment ID:   {deployment_id}" in described
    assert "Request/Response" in described
    handlers = {line.split()[0]: line.split()[1:] for line in described.splitlines()[-8:] if line.strip()}
    assert handlers["greet"] == ["JSON", "string", "JSON", "string"]


async def test_invocations_cancel_kill_purge(
    cli: Path, quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    held = (await client.post(f"{quill.ingress}/restate/send/Counter/cli-cancel/hold", json="cli-gate-1")).json()
    await sdk_service.wait(client, "holding:cli-cancel", 1)
    cancelled = await run_cli(cli, quill, tmp_path, "invocations", "cancel", "--yes", held["invocationId"])
    assert held["invocationId"] in cancelled and "Counter/cli-cancel/hold" in cancelled
    assert "[OK]: Cancelled 1 invocations" in cancelled
    # The handler sits inside a `ctx.run`: it sees the cancellation once the run is over.
    await sdk_service.open(client, "cli-gate-1")
    await client.get(f"{quill.ingress}/restate/attach/{held['invocationId']}")
    assert (await client.get(f"{quill.admin}/invocations/{held['invocationId']}")).json()["status"] == "completed"

    held = (await client.post(f"{quill.ingress}/restate/send/Counter/cli-kill/hold", json="cli-gate-2")).json()
    killed = await run_cli(cli, quill, tmp_path, "invocations", "kill", "--yes", held["invocationId"])
    assert "[OK]: Killed 1 invocations" in killed
    assert (await client.get(f"{quill.ingress}/restate/attach/{held['invocationId']}")).json()["message"] == "killed"

    done = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="cli")
    purged = await run_cli(cli, quill, tmp_path, "invocations", "purge", "--yes", done.headers["x-restate-id"])
    assert done.headers["x-restate-id"] in purged and "[OK]: Purged 1 invocations" in purged
    assert (await client.get(f"{quill.ingress}/restate/output/{done.headers['x-restate-id']}")).status_code == 404

    await sdk_service.open(client, "cli-gate-2")


async def test_state_and_sql(cli: Path, quill: Quill, client: httpx.AsyncClient, tmp_path: Path) -> None:
    await client.post(f"{quill.ingress}/restate/call/Counter/cli-state/add", json=41)
    state = await run_cli(cli, quill, tmp_path, "kv", "get", "Counter", "cli-state")
    assert any(line.split() == ["value", "41"] for line in state.splitlines())
    sql = await run_cli(
        cli, quill, tmp_path, "sql", "select service_key, key from state where service_key = 'cli-state'"
    )
    assert any(line.split() == ["cli-state", "value"] for line in sql.splitlines())


async def test_deployments_register_and_describe(cli: Path, tmp_path: Path, client: httpx.AsyncClient) -> None:
    """`restate deployments register` (a dry run, then the real one) against a fresh quill."""
    fresh = Quill(tmp_path / "data")
    service = SdkService()
    try:
        registered = await run_cli(
            cli, fresh, tmp_path, "deployments", "register", service.url, "--use-http1.1", "--yes"
        )
        deployment_id = (await client.get(f"{fresh.admin}/deployments")).json()["deployments"][0]["id"]
        assert deployment_id in registered
        assert "Greeter" in registered and "Signup" in registered
        described = await run_cli(cli, fresh, tmp_path, "deployments", "describe", deployment_id)
        assert "Request/Response" in described and "restate-sdk-python" in described
    finally:
        service.stop()
        fresh.stop()


async def test_services_status(
    cli: Path, quill: Quill, sdk_service: SdkService, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """`restate services status` (its SQL uses DataFusion's aggregate `first_value(x ORDER BY y)`)."""
    held = (await client.post(f"{quill.ingress}/restate/send/Counter/cli-status/hold", json="cli-gate-3")).json()
    await sdk_service.wait(client, "holding:cli-status", 1)
    queued = (await client.post(f"{quill.ingress}/restate/send/Counter/cli-status/add", json=1)).json()
    try:
        status = await run_cli(cli, quill, tmp_path, "services", "status")
        counter = _status_rows(status, "Counter virtual object")
        assert counter["add"][0] == "1"  # PENDING: the queued add (inboxed in sys_invocation_status)
        assert counter["hold"][3] == "1"  # RUNNING

        detailed = await run_cli(cli, quill, tmp_path, "services", "status", "Counter")
        locked = next(line for line in detailed.splitlines() if line.split()[:1] == ["cli-status"])
        assert held["invocationId"] in locked  # the active key, and who holds its lock
        assert queued["invocationId"] in detailed  # among the recent invocations
    finally:
        await sdk_service.open(client, "cli-gate-3")


def _status_rows(output: str, section: str) -> dict[str, list[str]]:
    """The handler rows of one service in `services status`: handler -> its columns."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == section)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        handler, *columns = line.split()
        rows[handler] = columns
    return rows


async def test_state_edit(cli: Path, quill: Quill, client: httpx.AsyncClient, tmp_path: Path) -> None:
    """`restate state edit` opens the state in $EDITOR and posts it back with the CLI's version hash
    of the state it read: quill must compute the same hash (else the edit is refused as stale)."""
    await client.post(f"{quill.ingress}/restate/call/Counter/cli-edit/add", json=41)
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "path = sys.argv[-1]\n"
        "state = json.load(open(path))\n"
        "state['value'] = 99\n"
        "state['note'] = 'edited'\n"
        "json.dump(state, open(path, 'w'))\n"
    )
    launcher = tmp_path / "editor.sh"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {editor} "$@"\n')
    launcher.chmod(0o755)
    edited = await run_cli(cli, quill, tmp_path, "state", "edit", "Counter", "cli-edit", "--yes", editor=launcher)
    assert "Successfully submitted state update" in edited
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/cli-edit/get")).json() == 99
    state = await run_cli(cli, quill, tmp_path, "kv", "get", "Counter", "cli-edit")
    assert any(line.split() == ["note", '"edited"'] for line in state.splitlines()), state
