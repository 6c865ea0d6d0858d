"""Flow-control admission cost in the partition core, with many limit keys waiting.

    python -m benchmarks.admission --keys 100,1000,10000 --ops 3000

For each number of keys N, a fresh partition (real RocksDB store in a temp dir, effects recorded,
no sockets) gets a rule and N keys with one invocation running and one waiting each, then:

* ``arrive``: ``--ops`` new invocations of existing keys, each of which has to wait;
* ``release``: ``--ops`` running invocations complete, each admitting its key's next one;
* with ``--shape scope`` the rule is ``bench`` (one limit for the scope, ``N // 10`` slots) instead
  of ``bench/*`` (one slot per key): every completion then picks the oldest waiter among N keys;
* with ``--shape none`` there is no rule: the apply cost of a scoped invocation against an
  unscoped one (Invoke and completion).

What is timed is the apply of each command (``Partition.submit``, which applies synchronously and
stages the writes); group commits run in between, untimed. ``unscoped`` is the same completion
without flow control, for reference. Times are microseconds per command (median of batches).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.ids import InvocationId, scope_partition_key
from engine.limits.rules import LimitRule
from engine.partition.admission import Admission
from engine.partition.commands import AttemptEnding, AttemptOutcome, Command, Invoke, SetLimits
from engine.partition.effects import Effect, StartAttempt, Step
from engine.partition.processor import Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import InvocationStatus, Phase, Target, now_ms
from engine.storage.store import Store

_TARGET = Target("Bench", "noop")
_INPUT = pb.InputCommandMessage(value=pb.Value(content=b'"hi"')).SerializeToString()
_OUTPUT = [(MessageType.OUTPUT_COMMAND, pb.OutputCommandMessage(value=pb.Value(content=b"1")).SerializeToString())]
_BATCH = 250


class _Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        self.started.extend(e.invocation_id for e in effects if isinstance(e, StartAttempt))


class _Bench:
    def __init__(self, path: Path, scope: str | None) -> None:
        self.store = Store(path)
        self.runtime = _Recorder()
        self.partition = Partition(0, self.store, self.runtime, now_ms, 1_000_000)
        self.scope = scope
        self.serial = 0

    def invoke(self, key: str | None) -> Invoke:
        self.serial += 1
        partition_key = scope_partition_key(self.scope) if self.scope is not None else self.serial
        invocation_id = str(InvocationId.new(partition_key, self.serial))
        return Invoke(invocation_id, _TARGET, _INPUT, scope=self.scope, limit_key=key if self.scope else None)

    async def timed(self, next_batch: Callable[[int], list[Command]], total: int, batch: int = _BATCH) -> list[float]:
        """Apply ``total`` commands, ``next_batch(n)`` making each batch (after the previous one is
        durable and its effects ran); the apply time per command of each batch, in µs."""
        per_op: list[float] = []
        done = 0
        while done < total:
            commands = next_batch(min(batch, total - done))
            if not commands:
                break
            began = time.thread_time()  # CPU of this thread: apply runs here, the fsync elsewhere
            for command in commands:
                self.partition.submit_detached(command)
            per_op.append((time.thread_time() - began) * 1e6 / len(commands))
            await self.store.flush()
            done += len(commands)
        return per_op

    async def apply(self, commands: list[Command]) -> None:
        for command in commands:
            self.partition.submit_detached(command)
        await self.store.flush()

    def completions(self, count: int) -> list[Command]:
        """Complete the ``count`` longest-running invocations (their first attempt)."""
        running, self.runtime.started = self.runtime.started[:count], self.runtime.started[count:]
        return [AttemptOutcome(i, 1, "dp_bench", list(_OUTPUT), AttemptEnding.END) for i in running]


async def _case(keys: int, ops: int, shape: str) -> dict[str, float]:
    slots = keys if shape == "key" else max(keys // 10, 1)
    with tempfile.TemporaryDirectory(prefix="quill-admission-") as tmp:
        bench = _Bench(Path(tmp), "bench")
        bench.store.start()
        try:
            rule = LimitRule("bench/*", 1) if shape == "key" else LimitRule("bench", slots)
            await bench.apply([SetLimits(1, [rule])])
            names = [f"k{n}" for n in range(keys)]
            await bench.apply([bench.invoke(name) for name in names for _ in range(2)])
            arrivals = iter(range(ops))
            arrive = await bench.timed(lambda n: [bench.invoke(names[next(arrivals) % keys]) for _ in range(n)], ops)
            release = await bench.timed(bench.completions, ops, min(_BATCH, slots))
        finally:
            await bench.store.close()
    with tempfile.TemporaryDirectory(prefix="quill-admission-") as tmp:
        plain = _Bench(Path(tmp), None)
        plain.store.start()
        try:
            await plain.apply([plain.invoke(None) for _ in range(ops)])
            unscoped = await plain.timed(plain.completions, ops)
        finally:
            await plain.store.close()
    return {
        "arrive_us": statistics.median(arrive),
        "release_us": statistics.median(release),
        "unscoped_release_us": statistics.median(unscoped),
    }


async def _lifecycle(scope: str | None, ops: int) -> float:
    """µs of apply per invocation (its Invoke and its completion), no rule: what a scope costs."""
    with tempfile.TemporaryDirectory(prefix="quill-admission-") as tmp:
        bench = _Bench(Path(tmp), scope)
        bench.store.start()
        try:
            invokes = iter([bench.invoke("k" if scope else None) for _ in range(ops)])
            arrive = await bench.timed(lambda n: [next(invokes) for _ in range(n)], ops)
            release = await bench.timed(bench.completions, ops)
        finally:
            await bench.store.close()
    return statistics.median(arrive) + statistics.median(release)


def _admission_only(keys: int, ops: int, shape: str) -> tuple[float, float]:
    """The admission structure alone (no store, no journal): µs per arrival that has to wait,
    and per release that hands the slot to the next waiter, with ``keys`` keys waiting."""
    running: deque[str] = deque()
    admission = Admission(lambda invocation_id, step: running.append(invocation_id))
    slots = keys if shape == "key" else max(keys // 10, 1)
    admission.set_rules(1, [LimitRule("bench/*", 1) if shape == "key" else LimitRule("bench", slots)], None)
    statuses = [
        InvocationStatus(f"inv{n}", _TARGET, Phase.RUNNING, 0, 0, scope="bench", limit_key=f"k{n % keys}")
        for n in range(2 * keys + ops)
    ]
    running.extend(s.id for s in statuses[: 2 * keys] if admission.request(s, 1))
    gc.collect()  # a full collection of the set-up's garbage must not land in the timed loop
    began = time.thread_time()
    for status in statuses[2 * keys :]:
        admission.request(status, 2)
    arrive = (time.thread_time() - began) * 1e6 / ops
    step = Step(0)
    gc.collect()
    began = time.thread_time()
    for _ in range(ops):
        admission.release(running.popleft(), step)
    release = (time.thread_time() - began) * 1e6 / ops
    return arrive, release


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admission", description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="100,1000,10000", help="numbers of waiting limit keys")
    parser.add_argument("--ops", type=int, default=3000, help="timed commands per phase")
    parser.add_argument(
        "--shape", choices=["key", "scope", "none"], default="key",
        help="rule bench/* (per key) or bench (the scope); none: scoped vs unscoped without rules",
    )  # fmt: skip
    args = parser.parse_args()
    if args.shape == "none":
        for _ in range(3):
            unscoped, scoped = asyncio.run(_lifecycle(None, args.ops)), asyncio.run(_lifecycle("bench", args.ops))
            print(f"apply µs per invocation, no rule: unscoped {unscoped:.1f}, scoped {scoped:.1f}")
        return
    print(
        "| waiting keys | rule | arrive: apply µs | arrive: admission µs | release: apply µs"
        " | release: admission µs | unscoped release: apply µs |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for keys in (int(k) for k in args.keys.split(",")):
        result = asyncio.run(_case(keys, args.ops, args.shape))
        arrive, release = _admission_only(keys, args.ops, args.shape)
        rule = "bench/* = 1" if args.shape == "key" else f"bench = {max(keys // 10, 1)}"
        print(
            f"| {keys} | {rule} | {result['arrive_us']:.1f} | {arrive:.2f} | {result['release_us']:.1f}"
            f" | {release:.2f} | {result['unscoped_release_us']:.1f} |"
        )


if __name__ == "__main__":
    main()
