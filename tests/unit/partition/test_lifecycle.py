"""The partition state machine, in process: apply commands, assert the effects and the state."""

from __future__ import annotations

from pathlib import Path

from engine.partition.commands import AttemptEnding, Purge, Terminate
from engine.partition.effects import ArmTimer, StartAttempt
from engine.partition.types import InvokeResult, OperatorOutcome
from engine.protocol.codec import MessageType
from engine.records import Completion, Failure, Phase, Target
from tests.unit.partition.env import (
    EXCLUSIVE,
    PLAIN,
    Env,
    attempt,
    call,
    invoke,
    output,
    set_state,
    sleep,
)

GREET = Target("Greeter", "greet")
COUNTER = Target("Counter", "add", "k")


async def test_an_invocation_runs_one_attempt_and_answers_its_callers(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        command = invoke(GREET, b'"Mary"')
        result = await env.submit(command)
        assert result == InvokeResult(True)
        assert env.started(command.invocation_id) == [1]
        assert await env.submit(attempt(command.invocation_id, 1, [output(b'"Hello Mary"')])) is True
        assert env.completed[command.invocation_id].completion == Completion(value=b'"Hello Mary"')
        # Not retained (no idempotency key): nothing is left of it.
        assert env.partition_of(command.invocation_id).reads.view(command.invocation_id) is None


async def test_a_stale_attempt_is_ignored(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        command = invoke(GREET)
        await env.submit(command)
        assert await env.submit(attempt(command.invocation_id, 7, [output(b"x")])) is False
        assert command.invocation_id not in env.completed


async def test_an_idempotency_key_latches_repeats_onto_the_first_and_keeps_its_result(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        first = invoke(GREET, b"1", idempotency_key="k1", retention=60_000)
        assert (await env.submit(first)).created
        repeat = invoke(GREET, b"2", idempotency_key="k1", retention=60_000)
        assert repeat.invocation_id == first.invocation_id
        assert await env.submit(repeat) == InvokeResult(False)
        assert env.started(first.invocation_id) == [1]  # the repeat started nothing
        await env.submit(attempt(first.invocation_id, 1, [output(b"one")]))
        later = await env.submit(invoke(GREET, b"3", idempotency_key="k1", retention=60_000))
        assert later.created is False and later.existing is not None
        assert later.existing.completion == Completion(value=b"one")
        assert later.existing.expires == env.clock.now + 60_000


async def test_exclusive_handlers_of_one_key_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        first, second, third = (invoke(COUNTER, bytes([i]), settings=EXCLUSIVE) for i in range(3))
        for command in (first, second, third):
            await env.submit(command)
        partition = env.partition_of(first.invocation_id)
        assert partition.reads.phase(second.invocation_id) is Phase.INBOXED
        assert env.started(second.invocation_id) == []
        await env.submit(attempt(first.invocation_id, 1, [set_state(b"n", b"1"), output(b"1")]))
        assert env.started(second.invocation_id) == [1]  # the lock passed to the next in line
        assert partition.reads.phase(third.invocation_id) is Phase.INBOXED
        await env.submit(attempt(second.invocation_id, 1, [output(b"2")]))
        assert env.started(third.invocation_id) == [1]
        assert partition.reads.read_state("Counter", "k", b"n") == b"1"


async def test_a_sleep_suspends_until_its_timer_fires(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        command = invoke(GREET)
        await env.submit(command)
        wake = env.clock.now + 5_000
        await env.submit(attempt(command.invocation_id, 1, [sleep(wake, 1)], AttemptEnding.SUSPEND, awaiting=[1]))
        partition = env.partition_of(command.invocation_id)
        assert partition.reads.phase(command.invocation_id) is Phase.SUSPENDED
        assert [t.timer.fire_at for t in env.timers] == [wake]
        await env.advance(4_999)
        assert env.started(command.invocation_id) == [1]
        await env.advance(1)
        assert env.started(command.invocation_id) == [1, 2]  # resumed with the completion journaled
        status, journal = partition.reads.inspect(command.invocation_id) or (None, [])
        assert journal[-1][0] == MessageType.SLEEP_COMPLETION


async def test_a_delayed_invocation_starts_at_its_execution_time(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        command = invoke(GREET, execution_time=env.clock.now + 10_000)
        await env.submit(command)
        assert env.partition_of(command.invocation_id).reads.phase(command.invocation_id) is Phase.SCHEDULED
        assert env.started(command.invocation_id) == []
        await env.advance(10_000)
        assert env.started(command.invocation_id) == [1]


async def test_cancel_signals_a_running_invocation_and_kill_completes_it(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        cancelled, killed = invoke(GREET), invoke(GREET)
        await env.submit(cancelled)
        await env.submit(killed)
        assert await env.submit(Terminate(cancelled.invocation_id, kill=False)) is OperatorOutcome.SIGNALLED
        assert MessageType.SIGNAL_NOTIFICATION in env.pushed(cancelled.invocation_id)
        assert await env.submit(Terminate(killed.invocation_id, kill=True)) is OperatorOutcome.DONE
        assert env.completed[killed.invocation_id].completion == Completion(failure=Failure(409, "killed"))
        assert await env.submit(Terminate(killed.invocation_id, kill=True)) is OperatorOutcome.NOT_FOUND


async def test_cancelling_what_has_not_started_completes_it_at_once(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        holder, queued = invoke(COUNTER, settings=EXCLUSIVE), invoke(COUNTER, settings=EXCLUSIVE)
        delayed = invoke(GREET, execution_time=env.clock.now + 60_000)
        for command in (holder, queued, delayed):
            await env.submit(command)
        assert await env.submit(Terminate(queued.invocation_id, kill=False)) is OperatorOutcome.DONE
        assert await env.submit(Terminate(delayed.invocation_id, kill=False)) is OperatorOutcome.DONE
        assert env.completed[queued.invocation_id].completion == Completion(failure=Failure(409, "cancelled"))
        await env.submit(attempt(holder.invocation_id, 1, [output(b"")]))
        assert env.started(queued.invocation_id) == []  # it left the inbox
        await env.advance(60_000)
        assert env.started(delayed.invocation_id) == []  # its timer finds nothing to start


async def test_a_retained_result_is_purged_when_its_retention_ends(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        command = invoke(GREET, idempotency_key="k", retention=1_000)
        await env.submit(command)
        await env.submit(attempt(command.invocation_id, 1, [output(b"v")]))
        partition = env.partition_of(command.invocation_id)
        assert partition.reads.expired(env.clock.now, 10) == []
        await env.advance(1_000)
        expired = partition.reads.expired(env.clock.now, 10)
        assert expired == [command.invocation_id]
        assert await env.submit(Purge(expired, expired=True)) is OperatorOutcome.PURGED
        assert partition.reads.view(command.invocation_id) is None
        assert (await env.submit(invoke(GREET, idempotency_key="k", retention=1_000))).created


async def test_a_call_runs_in_the_callees_partition_and_its_result_resumes_the_caller(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=4) as env:
        caller = invoke(GREET)
        await env.submit(caller)
        callee_target = Target("Counter", "add", "other")
        entry = call(callee_target, b"5", id_notification=1, result=2)
        outcome = attempt(
            caller.invocation_id, 1, [entry], AttemptEnding.SUSPEND, awaiting=[2], targets={"Counter/add": EXCLUSIVE}
        )
        await env.submit(outcome)
        _, journal = env.partition_of(caller.invocation_id).reads.inspect(caller.invocation_id) or (None, [])
        assert journal[-1][0] == MessageType.CALL_INVOCATION_ID_COMPLETION
        callee = next(
            e.invocation_id
            for _, e in env.effects
            if isinstance(e, StartAttempt) and e.invocation_id != caller.invocation_id
        )
        await env.submit(attempt(callee, 1, [output(b"6")]))
        assert env.started(caller.invocation_id) == [1, 2]
        _, journal = env.partition_of(caller.invocation_id).reads.inspect(caller.invocation_id) or (None, [])
        assert journal[-1][0] == MessageType.CALL_COMPLETION


async def test_a_call_to_an_unknown_handler_fails_the_call(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        caller = invoke(GREET)
        await env.submit(caller)
        entry = call(Target("Nope", "x"), b"", id_notification=1, result=2)
        await env.submit(attempt(caller.invocation_id, 1, [entry], AttemptEnding.SUSPEND, awaiting=[2]))
        assert env.started(caller.invocation_id) == [1, 2]  # resumed by the 404 completion


async def test_timers_are_rearmed_and_running_invocations_restarted_after_a_restart(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        running, sleeping = invoke(GREET), invoke(GREET)
        await env.submit(running)
        await env.submit(sleeping)
        wake = env.clock.now + 5_000
        await env.submit(attempt(sleeping.invocation_id, 1, [sleep(wake, 1)], AttemptEnding.SUSPEND, awaiting=[1]))
    async with Env(tmp_path) as restarted:
        for partition in restarted.partitions:
            partition.recover()
        assert restarted.started(running.invocation_id) == [1]
        assert restarted.started(sleeping.invocation_id) == []
        assert [t.timer.fire_at for t in restarted.timers] == [wake]
        await restarted.advance(5_000)
        assert restarted.started(sleeping.invocation_id) == [1]


async def test_plain_settings_take_no_lock(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        shared = Target("Counter", "get", "k")
        first, second = invoke(shared, settings=PLAIN), invoke(shared, settings=PLAIN)
        await env.submit(first)
        await env.submit(second)
        assert env.started(first.invocation_id) == [1] and env.started(second.invocation_id) == [1]
        assert not any(isinstance(e, ArmTimer) for _, e in env.effects)
