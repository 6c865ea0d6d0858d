"""Cancel and kill of an invocation that has not started (delayed, or inboxed behind a busy key):
as in Restate it is answered at once and then forgotten, not kept as a cancelled result."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.partition.commands import Terminate
from engine.partition.types import OperatorOutcome
from engine.records import Completion, Failure, Phase, Target
from tests.unit.partition.env import EXCLUSIVE, Env, attempt, invoke, output

GREET = Target("Greeter", "greet")
COUNTER = Target("Counter", "add", "k")
RETAINED = 86_400_000  # a day, as an idempotency key keeps a result


@pytest.mark.parametrize("kill", [False, True])
async def test_a_delayed_invocation_is_forgotten_and_its_idempotency_key_is_free(tmp_path: Path, kill: bool) -> None:
    async with Env(tmp_path) as env:
        delayed = invoke(GREET, idempotency_key="ik", retention=RETAINED, execution_time=env.clock.now + 60_000)
        await env.submit(delayed)
        partition = env.partition_of(delayed.invocation_id)
        assert partition.reads.phase(delayed.invocation_id) is Phase.SCHEDULED

        assert await env.submit(Terminate(delayed.invocation_id, kill=kill)) is OperatorOutcome.DONE
        failure = Failure(409, "killed" if kill else "cancelled")
        assert env.completed[delayed.invocation_id].completion == Completion(failure=failure)  # waiters answered
        assert partition.reads.view(delayed.invocation_id) is None  # nothing kept: output is 404
        assert await env.submit(Terminate(delayed.invocation_id, kill=kill)) is OperatorOutcome.NOT_FOUND

        again = invoke(GREET, idempotency_key="ik", retention=RETAINED, execution_time=env.clock.now + 60_000)
        assert again.invocation_id == delayed.invocation_id
        assert (await env.submit(again)).created  # the same key makes a new invocation, same id
        await env.advance(60_000)
        assert env.started(delayed.invocation_id) == [1]  # once: the cancelled one's timer starts nothing


async def test_an_inboxed_invocation_is_forgotten_and_leaves_the_inbox(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        holder = invoke(COUNTER, settings=EXCLUSIVE, retention=RETAINED)
        queued = invoke(COUNTER, b"1", settings=EXCLUSIVE, retention=RETAINED)
        behind = invoke(COUNTER, b"2", settings=EXCLUSIVE, retention=RETAINED)
        for command in (holder, queued, behind):
            await env.submit(command)
        partition = env.partition_of(queued.invocation_id)
        assert partition.reads.phase(queued.invocation_id) is Phase.INBOXED

        assert await env.submit(Terminate(queued.invocation_id, kill=False)) is OperatorOutcome.DONE
        assert env.completed[queued.invocation_id].completion == Completion(failure=Failure(409, "cancelled"))
        assert partition.reads.view(queued.invocation_id) is None

        await env.submit(attempt(holder.invocation_id, 1, [output(b"0")]))
        assert env.started(queued.invocation_id) == []
        assert env.started(behind.invocation_id) == [1]  # the lock went to the next one in line
        assert partition.reads.view(holder.invocation_id) is not None  # a finished one is still retained
