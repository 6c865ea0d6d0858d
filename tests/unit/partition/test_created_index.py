"""The CREATED index (the admin's invocation lists by creation time) follows the stored statuses:
written at creation, gone when the status goes (completion without retention, purge), and the
pages read from it come newest first, per service, resumable."""

from __future__ import annotations

from pathlib import Path

from engine.partition.commands import Purge
from engine.partition.reads import InvocationFilter
from engine.records import Target
from engine.storage import keys
from tests.unit.partition.env import Env, attempt, invoke, output

GREET = Target("Greeter", "greet")
OTHER = Target("Other", "run")


async def _completed(env: Env, target: Target, retention: int, key: str) -> str:
    command = invoke(target, idempotency_key=key, retention=retention)
    await env.submit(command)
    await env.submit(attempt(command.invocation_id, 1, [output(b"done")]))
    env.clock.now += 1
    return command.invocation_id


async def test_index_entries_live_exactly_as_long_as_the_status(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=1) as env:
        running = invoke(GREET)
        await env.submit(running)
        assert len(env.dump()[keys.CREATED]) == 2  # by time, and by service
        await env.submit(attempt(running.invocation_id, 1, [output(b"x")]))
        assert env.dump()[keys.CREATED] == []  # not retained: nothing left of it
        kept = await _completed(env, GREET, 60_000, "k")
        assert len(env.dump()[keys.CREATED]) == 2
        await env.submit(Purge([kept], expired=False))
        assert env.dump()[keys.CREATED] == []


async def test_completed_pages_newest_first_per_service_and_resumable(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=1) as env:
        greets = [await _completed(env, GREET, 60_000, f"g{i}") for i in range(5)]
        others = [await _completed(env, OTHER, 60_000, f"o{i}") for i in range(3)]
        unfinished = invoke(GREET)
        await env.submit(unfinished)
        reads = env.partitions[0].reads

        page, after = reads.completed_page(InvocationFilter(), None, 4)
        assert [s.id for s in page] == [*reversed(others), greets[4]]
        rest, end = reads.completed_page(InvocationFilter(), after, 100)
        assert [s.id for s in rest] == list(reversed(greets[:4])) and end is None

        oldest_first = InvocationFilter(services=["Greeter"], newest_first=False)
        ids: list[str] = []
        after = None
        while True:
            page, after = reads.completed_page(oldest_first, after, 2)
            ids += [s.id for s in page]
            if after is None:
                break
        assert ids == greets  # the unfinished one is not completed: only the memory lists it

        first = env.clock.now - 8  # created_at of greets[0]
        window = InvocationFilter(created_from=first + 1, created_to=first + 3)
        assert [s.id for s in reads.completed_page(window, None, 10)[0]] == [greets[2], greets[1]]
        assert [s.id for s in reads.unfinished_matching(InvocationFilter(services=["Greeter"]), None)] == [
            unfinished.invocation_id
        ]


async def test_a_page_keeps_ties_on_creation_time_together(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=1) as env:
        ids = []
        for i in range(4):
            command = invoke(GREET, idempotency_key=f"t{i}", retention=60_000)
            await env.submit(command)  # all four created at the same ms
            await env.submit(attempt(command.invocation_id, 1, [output(b"done")]))
            ids.append(command.invocation_id)
        page, _ = env.partitions[0].reads.completed_page(InvocationFilter(), None, 2)
        assert sorted(s.id for s in page) == sorted(ids)


async def test_an_unordered_read_of_everything_pages_through_the_stored_statuses(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=1) as env:
        kept = {await _completed(env, GREET, 60_000, f"s{i}") for i in range(5)}
        await env.submit(invoke(GREET))  # unfinished: not among the completed
        reads = env.partitions[0].reads
        seen: list[str] = []
        after = None
        while True:
            page, after = reads.completed_page(InvocationFilter(), after, 2, ordered=False)
            seen += [s.id for s in page]
            if after is None:
                break
        assert sorted(seen) == sorted(kept)
