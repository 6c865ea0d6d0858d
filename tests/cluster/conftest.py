"""Fixtures for the cluster-mode tests: one 3-server JetStream cluster per module, a client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from itertools import count

import pytest

from engine.log.jetstream import JetStreamCluster
from engine.log.jetstream_client import JetStreamSettings
from tests.cluster.support import NatsCluster

_partitions = count()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    cluster.start()
    yield cluster
    cluster.stop()


def settings_for(
    cluster: NatsCluster, node: str = "n-test", urls: tuple[str, ...] | None = None, lease_ttl: float = 5.0
) -> JetStreamSettings:
    return JetStreamSettings(urls=urls or tuple(cluster.urls), node=node, lease_ttl=lease_ttl)


@pytest.fixture
async def js_cluster(nats_cluster: NatsCluster) -> AsyncIterator[JetStreamCluster]:
    async with await JetStreamCluster.connect(settings_for(nats_cluster)) as cluster:
        yield cluster


@pytest.fixture
def partition() -> int:
    """A partition number no other test of the session uses, so streams never collide."""
    return next(_partitions)
