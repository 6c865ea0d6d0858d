"""``quill serve --workers 2``: one server from the outside; a worker SIGKILLed while calls cross
between workers loses none of them and applies none twice; the worker count is fixed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.ids import hashed_partition_key
from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService

PARTITIONS = 4


@pytest.fixture
def two_workers(tmp_path: Path, sdk_service: SdkService) -> Iterator[Quill]:
    server = Quill(tmp_path / "data", env=QUILL_TEST_ENV, partitions=PARTITIONS, workers=2)
    try:
        response = httpx.post(f"{server.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert response.status_code == 201, response.text
        yield server
    finally:
        server.stop()


def _worker_of(service: str, key: str) -> int:
    return hashed_partition_key(service, key) % PARTITIONS % 2


async def _retrying(request: httpx.Request, client: httpx.AsyncClient, server: Quill) -> httpx.Response:
    """Send until a worker answers other than 503 (one may be down or restarting)."""
    deadline = asyncio.get_running_loop().time() + 60
    last = ""
    while True:
        try:
            response = await client.send(request)
            if response.status_code != 503:
                return response
            last = f"503 {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)  # the connection went to the worker that was killed
        if asyncio.get_running_loop().time() > deadline:
            tail = "".join(server.output[-60:])
            stuck = await _unfinished(server, client)
            raise AssertionError(
                f"no answer to {request.method} {request.url} within 60s ({last}); unfinished: {stuck}; server:\n{tail}"
            )
        await asyncio.sleep(0.1)


async def _unfinished(server: Quill, client: httpx.AsyncClient) -> object:
    """What is not completed, for a failure message."""
    query = "SELECT id, target, status, journal_size, invoked_by_id FROM sys_invocation WHERE status != 'completed'"
    try:
        rows = await client.post(f"{server.admin}/query", json={"query": query}, headers={"accept": "application/json"})
        locks = await client.post(
            f"{server.admin}/query",
            json={"query": "SELECT * FROM sys_keyed_service_status"},
            headers={"accept": "application/json"},
        )
        return {"invocations": rows.json(), "locks": locks.json()}
    except httpx.HTTPError as exc:
        return repr(exc)


async def test_a_sigkilled_worker_loses_no_cross_worker_call_and_applies_none_twice(two_workers: Quill) -> None:
    # Callers are unkeyed (they run where they are received); their callees are keyed objects,
    # half of them owned by each worker: calls and their results cross between the workers.
    keys = [f"crash-{i}" for i in range(40)]
    assert {_worker_of("Counter", k) for k in keys} == {0, 1}
    async with httpx.AsyncClient(timeout=30) as client:
        sends = [
            client.build_request(
                "POST",
                f"{two_workers.ingress}/restate/send/Caller/call_counter",
                json=key,
                headers={"idempotency-key": key},  # retrying a send that a dying worker took is safe
            )
            for key in keys
        ]
        first = await asyncio.gather(*(_retrying(r, client, two_workers) for r in sends[:20]))
        os.kill(two_workers.worker_pid(1), signal.SIGKILL)
        rest = await asyncio.gather(*(_retrying(r, client, two_workers) for r in sends[20:]))
        ids = [response.json()["invocationId"] for response in [*first, *rest]]
        await asyncio.to_thread(two_workers.wait_for_line, "worker 1 of 2 serving", 2)
        for invocation_id in ids:
            attach = client.build_request("GET", f"{two_workers.ingress}/restate/attach/{invocation_id}")
            result = await _retrying(attach, client, two_workers)
            assert result.status_code == 200, result.text
            assert result.json() == 5  # the callee added 5 to 0: it ran once
        for key in keys:
            get = client.build_request("GET", f"{two_workers.ingress}/restate/call/Counter/{key}/get")
            value = await _retrying(get, client, two_workers)
            assert value.json() == 5, key


async def test_both_workers_answer_for_the_whole_server(two_workers: Quill) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for key in ("a", "b", "c", "d", "e", "f"):
            response = await client.post(f"{two_workers.ingress}/restate/call/Counter/{key}/add", json=1)
            assert response.json() == 1
        # The admin API (worker 0) sees the invocations of both workers.
        query = {"query": "SELECT target_service_key FROM sys_invocation WHERE target_service_name = 'Counter'"}
        rows = await client.post(f"{two_workers.admin}/query", json=query, headers={"accept": "application/json"})
        # Plain calls are not retained: the table lists what is still there, from every worker;
        # instead check the state of both workers' objects through /query.
        state = await client.post(
            f"{two_workers.admin}/query",
            json={"query": "SELECT service_key FROM state WHERE service_name = 'Counter' ORDER BY service_key"},
            headers={"accept": "application/json"},
        )
        assert rows.status_code == 200
        assert [r["service_key"] for r in state.json()["rows"]] == ["a", "b", "c", "d", "e", "f"]
        assert {_worker_of("Counter", k) for k in "abcdef"} == {0, 1}


def test_an_existing_data_dir_refuses_another_worker_count(tmp_path: Path) -> None:
    server = Quill(tmp_path / "data", partitions=PARTITIONS, workers=2)
    server.stop()
    refused = subprocess.run(
        [sys.executable, "-m", "quill", "serve", "--data-dir", str(tmp_path / "data"), "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "was created with 2 worker(s); start it with --workers 2" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
