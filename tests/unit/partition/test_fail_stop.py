"""A bug while applying a command stops its partition loudly, commits nothing half-applied, and
a restart recovers the partition from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import Unavailable
from engine.ids import InvocationId
from engine.partition.effects import Step
from engine.partition.lifecycle import Lifecycle
from engine.records import Target
from engine.storage import keys
from tests.unit.partition.env import Env, attempt, invoke, output

GREET = Target("Greeter", "greet")


async def test_a_command_that_raises_stops_its_partition_and_commits_nothing_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with Env(tmp_path, partitions=1) as env:
        done = invoke(GREET, b"kept")
        await env.submit(done)
        broken = invoke(GREET, b"broken")
        original = Lifecycle.invoke

        def invoke_then_fail(self: Lifecycle, command: object, step: Step) -> object:
            result = original(self, command, step)  # type: ignore[arg-type]  # stages its writes...
            if command is broken:
                raise RuntimeError("an injected bug")  # ...then fails half-way
            return result

        monkeypatch.setattr(Lifecycle, "invoke", invoke_then_fail)
        partition = env.partitions[0]
        waiter = partition.waiters.wait(done.invocation_id)
        with pytest.raises(Unavailable) as refused:
            await partition.submit(broken)
        assert refused.value.status == 503
        assert "partition 0" in str(refused.value)
        assert "an injected bug" in caplog.text and "Invoke" in caplog.text
        with pytest.raises(Unavailable):
            await waiter  # callers waiting on the partition are answered, not left hanging
        with pytest.raises(Unavailable):
            await partition.submit(attempt(done.invocation_id, 1, [output(b"late")]))
        await env.store.flush()
        committed = dict(env.store.scan(keys.STATUS, b""))
        assert keys.invocation_key(0, bytes.fromhex(_raw(done.invocation_id))) in committed
        assert keys.invocation_key(0, bytes.fromhex(_raw(broken.invocation_id))) not in committed
    monkeypatch.undo()
    async with Env(tmp_path, partitions=1) as restarted:
        partition = restarted.partitions[0]
        partition.recover()
        assert partition.failure is None
        assert restarted.started(done.invocation_id) == [1]  # recovered from disk, running again
        assert partition.reads.phase(broken.invocation_id) is None
        await restarted.submit(attempt(done.invocation_id, 1, [output(b"ok")]))
        assert done.invocation_id in restarted.completed


async def test_a_failing_effect_stops_the_partition(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with Env(tmp_path, partitions=1) as env:

        def broken_runtime(*_: object) -> None:
            raise RuntimeError("an effect bug")

        env.execute = broken_runtime  # type: ignore[method-assign]
        partition = env.partitions[0]
        with pytest.raises(Unavailable):
            await partition.submit(invoke(GREET))
        assert partition.failure is not None and "an effect bug" in caplog.text
        with pytest.raises(Unavailable):
            await partition.submit(invoke(GREET))


def _raw(invocation_id: str) -> str:
    return InvocationId(invocation_id).to_bytes().hex()
