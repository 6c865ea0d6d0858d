"""Flow control in the partition core: scoped invocations wait for a slot of their limits, FIFO per
scope / limit key, and get it when one frees (completion, kill, cancel, suspension, pause), when
the rules change, and after a restart in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ids import InvocationId, scope_partition_key
from engine.limits.rules import LimitRule
from engine.partition.commands import (
    AttemptEnding,
    InvocationSettings,
    Invoke,
    Pause,
    SetLimits,
    Signal,
    Terminate,
)
from engine.partition.types import OperatorOutcome
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import Completion, Failure, Phase, Target
from tests.unit.partition.env import PLAIN, WORKFLOW, Env, attempt, invoke, output, sleep

GREET = Target("Greeter", "greet")
SIGNUP = Target("Signup", "run", "wf1")


async def _rules(env: Env, version: int, *rules: tuple[str, int | None]) -> None:
    """The rule book reaches every partition as a command, as the facade sends it."""
    command = SetLimits(version, [LimitRule(pattern, concurrency) for pattern, concurrency in rules])
    for partition in env.partitions:
        await env.submit(command, partition)


def _scoped(limit_key: str | None = None, scope: str = "ten") -> Invoke:
    return invoke(GREET, b"x", scope=scope, limit_key=limit_key)


def _phase(env: Env, command: Invoke) -> Phase | None:
    return env.partition_of(command.invocation_id).reads.phase(command.invocation_id)


async def _finish(env: Env, command: Invoke) -> None:
    await env.submit(attempt(command.invocation_id, env.last_attempt(command.invocation_id), [output(b"done")]))


async def test_every_invocation_of_a_scope_lands_in_the_scope_partition(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=8) as env:
        partitions = {env.partition_of(_scoped(key, "s1").invocation_id).id for key in ("a", "b", None)}
        workflow = invoke(SIGNUP, settings=WORKFLOW, scope="s1")
        partitions.add(env.partition_of(workflow.invocation_id).id)
        assert len(partitions) == 1
        assert workflow.invocation_id != invoke(SIGNUP, settings=WORKFLOW).invocation_id


async def test_one_slot_per_limit_key_runs_them_one_at_a_time_in_order(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        first, second, third = _scoped("k1"), _scoped("k1"), _scoped("k1")
        for command in (first, second, third):
            await env.submit(command)
        assert env.started(first.invocation_id) == [1]
        assert _phase(env, second) is Phase.WAITING and _phase(env, third) is Phase.WAITING
        await _finish(env, first)
        assert env.started(second.invocation_id) == [1] and env.started(third.invocation_id) == []
        await _finish(env, second)
        assert env.started(third.invocation_id) == [1]


async def test_other_limit_keys_and_no_limit_key_run_together(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        commands = [_scoped("k1"), _scoped("k2"), _scoped("k3"), _scoped(None), _scoped(None)]
        for command in commands:
            await env.submit(command)
        assert all(env.started(c.invocation_id) == [1] for c in commands)


async def test_a_scope_rule_limits_the_whole_scope_with_or_without_limit_keys(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten", 2))
        a, b, c, d = _scoped("k1"), _scoped(None), _scoped("k2/x"), _scoped("k1")
        other_scope = _scoped("k1", scope="elsewhere")
        for command in (a, b, c, d, other_scope):
            await env.submit(command)
        assert [bool(env.started(x.invocation_id)) for x in (a, b, c, d)] == [True, True, False, False]
        assert env.started(other_scope.invocation_id) == [1]
        await _finish(env, b)
        assert env.started(c.invocation_id) == [1] and env.started(d.invocation_id) == []


async def test_the_most_specific_rule_wins_per_level(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        # Every scope may run 1 per key, but ten/vip is unlimited; the level-2 rule caps ten/*/x.
        await _rules(env, 1, ("*/*", 1), ("ten/vip", None), ("ten/*/x", 1))
        vip = [_scoped("vip"), _scoped("vip"), _scoped("vip")]
        for command in vip:
            await env.submit(command)
        assert all(env.started(c.invocation_id) for c in vip)
        x1, x2 = _scoped("vip/x"), _scoped("vip/x")
        await env.submit(x1)
        await env.submit(x2)
        assert env.started(x1.invocation_id) == [1] and _phase(env, x2) is Phase.WAITING
        plain1, plain2 = _scoped("k"), _scoped("k")
        await env.submit(plain1)
        await env.submit(plain2)
        assert _phase(env, plain2) is Phase.WAITING


async def test_rule_changes_take_effect_on_waiting_invocations(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        commands = [_scoped("k1") for _ in range(4)]
        for command in commands:
            await env.submit(command)
        assert sum(bool(env.started(c.invocation_id)) for c in commands) == 1
        await _rules(env, 2, ("ten/*", 3))
        assert [bool(env.started(c.invocation_id)) for c in commands] == [True, True, True, False]
        # Lowering a limit stops nobody who runs; the next waits until usage is below it.
        await _rules(env, 3, ("ten/*", 1))
        await _finish(env, commands[0])
        await _finish(env, commands[1])
        assert env.started(commands[3].invocation_id) == []
        await _rules(env, 4)  # every rule deleted: unlimited
        assert env.started(commands[3].invocation_id) == [1]


async def test_an_older_rule_book_is_ignored(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 2, ("ten/*", 1))
        await _rules(env, 1)
        first, second = _scoped("k"), _scoped("k")
        await env.submit(first)
        await env.submit(second)
        assert _phase(env, second) is Phase.WAITING


async def test_a_suspended_invocation_gives_its_slot_away_and_waits_for_one_when_woken(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        sleeper, next_one, later = _scoped("k"), _scoped("k"), _scoped("k")
        await env.submit(sleeper)
        await env.submit(next_one)
        wake = env.clock.now + 1_000
        await env.submit(attempt(sleeper.invocation_id, 1, [sleep(wake, 1)], AttemptEnding.SUSPEND, awaiting=[1]))
        assert _phase(env, sleeper) is Phase.SUSPENDED
        assert env.started(next_one.invocation_id) == [1]  # the suspended one holds nothing
        await env.submit(later)
        await env.advance(1_000)  # the sleep ends while next_one still runs
        assert _phase(env, sleeper) is Phase.WAITING
        await _finish(env, next_one)
        # The woken invocation keeps its place: it goes before the one that arrived after it.
        assert env.started(sleeper.invocation_id) == [1, 2] and env.started(later.invocation_id) == []


async def test_pause_releases_the_slot_and_resume_waits_for_one(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten", 1))
        first, second = _scoped(), _scoped()
        await env.submit(first)
        await env.submit(second)
        assert await env.submit(Pause(first.invocation_id)) is OperatorOutcome.DONE
        assert env.started(second.invocation_id) == [1]
        assert await env.submit(Pause(first.invocation_id, resume=True)) is OperatorOutcome.DONE
        assert _phase(env, first) is Phase.WAITING
        await _finish(env, second)
        assert len(env.started(first.invocation_id)) == 2  # its second attempt (pause made the first stale)


async def test_kill_and_cancel_of_waiting_invocations(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        running, killed, cancelled, last = (_scoped("k") for _ in range(4))
        for command in (running, killed, cancelled, last):
            await env.submit(command)
        assert await env.submit(Terminate(killed.invocation_id, kill=True)) is OperatorOutcome.DONE
        assert await env.submit(Terminate(cancelled.invocation_id, kill=False)) is OperatorOutcome.DONE
        assert env.completed[killed.invocation_id].completion == Completion(failure=Failure(409, "killed"))
        assert env.completed[cancelled.invocation_id].completion == Completion(failure=Failure(409, "cancelled"))
        assert env.started(killed.invocation_id) == env.started(cancelled.invocation_id) == []
        await _finish(env, running)
        assert env.started(last.invocation_id) == [1]


async def test_killing_a_running_invocation_frees_its_slot(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        running, waiting = _scoped("k"), _scoped("k")
        await env.submit(running)
        await env.submit(waiting)
        await env.submit(Terminate(running.invocation_id, kill=True))
        assert env.started(waiting.invocation_id) == [1]


async def test_cancel_of_an_invocation_waiting_after_a_suspension_reaches_it_when_it_runs(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten", 1))
        sleeper, other = _scoped(), _scoped()
        await env.submit(sleeper)
        await env.submit(attempt(sleeper.invocation_id, 1, [sleep(env.clock.now + 10, 1)], AttemptEnding.SUSPEND,
                                 awaiting=[1]))  # fmt: skip
        await env.submit(other)
        await env.advance(10)
        assert _phase(env, sleeper) is Phase.WAITING
        assert await env.submit(Terminate(sleeper.invocation_id, kill=False)) is OperatorOutcome.SIGNALLED
        await _finish(env, other)
        assert env.started(sleeper.invocation_id) == [1, 2]  # it runs, and its journal has the cancel
        status, _ = env.partition_of(sleeper.invocation_id).reads.inspect(sleeper.invocation_id) or (None, [])
        assert status is not None and 1 in status.signal_ids  # signal 1: the built-in CANCEL


async def test_waiting_invocations_and_held_slots_survive_a_restart_in_order(tmp_path: Path) -> None:
    commands = [_scoped("k") for _ in range(4)]
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        for command in commands:
            await env.submit(command)
        await env.store.flush()
    async with Env(tmp_path) as restarted:
        for partition in restarted.partitions:
            partition.recover()
        assert restarted.started(commands[0].invocation_id) == [1]  # running again, holding the slot
        assert all(_phase(restarted, c) is Phase.WAITING for c in commands[1:])
        for expected in commands[1:]:
            await _finish(restarted, commands[commands.index(expected) - 1])
            assert restarted.started(expected.invocation_id) == [1]
            assert all(not restarted.started(c.invocation_id) for c in commands[commands.index(expected) + 1 :])


async def test_sys_user_limits_rows(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten/*", 1))
        for command in (_scoped("k1"), _scoped("k1"), _scoped("k1")):
            await env.submit(command)
        rows = [row for p in env.partitions for row in p.reads.limit_usage()]
        scope_row, key_row = rows
        assert (scope_row.level, scope_row.usage, scope_row.concurrency_limit, scope_row.num_waiters) == (
            "Scope", 1, None, 0
        )
        assert (key_row.l1, key_row.level, key_row.usage, key_row.rule_pattern, key_row.available) == (
            "k1", "Level1", 1, "ten/*", 0
        )
        assert key_row.num_waiters == 2


async def test_a_signal_to_a_waiting_invocation_is_journaled_for_later(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        await _rules(env, 1, ("ten", 1))
        first, second = _scoped(), _scoped()
        await env.submit(first)
        await env.submit(second)
        await env.submit(Signal(second.invocation_id, 17, None, b"v"))
        assert _phase(env, second) is Phase.WAITING and env.pushed(second.invocation_id) == []
        await _finish(env, first)
        assert env.started(second.invocation_id) == [1]  # it runs with the signal in its journal
        status, journal = env.partition_of(second.invocation_id).reads.inspect(second.invocation_id) or (None, [])
        assert status is not None and 17 in status.signal_ids
        notifications = [payload for kind, payload in journal if kind == MessageType.SIGNAL_NOTIFICATION]
        signals = [pb.SignalNotificationMessage.FromString(payload) for payload in notifications]
        assert [(n.idx, n.value.content) for n in signals] == [(17, b"v")]


def _scoped_call(scope: str | None, limit_key: str | None) -> tuple[int, bytes]:
    message = pb.CallCommandMessage(
        service_name="Greeter", handler_name="greet", invocation_id_notification_idx=1, result_completion_id=2
    )
    if scope is not None:
        message.scope = scope
    if limit_key is not None:
        message.limit_key = limit_key
    return MessageType.CALL_COMMAND, message.SerializeToString()


def _callee(env: Env, caller: Invoke) -> str:
    active = env.partition_of(caller.invocation_id).state.active[caller.invocation_id]
    notification = next(p for t, p in active.journal if t == MessageType.CALL_INVOCATION_ID_COMPLETION)
    return pb.CallInvocationIdCompletionNotificationMessage.FromString(notification).invocation_id


async def test_calls_from_handlers_carry_their_scope_and_limit_key(tmp_path: Path) -> None:
    async with Env(tmp_path, partitions=4) as env:
        await _rules(env, 1, ("ten/*", 1))
        callers = [invoke(GREET, b"a"), invoke(GREET, b"b")]
        for caller in callers:
            await env.submit(caller)
            await env.submit(
                attempt(caller.invocation_id, 1, [_scoped_call("ten", "k")], AttemptEnding.SUSPEND, awaiting=[2],
                        targets={"Greeter/greet": PLAIN})
            )  # fmt: skip
        first, second = (_callee(env, caller) for caller in callers)
        home = env.partition_of(str(InvocationId.new(scope_partition_key("ten"))))
        assert env.partition_of(first) is home and env.partition_of(second) is home
        assert env.started(first) == [1] and home.reads.phase(second) is Phase.WAITING
        status, _ = home.reads.inspect(second) or (None, None)
        assert status is not None and (status.scope, status.limit_key) == ("ten", "k")


@pytest.mark.parametrize(
    ("scope", "limit_key", "message"),
    [
        ("a b", None, "the provided scope 'a b' is invalid: value contains characters outside the allowed set"
                      " [a-zA-Z0-9_.-]"),
        ("ten", "a/b/c", "the provided limit key 'a/b/c' is invalid: too many path components in the given"
                         " limit-key (max 2)"),
        (None, "k", "limit key was provided without a scope. Limit keys take effect only when used in combination"
                    " with scope"),
    ],
)  # fmt: skip
async def test_bad_scopes_in_calls_fail_the_call(
    tmp_path: Path, scope: str | None, limit_key: str | None, message: str
) -> None:
    async with Env(tmp_path) as env:
        caller = invoke(GREET)
        await env.submit(caller)
        await env.submit(
            attempt(caller.invocation_id, 1, [_scoped_call(scope, limit_key)], AttemptEnding.SUSPEND, awaiting=[2],
                    targets={"Greeter/greet": PLAIN})
        )  # fmt: skip
        active = env.partition_of(caller.invocation_id).state.active[caller.invocation_id]
        result = pb.CallCompletionNotificationMessage.FromString(active.journal[-1][1])
        assert (result.failure.code, result.failure.message) == (400, message)


async def test_a_scoped_call_to_a_virtual_object_fails(tmp_path: Path) -> None:
    async with Env(tmp_path) as env:
        caller = invoke(GREET)
        await env.submit(caller)
        virtual_object = InvocationSettings(exclusive=True, workflow_run=False, retention_ms=0, virtual_object=True)
        await env.submit(
            attempt(caller.invocation_id, 1, [_scoped_call("ten", None)], AttemptEnding.SUSPEND, awaiting=[2],
                    targets={"Greeter/greet": virtual_object})
        )  # fmt: skip
        active = env.partition_of(caller.invocation_id).state.active[caller.invocation_id]
        result = pb.CallCompletionNotificationMessage.FromString(active.journal[-1][1])
        assert result.failure.message == "scope is not supported for Virtual Object targets"
