"""Cluster mode end to end: 3 NATS JetStream servers, 3 quill nodes, a real SDK service.

Any node serves the whole cluster. Under load (clients with idempotency keys on every node),
SIGKILL the quill node leading most partitions, restart it, then SIGKILL the NATS server leading
most streams, restart it: no acknowledged invocation is lost and none is applied twice. The
failover times and the longest gap without an acknowledgement are written to
``cluster-failover.json`` in the test's directory and printed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.log.jetstream import JetStreamCluster
from tests.cluster.conftest import settings_for
from tests.cluster.support import NatsCluster
from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService

PARTITIONS = 4
NODES = ("n1", "n2", "n3")


class Cluster:
    def __init__(self, root: Path, nats: NatsCluster) -> None:
        self.root = root
        self.nats = nats
        self.nodes: dict[str, Quill] = {}

    def start(self, name: str) -> Quill:
        node = Quill(
            self.root / name,
            env=QUILL_TEST_ENV,
            partitions=PARTITIONS,
            workers=1,
            args=["--cluster", ",".join(self.nats.urls), "--node-name", name],
        )
        self.nodes[name] = node
        return node

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def alive(self) -> list[Quill]:
        return [node for node in self.nodes.values() if node.running]

    async def leaders(self, client: httpx.AsyncClient) -> dict[int, str]:
        """partition -> node, as the live nodes report what they lead."""
        found: dict[int, str] = {}
        for name, node in self.nodes.items():
            if not node.running:
                continue
            try:
                view = (await client.get(f"{node.admin}/cluster", timeout=5)).json()
            except httpx.TransportError:
                continue
            for partition in view.get("leading", {}):
                found[int(partition)] = name
        return found

    async def all_led(self, client: httpx.AsyncClient, deadline: float = 60) -> float:
        """Seconds until every partition has a leader among the live nodes."""
        started = time.monotonic()
        while len(await self.leaders(client)) < PARTITIONS:
            assert time.monotonic() - started < deadline, "partitions left without a leader"
            await asyncio.sleep(0.1)
        return time.monotonic() - started


@pytest.fixture
def cluster(tmp_path: Path, sdk_service: SdkService) -> Iterator[Cluster]:
    nats = NatsCluster(tmp_path / "nats")
    nats.start()
    cluster = Cluster(tmp_path, nats)
    try:
        for name in NODES:
            cluster.start(name)
        response = httpx.post(
            f"{cluster.nodes['n1'].admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True}, timeout=30
        )
        assert response.status_code == 201, response.text
        yield cluster
    finally:
        cluster.stop()
        nats.stop()


async def _known_everywhere(cluster: Cluster, client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    for node in cluster.alive():
        while "Counter" not in (await client.get(f"{node.ingress}/restate/health")).json()["services"]:
            assert time.monotonic() < deadline, "the registration did not reach every node"
            await asyncio.sleep(0.05)


async def test_every_node_serves_the_whole_cluster(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        await _known_everywhere(cluster, client)
        await cluster.all_led(client)
        for i, node in enumerate(cluster.nodes.values()):
            greeting = await client.post(f"{node.ingress}/restate/call/Greeter/greet", json=f"n{i}")
            assert greeting.json() == f"Hello n{i}!"
            # A keyed object in whichever partition, and a call from a service to an object.
            assert (await client.post(f"{node.ingress}/restate/call/Counter/same/add", json=1)).json() == i + 1
            assert (await client.post(f"{node.ingress}/restate/call/Caller/call_counter", json=f"c{i}")).json() == 5
        services = (await client.get(f"{cluster.nodes['n3'].admin}/services")).json()["services"]
        assert {s["name"] for s in services} >= {"Greeter", "Counter", "Caller"}


class Load:
    """Clients, one per node, each adding 1 to its own counter with a fresh idempotency key per
    request, retried (same key) on any node until it is acknowledged."""

    def __init__(self, cluster: Cluster, client: httpx.AsyncClient) -> None:
        self.cluster = cluster
        self.client = client
        self.sent: Counter[str] = Counter()
        self.acks: list[float] = []
        self.stopping = asyncio.Event()

    async def run(self, name: str) -> None:
        key = f"load-{name}"
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            await self._until_acked(key, f"{key}-{sequence}", preferred=name)
            self.sent[key] += 1
            self.acks.append(time.monotonic())

    async def _until_acked(self, key: str, idempotency_key: str, preferred: str) -> None:
        attempt = 0
        while True:
            nodes = [n for n in self.cluster.alive()]
            node = (
                self.cluster.nodes[preferred] if self.cluster.nodes[preferred].running else nodes[attempt % len(nodes)]
            )
            attempt += 1
            try:
                response = await self.client.post(
                    f"{node.ingress}/restate/call/Counter/{key}/add",
                    json=1,
                    headers={"idempotency-key": idempotency_key},
                )
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass  # that node died under us: the same key elsewhere
            await asyncio.sleep(0.05)

    def longest_gap(self, since: float) -> float:
        times = [since, *(t for t in self.acks if t >= since)]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


async def test_losing_a_quill_node_then_a_nats_server_loses_nothing_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    figures: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        await _known_everywhere(cluster, client)
        await cluster.all_led(client)
        load = Load(cluster, client)
        clients = [asyncio.ensure_future(load.run(name)) for name in NODES]
        await _acks_after(load, 20, deadline=60)  # some load before the first fault

        # 1. The quill node leading most partitions dies.
        leaders = Counter((await cluster.leaders(client)).values())
        victim_name = leaders.most_common(1)[0][0]
        victim = cluster.nodes[victim_name]
        killed_at = time.monotonic()
        victim.kill()
        figures["quill_node_failover_s"] = await cluster.all_led(client)
        figures["quill_node_longest_ack_gap_s"] = load.longest_gap(killed_at)
        cluster.start(victim_name)
        await _acks_after(load, len(load.acks) + 20, deadline=60)  # load with the node back

        # 2. The NATS server leading most partition streams dies.
        async with await JetStreamCluster.connect(settings_for(cluster.nats, node="probe")) as probe:
            stream_leaders = Counter([await probe.stream_leader(p) for p in range(PARTITIONS)])
        server = cluster.nats.server(str(stream_leaders.most_common(1)[0][0]))
        killed_at = time.monotonic()
        before = len(load.acks)
        server.kill()
        await _acks_after(load, before + 20, deadline=90)
        figures["nats_server_recovery_s"] = time.monotonic() - killed_at
        figures["nats_server_longest_ack_gap_s"] = load.longest_gap(killed_at)
        cluster.nats.restart(server)
        await _acks_after(load, len(load.acks) + 20, deadline=60)  # load with the server back

        load.stopping.set()
        await asyncio.gather(*clients)
        # Every acknowledged increment is there, and none twice.
        for key, sent in load.sent.items():
            value = await _retry_get(client, cluster, f"/restate/call/Counter/{key}/get")
            assert value == sent, f"{key}: {sent} acknowledged, counter is {value}"
        figures["acknowledged"] = float(sum(load.sent.values()))
    (tmp_path / "cluster-failover.json").write_text(json.dumps(figures, indent=2))
    print("cluster failover:", json.dumps(figures))


async def _acks_after(load: Load, count: int, deadline: float) -> None:
    started = time.monotonic()
    while len(load.acks) < count:
        assert time.monotonic() - started < deadline, f"{len(load.acks)} of {count} acknowledgements in {deadline}s"
        await asyncio.sleep(0.1)


async def _retry_get(client: httpx.AsyncClient, cluster: Cluster, path: str) -> int:
    for _ in range(100):
        for node in cluster.alive():
            try:
                response = await client.post(f"{node.ingress}{path}")
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                return int(response.json())
        await asyncio.sleep(0.2)
    raise AssertionError(f"no node answered {path}")
