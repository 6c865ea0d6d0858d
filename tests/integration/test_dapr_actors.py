"""Dapr actors through quill, with the official Dapr SDK on both sides (ActorProxy → quill →
DaprActor app): durable, turn-based calls and actor state."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Process, Quill, free_port


class ActorApp(Process):
    def __init__(self, quill: Quill) -> None:
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.services.dapr_actors_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        super().__init__(argv, ready_marker="Uvicorn running on", env={"DAPR_HTTP_ENDPOINT": quill.ingress})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quill]:
    server = Quill(tmp_path_factory.mktemp("quill-actors") / "data", env=QUILL_TEST_ENV)
    app = ActorApp(server)
    try:
        registered = httpx.post(
            f"{server.admin}/deployments", json={"uri": app.url, "app_id": "counters", "kind": "dapr"}
        )
        assert registered.status_code == 201, registered.text
        yield server
    finally:
        app.stop()
        server.stop()


def _method(quill: Quill, actor_id: str, method: str) -> str:
    return f"{quill.ingress}/v1.0/actors/CounterActor/{actor_id}/method/{method}"


async def test_actor_calls_keep_state(quill: Quill, client: httpx.AsyncClient) -> None:
    assert (await client.put(_method(quill, "a1", "Add"), json=2)).json() == 2
    assert (await client.put(_method(quill, "a1", "Add"), json=3)).json() == 5
    assert (await client.put(_method(quill, "a2", "Get"))).json() == 0
    state = await client.get(f"{quill.ingress}/v1.0/actors/CounterActor/a1/state/count")
    assert (state.status_code, state.json()) == (200, 5)
    missing = await client.get(f"{quill.ingress}/v1.0/actors/CounterActor/a1/state/nope")
    assert missing.status_code == 204


async def test_concurrent_calls_to_one_actor_never_overlap(quill: Quill, client: httpx.AsyncClient) -> None:
    items = [f"i{n}" for n in range(6)]
    results = await asyncio.gather(*(client.put(_method(quill, "turns", "SlowAppend"), json=i) for i in items))
    final = max((r.json() for r in results), key=len)
    # Turn-based: every append saw the previous ones, none was lost.
    assert sorted(final) == items


async def test_app_errors_pass_through(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.put(_method(quill, "a3", "Fail"))
    assert response.status_code == 500
    assert "counter refused" in response.json()["message"]


async def test_state_transactions_are_atomic(quill: Quill, client: httpx.AsyncClient) -> None:
    state = f"{quill.ingress}/v1.0/actors/CounterActor/tx/state"
    ok = [
        {"operation": "upsert", "request": {"key": "a", "value": {"n": 1}}},
        {"operation": "upsert", "request": {"key": "b", "value": 2}},
    ]
    assert (await client.put(state, json=ok)).status_code == 204
    bad = [{"operation": "delete", "request": {"key": "a"}}, {"operation": "explode", "request": {"key": "b"}}]
    rejected = await client.post(state, json=bad)
    assert rejected.status_code == 400
    # Nothing of the rejected transaction was applied.
    assert (await client.get(f"{state}/a")).json() == {"n": 1}
    assert (await client.post(state, json=[{"operation": "delete", "request": {"key": "a"}}])).status_code == 204
    assert (await client.get(f"{state}/a")).status_code == 204


async def test_unknown_actor_type_and_bad_schedules(quill: Quill, client: httpx.AsyncClient) -> None:
    unknown = await client.put(f"{quill.ingress}/v1.0/actors/Nope/x/method/Get")
    assert (unknown.status_code, unknown.json()["errorCode"]) == (400, "ERR_ACTOR_INSTANCE_MISSING")
    base = f"{quill.ingress}/v1.0/actors/CounterActor/x"
    for body in ({"dueTime": "soon"}, {"period": "R0/PT1S"}, {"period": "-1s"}, [1]):
        bad = await client.put(f"{base}/reminders/r", json=body)
        assert bad.status_code == 400, body
        assert bad.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    no_callback = await client.put(f"{base}/timers/t", json={"dueTime": "1s"})
    assert no_callback.status_code == 400
    assert (await client.get(f"{base}/reminders/none")).status_code == 404


async def _state_reaches(client: httpx.AsyncClient, quill: Quill, actor: str, key: str, value: int) -> int:
    """Reminders fire on their own clock: poll the actor's state (bounded) until it counts ``value``."""
    url = f"{quill.ingress}/v1.0/actors/CounterActor/{actor}/state/{key}"
    seen = 0
    for _ in range(200):
        response = await client.get(url)
        seen = response.json() if response.status_code == 200 else 0
        if seen >= value:
            return seen
        await asyncio.sleep(0.05)
    return seen


async def test_a_reminder_fires_its_repetitions_then_ends(quill: Quill, client: httpx.AsyncClient) -> None:
    base = f"{quill.ingress}/v1.0/actors/CounterActor/rem"
    body = {"dueTime": "0h0m0s100ms0\u03bcs", "period": "R3/PT0.2S", "data": "aGk="}  # data: base64 "hi"
    assert (await client.put(f"{base}/reminders/beat", json=body)).status_code == 204
    registered = (await client.get(f"{base}/reminders/beat")).json()
    assert (registered["period"], registered["data"]) == ("R3/PT0.2S", "aGk=")
    assert await _state_reaches(client, quill, "rem", "reminded-beat-hi", 3) == 3
    assert (await client.get(f"{base}/reminders/beat")).status_code == 404  # exhausted


async def test_a_timer_calls_its_callback_and_a_deleted_reminder_never_fires(
    quill: Quill, client: httpx.AsyncClient
) -> None:
    base = f"{quill.ingress}/v1.0/actors/CounterActor/tim"
    timer = {"callback": "tick", "data": "t1", "dueTime": "0h0m0s50ms0\u03bcs", "period": ""}
    assert (await client.put(f"{base}/timers/once", json=timer)).status_code == 204
    assert await _state_reaches(client, quill, "tim", "ticked-t1", 1) == 1
    assert (await client.put(f"{base}/reminders/later", json={"dueTime": "30s", "data": "eA=="})).status_code == 204
    assert (await client.delete(f"{base}/reminders/later")).status_code == 204
    assert (await client.get(f"{base}/reminders/later")).status_code == 404


async def test_reminders_survive_a_crash(tmp_path: Path, client: httpx.AsyncClient) -> None:
    ports = (free_port(), free_port())
    server = Quill(tmp_path / "data", env=QUILL_TEST_ENV, ports=ports)
    app = ActorApp(server)
    try:
        registered = await client.post(
            f"{server.admin}/deployments", json={"uri": app.url, "app_id": "counters", "kind": "dapr"}
        )
        assert registered.status_code == 201
        body = {"dueTime": "1s", "period": "", "data": "Y3Jhc2g="}  # "crash"
        assert (
            await client.put(f"{server.ingress}/v1.0/actors/CounterActor/dur/reminders/r", json=body)
        ).status_code == 204
        server.kill()
        server = Quill(tmp_path / "data", env=QUILL_TEST_ENV, ports=ports)
        assert await _state_reaches(client, server, "dur", "reminded-r-crash", 1) == 1
    finally:
        app.stop()
        server.stop()


def test_the_dapr_sdk_actor_proxy(quill: Quill, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_HTTP_ENDPOINT", quill.ingress)
    from dapr.actor import ActorId, ActorProxy
    from dapr.conf import settings

    from tests.services.dapr_actors_app import CounterInterface

    monkeypatch.setattr(settings, "DAPR_HTTP_ENDPOINT", quill.ingress)

    async def use_proxy() -> tuple[int, int]:
        proxy = ActorProxy.create("CounterActor", ActorId("sdk"), CounterInterface)
        first = await proxy.Add(4)
        second = await proxy.Add(6)
        return first, second

    assert asyncio.run(use_proxy()) == (4, 10)


async def test_idle_actors_are_deactivated(quill: Quill, client: httpx.AsyncClient) -> None:
    app_url = next(
        a["uri"] for a in (await client.get(f"{quill.admin}/dapr/apps")).json()["apps"] if a["app_id"] == "counters"
    )
    assert (await client.put(f"{quill.ingress}/v1.0/actors/IdleActor/idle1/method/Get")).json() == 0
    # IdleActor's actorIdleTimeout is 1 s (scan every 200 ms): poll the app's record, bounded.
    deactivated: list[str] = []
    for _ in range(100):
        deactivated = (await client.get(f"{app_url}/test/deactivated")).json()
        if "idle1" in deactivated:
            break
        await asyncio.sleep(0.05)
    assert deactivated == ["idle1"]  # the CounterActor instances (1 h idle timeout) stay active


async def test_a_reentrant_actor_calls_itself_within_its_turn(quill: Quill, client: httpx.AsyncClient) -> None:
    # Outer(2) → Outer(1) → Outer(0) → Inner: four calls deep in one chain, within maxStackDepth 8.
    response = await client.put(f"{quill.ingress}/v1.0/actors/ReentrantActor/r1/method/Outer", json=2)
    assert response.json() == 42
    # maxStackDepth 8: seven Outer calls and an Inner fit, ten do not.
    at_limit = await client.put(f"{quill.ingress}/v1.0/actors/ReentrantActor/r2/method/Outer", json=6)
    assert at_limit.json() == 46
    too_deep = await client.put(f"{quill.ingress}/v1.0/actors/ReentrantActor/r3/method/Outer", json=9)
    assert too_deep.status_code == 500  # the innermost call failed: "maximum stack depth exceeded"


async def test_operators_find_actor_state_under_dapr_names(quill: Quill, client: httpx.AsyncClient) -> None:
    await client.put(_method(quill, "named", "Add"), json=1)
    query = {"query": "SELECT key, value_utf8 FROM state WHERE service_key = 'named'"}
    rows = (await client.post(f"{quill.admin}/query", json=query, headers={"accept": "application/json"})).json()[
        "rows"
    ]
    assert rows == [{"key": "counters||CounterActor||named||count", "value_utf8": "1"}]


async def test_state_with_a_ttl_expires(quill: Quill, client: httpx.AsyncClient) -> None:
    state = f"{quill.ingress}/v1.0/actors/CounterActor/ttl/state"
    ops = [
        {"operation": "upsert", "request": {"key": "short", "value": 1, "metadata": {"ttlInSeconds": "0"}}},
        {"operation": "upsert", "request": {"key": "long", "value": 2, "metadata": {"ttlInSeconds": "3600"}}},
    ]
    assert (await client.put(state, json=ops)).status_code == 204
    assert (await client.get(f"{state}/short")).status_code == 204  # expired at once
    assert (await client.get(f"{state}/long")).json() == 2
    bad = [{"operation": "upsert", "request": {"key": "x", "value": 1, "metadata": {"ttlInSeconds": "soon"}}}]
    assert (await client.put(state, json=bad)).status_code == 400


async def test_all_of_an_actors_state_in_one_read(quill: Quill, client: httpx.AsyncClient) -> None:
    """``GET /v1.0/actors/{type}/{id}/state`` (the seed's ``getActorState``): key to value, expired
    values left out."""
    state = f"{quill.ingress}/v1.0/actors/CounterActor/all/state"
    assert (await client.get(state)).json() == {}
    ops = [
        {"operation": "upsert", "request": {"key": "n", "value": 1}},
        {"operation": "upsert", "request": {"key": "doc", "value": {"a": [1, "b"]}}},
        {"operation": "upsert", "request": {"key": "gone", "value": 3, "metadata": {"ttlInSeconds": "0"}}},
        {"operation": "upsert", "request": {"key": "kept", "value": "x", "metadata": {"ttlInSeconds": "3600"}}},
    ]
    assert (await client.put(state, json=ops)).status_code == 204
    assert (await client.put(_method(quill, "all", "Add"), json=2)).json() == 2  # the app saves "count"
    answer = await client.get(state)
    assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json")
    assert answer.json() == {"n": 1, "doc": {"a": [1, "b"]}, "kept": "x", "count": 2}
    unknown = await client.get(f"{quill.ingress}/v1.0/actors/NoSuchActor/x/state")
    assert (unknown.status_code, unknown.json()["errorCode"]) == (400, "ERR_ACTOR_INSTANCE_MISSING")
