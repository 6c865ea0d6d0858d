"""Workflows (run once, durable promises) and recurring invocations (schedules)."""

from __future__ import annotations

from pathlib import Path

from engine.ids import hashed_partition_key
from engine.partition.commands import AttemptEnding, SetSchedule
from engine.partition.effects import StartAttempt
from engine.protocol.codec import MessageType
from engine.records import Schedule, Target
from tests.unit.partition.env import (
    EXCLUSIVE,
    PLAIN,
    WORKFLOW,
    Env,
    attempt,
    complete_promise,
    get_promise,
    invoke,
    output,
)

RUN = Target("Signup", "run", "user-1")
CONFIRM = Target("Signup", "confirm", "user-1")


async def test_a_workflow_runs_once_per_key(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        first = invoke(RUN, b"a", settings=WORKFLOW)
        assert (await env.submit(first)).created
        again = invoke(RUN, b"b", settings=WORKFLOW)
        assert again.invocation_id == first.invocation_id
        assert not (await env.submit(again)).created
        await env.submit(attempt(first.invocation_id, 1, [output(b"done")]))
        retained = await env.submit(invoke(RUN, b"c", settings=WORKFLOW))
        assert not retained.created and retained.existing is not None  # completed: still once


async def test_a_promise_resolved_by_another_handler_resumes_the_run(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        run = invoke(RUN, settings=WORKFLOW)
        await env.submit(run)
        await env.submit(attempt(run.invocation_id, 1, [get_promise("email", 1)], AttemptEnding.SUSPEND, awaiting=[1]))
        confirm = invoke(CONFIRM, settings=PLAIN)
        await env.submit(confirm)
        await env.submit(attempt(confirm.invocation_id, 1, [complete_promise("email", b"ok", 1), output(b"")]))
        assert env.started(run.invocation_id) == [1, 2]
        _, journal = env.partition_of(run.invocation_id).reads.inspect(run.invocation_id) or (None, [])
        assert journal[-1][0] == MessageType.GET_PROMISE_COMPLETION
        # A second completion of the same promise is refused with 409 in the handler's journal.
        again = invoke(CONFIRM, settings=PLAIN)
        await env.submit(again)
        await env.submit(attempt(again.invocation_id, 1, [complete_promise("email", b"x", 1)], AttemptEnding.OPEN))
        _, journal = env.partition_of(again.invocation_id).reads.inspect(again.invocation_id) or (None, [])
        assert journal[-1][0] == MessageType.COMPLETE_PROMISE_COMPLETION
        assert b"already completed" in journal[-1][1]


async def test_a_schedule_fires_its_invocation_every_period_until_its_repetitions_end(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        target = Target("Actor", "remind/tick", "a1")
        entry = invoke(target).input_entry
        schedule = Schedule(target, entry, next_fire=env.clock.now + 1_000, period_ms=1_000, repetitions=3)
        # Schedules live with their object, in the object's partition.
        partition = env.partitions[hashed_partition_key("Actor", "a1") % env.count]
        assert await env.submit(SetSchedule("Actor", "a1", "reminder/tick", schedule), partition) is False
        fired: list[str] = []
        for _ in range(5):
            await env.advance(1_000)
            fired = [e.invocation_id for _, e in env.effects if isinstance(e, StartAttempt)]
            for invocation_id in fired:
                if env.started(invocation_id) == [1] and invocation_id not in env.completed:
                    await env.submit(attempt(invocation_id, 1, [output(b"")]))
        assert len(set(fired)) == 3
        assert partition.read_schedule("Actor", "a1", "reminder/tick") is None  # over: forgotten


async def test_replacing_a_schedule_disarms_the_old_timer(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=1) as env:
        target = Target("Actor", "remind/tick", "a1")
        entry = invoke(target, settings=EXCLUSIVE).input_entry
        first = Schedule(target, entry, next_fire=env.clock.now + 1_000)
        second = Schedule(target, entry, next_fire=env.clock.now + 5_000)
        await env.submit(SetSchedule("Actor", "a1", "reminder/tick", first), env.partitions[0])
        assert await env.submit(SetSchedule("Actor", "a1", "reminder/tick", second), env.partitions[0]) is True
        await env.advance(1_000)
        assert not any(isinstance(e, StartAttempt) for _, e in env.effects)
        await env.advance(4_000)
        assert sum(isinstance(e, StartAttempt) for _, e in env.effects) == 1
