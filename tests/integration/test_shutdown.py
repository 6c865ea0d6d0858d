"""Shutdown and start: SIGTERM drains attempts in flight instead of cancelling them; a taken port
or a data dir in use stops start-up at once with one line."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService, free_port

DRAIN_ENV = {**QUILL_TEST_ENV, "QUILL_SHUTDOWN_TIMEOUT": "30s"}


def terminate_then_open(quill: Quill, sdk_service: SdkService, gate: str) -> float:
    """SIGTERM; once the drain began, let the side effects finish 4 s later (after the 3 s that
    uvicorn alone would have waited); wait for the exit. How long the drain took."""
    started = time.monotonic()
    quill._proc.send_signal(signal.SIGTERM)
    quill.wait_for(lambda: any("draining attempts in flight" in line for line in quill.output), 30)
    time.sleep(4)
    httpx.get(f"{sdk_service.url}/test/open", params={"name": gate})
    quill._proc.wait(60)
    quill.stop()
    return time.monotonic() - started


@pytest.mark.parametrize(("http_11", "count"), [(True, 200), (False, 20)], ids=["http1.1", "http2-bidi"])
async def test_sigterm_drains_attempts_and_answers_callers_503(
    tmp_path: Path, sdk_service: SdkService, http_11: bool, count: int
) -> None:
    # One connection per caller, so that every call is in flight at once.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count + 10)) as client:
        await _drain_and_restart(tmp_path, sdk_service, client, http_11, count)


async def _drain_and_restart(
    tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient, http_11: bool, count: int
) -> None:
    gate = f"drain{'11' if http_11 else '2'}"
    names = [f"{gate}-{i}" for i in range(count)]
    quill = Quill(tmp_path / "data", env=DRAIN_ENV)
    try:
        registration = {"uri": sdk_service.url, "use_http_11": http_11}
        assert (await client.post(f"{quill.admin}/deployments", json=registration)).status_code == 201
        url = f"{quill.ingress}/restate/call/Durable/slow_step"
        calls = [asyncio.create_task(client.post(url, json=name, headers={"idempotency-key": name})) for name in names]
        # Every side effect is running (parked at a gate) when quill is told to stop.
        waited = {"prefix": f"slow-run:{gate}-", "total": count}
        started = await client.get(f"{sdk_service.url}/test/wait", params=waited)
        assert started.status_code == 200, "".join(quill.output[-20:])
        assert started.json() == count
        drained_in = await asyncio.to_thread(terminate_then_open, quill, sdk_service, gate)
        answers = await asyncio.gather(*calls)
    finally:
        quill.stop()
    assert drained_in < 25, drained_in  # the steps finished; nobody waited for the whole timeout
    for answer in answers:
        # Retryable, in Restate's shape, with the id to attach to: not a plain-text 500.
        assert answer.status_code == 503, (answer.text, "".join(quill.output[-30:]))
        assert answer.headers["x-restate-id"].startswith("inv_1")
        error = answer.json()
        assert error["code"] == 503 and "shutting down" in error["message"]

    restarted = Quill(tmp_path / "data", env=DRAIN_ENV)
    try:
        # The retrying callers (same idempotency keys) get each invocation's one result.
        again = f"{restarted.ingress}/restate/call/Durable/slow_step"
        results = await asyncio.gather(
            *(client.post(again, json=name, headers={"idempotency-key": name}) for name in names)
        )
        assert [r.json() for r in results] == [f"{name} ran 1" for name in names]
        assert {r.headers["x-restate-id"] for r in results} == {a.headers["x-restate-id"] for a in answers}
        runs = (await client.get(f"{sdk_service.url}/test/counters", params={"prefix": f"slow-run:{gate}-"})).json()
        assert runs == {f"slow-run:{name}": 1 for name in names}  # no side effect ran twice
    finally:
        restarted.stop()


def test_a_taken_port_stops_start_up_at_once_with_one_line(tmp_path: Path) -> None:
    holder = Quill(tmp_path / "first", env=QUILL_TEST_ENV)
    try:
        command = Quill.command(tmp_path / "second", ports=(free_port(), holder.admin_port))
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert time.monotonic() - started < 10
        assert result.returncode != 0
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        taken = f"http://127.0.0.1:{holder.admin_port}/"
        assert lines == [f"quill: cannot listen on {taken} (admin): address already in use"]
        # The data dir it would have used was never locked: a quill can start there.
        assert not (tmp_path / "second" / "LOCK").exists()
    finally:
        holder.stop()


def test_a_data_dir_in_use_stops_start_up_with_one_line(tmp_path: Path) -> None:
    holder = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        if holder.workers > 1:
            pytest.skip("with --workers the supervisor reports a worker that cannot start (quill.supervisor)")
        result = subprocess.run(Quill.command(tmp_path / "data"), capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        in_use = f"data dir {tmp_path / 'data'} is in use by another quill process (its LOCK file is held)"
        assert lines == [f"quill: {in_use}"]
        assert httpx.get(f"{holder.ingress}/restate/health").status_code == 200  # the first one is untouched
    finally:
        holder.stop()
