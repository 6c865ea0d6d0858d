"""A recorded command sequence for the determinism test, applied to a fresh store.

Run as ``python -m tests.unit.partition.scenario DIR``: applies the scenario in DIR and prints a
digest of every committed key and value. The test runs it in processes with different hash seeds
and different ``random`` states; apply must produce the same bytes every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
from pathlib import Path

from engine.ids import InvocationId, hashed_partition_key, scope_partition_key
from engine.limits.rules import LimitRule
from engine.partition.commands import AttemptEnding, Invoke, SetLimits, SetSchedule, Terminate
from engine.records import Schedule, Target
from tests.unit.partition.env import (
    EXCLUSIVE,
    PLAIN,
    WORKFLOW,
    Env,
    attempt,
    call,
    complete_promise,
    get_promise,
    invoke,
    output,
    set_state,
    sleep,
)


def _id(n: int, target: Target) -> str:
    """Fixed ids: the scenario is the same input every run; only apply could differ."""
    key = hashed_partition_key(target.service, target.key) if target.key else n * 7919
    return str(InvocationId.new(key, n))


def _invoke(n: int, target: Target, **kwargs: object) -> Invoke:
    return invoke(target, bytes([n]), invocation_id=_id(n, target), **kwargs)  # type: ignore[arg-type]


async def run(path: Path) -> str:
    random.seed(os.getpid())  # anything random inside apply would differ between runs
    async with Env(path, partitions=3) as env:
        greet, counter = Target("Greeter", "greet"), Target("Counter", "add", "k")
        run_wf, confirm = Target("Signup", "run", "u"), Target("Signup", "confirm", "u")
        a = _invoke(1, greet)
        b, c = _invoke(2, counter, settings=EXCLUSIVE), _invoke(3, counter, settings=EXCLUSIVE)
        wf = invoke(run_wf, b"", settings=WORKFLOW)
        for command in (a, b, c, wf):
            await env.submit(command)
        await env.advance(10)
        wake = env.clock.now + 500
        calls = call(Target("Counter", "add", "other"), b"9", id_notification=2, result=3)
        await env.submit(
            attempt(
                a.invocation_id,
                1,
                [sleep(wake, 1), calls],
                AttemptEnding.SUSPEND,
                awaiting=[1, 3],
                targets={"Counter/add": EXCLUSIVE},
            )
        )
        await env.submit(attempt(b.invocation_id, 1, [set_state(b"n", b"1"), set_state(b"m", b"2"), output(b"1")]))
        await env.submit(attempt(wf.invocation_id, 1, [get_promise("p", 1)], AttemptEnding.SUSPEND, awaiting=[1]))
        conf = _invoke(5, confirm, settings=PLAIN)
        await env.submit(conf)
        await env.submit(attempt(conf.invocation_id, 1, [complete_promise("p", b"v", 1), output(b"")]))
        schedule = Schedule(greet, a.input_entry, next_fire=env.clock.now + 100, period_ms=100, repetitions=2)
        owner = env.partitions[hashed_partition_key("Actor", "x") % 3]
        await env.submit(SetSchedule("Actor", "x", "reminder/r", schedule), owner)
        await env.advance(600)
        await env.submit(Terminate(c.invocation_id, kill=True))
        await env.submit(_invoke(6, greet, idempotency_key="ik", retention=5_000))
        # Flow control: two keys competing under a scope limit, a rule change admitting waiters.
        for partition in env.partitions:
            await env.submit(SetLimits(1, [LimitRule("ten", 2), LimitRule("ten/*", 1)]), partition)
        scoped = [
            invoke(greet, bytes([n]), invocation_id=str(InvocationId.new(scope_partition_key("ten"), 100 + n)),
                   scope="ten", limit_key=key)
            for n, key in enumerate(["a", "b", "a", "b", None, "a/x"])
        ]  # fmt: skip
        for command in scoped:
            await env.submit(command)
        await env.submit(attempt(scoped[0].invocation_id, 1, [output(b"")]))
        for partition in env.partitions:
            await env.submit(SetLimits(2, [LimitRule("ten", 4)]), partition)
        await env.advance(1)
        await env.store.flush()
        digest = hashlib.sha256()
        for column, entries in env.dump().items():
            for key, value in entries:
                digest.update(column.encode() + b"\0" + key + b"\0" + value + b"\n")
        return digest.hexdigest()


if __name__ == "__main__":
    print(asyncio.run(run(Path(sys.argv[1]))))
