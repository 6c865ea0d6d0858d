"""Leases and cluster metadata on JetStream KV buckets: compare-and-set and watches, across two nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

import pytest

from engine.errors import RevisionMismatch
from engine.log.interface import Lease, MetadataEntry
from engine.log.jetstream import JetStreamCluster
from tests.cluster.conftest import settings_for
from tests.cluster.support import NatsCluster

T = TypeVar("T")


async def next_of(iterator: AsyncGenerator[T, None]) -> T:
    return await asyncio.wait_for(anext(iterator), timeout=10)


async def test_a_lease_watch_follows_campaign_renewal_release_and_takeover(
    nats_cluster: NatsCluster, partition: int
) -> None:
    async with (
        await JetStreamCluster.connect(settings_for(nats_cluster, node="a")) as a,
        await JetStreamCluster.connect(settings_for(nats_cluster, node="b")) as b,
    ):
        leases_a, leases_b = await a.lease_store(), await b.lease_store()
        async with aclosing(leases_b.watch(partition)) as watch:
            assert await next_of(watch) is None  # nobody holds it yet

            lease = await leases_a.campaign(partition, "a", "nats://a")
            assert lease is not None
            seen: Lease | None = await next_of(watch)
            assert seen is not None and (seen.node, seen.epoch, seen.revision) == ("a", lease.epoch, lease.revision)

            renewed = await leases_a.renew(lease)
            seen = await next_of(watch)
            assert seen is not None and (seen.epoch, seen.revision) == (lease.epoch, renewed.revision)
            assert renewed.revision > lease.revision

            await leases_a.release(renewed)
            assert await next_of(watch) is None

            # Released, not expired: b need not wait out a TTL.
            taken = await leases_b.campaign(partition, "b", "nats://b")
            assert taken is not None and taken.epoch > lease.epoch
            seen = await next_of(watch)
            assert seen is not None and (seen.node, seen.epoch) == ("b", taken.epoch)

        # Two candidates for a free lease: exactly one wins.
        await leases_b.release(taken)
        outcomes = await asyncio.gather(
            leases_a.campaign(partition, "a", "nats://a"), leases_b.campaign(partition, "b", "nats://b")
        )
        assert sum(outcome is not None for outcome in outcomes) == 1


async def test_metadata_is_written_by_compare_and_set_and_watched_by_other_nodes(nats_cluster: NatsCluster) -> None:
    async with (
        await JetStreamCluster.connect(settings_for(nats_cluster, node="a")) as a,
        await JetStreamCluster.connect(settings_for(nats_cluster, node="b")) as b,
    ):
        writer, reader = await a.metadata_store(), await b.metadata_store()
        first = await writer.put("deployments.dp_1", b"v1", expected_revision=0)
        async with aclosing(reader.watch()) as watch:
            assert await next_of(watch) == MetadataEntry("deployments.dp_1", b"v1", first)

            with pytest.raises(RevisionMismatch) as exists:
                await writer.put("deployments.dp_1", b"again", expected_revision=0)
            assert exists.value.actual == first
            second = await writer.put("deployments.dp_1", b"v2", expected_revision=first)
            with pytest.raises(RevisionMismatch):
                await reader.put("deployments.dp_1", b"stale", expected_revision=first)
            assert await next_of(watch) == MetadataEntry("deployments.dp_1", b"v2", second)

            await writer.put("rules.r_1", b"rule", expected_revision=0)
            assert (await next_of(watch)).key == "rules.r_1"
            with pytest.raises(RevisionMismatch):
                await writer.delete("deployments.dp_1", expected_revision=first)
            await writer.delete("deployments.dp_1", expected_revision=second)
            deleted = await next_of(watch)
            assert (deleted.key, deleted.value) == ("deployments.dp_1", None)

            assert await reader.get("deployments.dp_1") is None
            assert [entry.key for entry in await reader.entries()] == ["rules.r_1"]
            recreated = await writer.put("deployments.dp_1", b"v3", expected_revision=0)  # after its deletion
            assert await reader.get("deployments.dp_1") == MetadataEntry("deployments.dp_1", b"v3", recreated)
            assert await next_of(watch) == MetadataEntry("deployments.dp_1", b"v3", recreated)

        # Any string is a key: service names and Dapr app ids are the user's.
        odd = "dapr_app/my.app:v1 ü=x"
        revision = await writer.put(odd, b"app", expected_revision=0)
        assert await reader.get(odd) == MetadataEntry(odd, b"app", revision)
        assert odd in [entry.key for entry in await reader.entries()]

        # Racing writers on the same revision: one wins, the other is told the revision moved.
        for round_ in range(20):
            current = await writer.get("rules.r_1")
            assert current is not None
            outcomes = await asyncio.gather(
                writer.put("rules.r_1", b"a%d" % round_, expected_revision=current.revision),
                reader.put("rules.r_1", b"b%d" % round_, expected_revision=current.revision),
                return_exceptions=True,
            )
            assert sorted(type(outcome).__name__ for outcome in outcomes) == ["RevisionMismatch", "int"]


async def test_a_compare_and_set_whose_answer_dies_with_its_server_still_succeeds(nats_cluster: NatsCluster) -> None:
    """The retried write meets its own first attempt (revision moved, value ours): success, not a conflict."""
    async with await JetStreamCluster.connect(settings_for(nats_cluster)) as probe:
        await probe.metadata_store()
        info = await probe.js.stream_info("KV_QUILL_META")
        leader = info.cluster.leader if info.cluster is not None else None
    follower = next(server for server in nats_cluster.servers if server.name != leader)
    async with await JetStreamCluster.connect(settings_for(nats_cluster, urls=(follower.url,))) as node:
        metadata = await node.metadata_store()
        first = await metadata.put("deployments.dp_lost", b"v1", expected_revision=0)
        write = asyncio.create_task(metadata.put("deployments.dp_lost", b"v2", expected_revision=first))
        await asyncio.sleep(0)  # the task sends its request
        await node.client.flush()  # the follower has taken it and passed it on
        follower.freeze()
        follower.kill()
        revision = await write
        assert revision > first
        assert await metadata.get("deployments.dp_lost") == MetadataEntry("deployments.dp_lost", b"v2", revision)
    nats_cluster.restart(follower)
