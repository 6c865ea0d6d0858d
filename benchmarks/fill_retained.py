"""Fill a data dir with N retained (completed, idempotent) invocations, fast: the partition core
applies Invoke and a one-output attempt for each, in process, exactly as the server would, minus
HTTP and the SDK. Used by ``benchmarks/ui_paint.py`` and to measure ``/query`` at scale.

    python -m benchmarks.fill_retained --data-dir /tmp/q1m --count 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.ids import InvocationId
from engine.partition.commands import AttemptEnding, AttemptOutcome, Invoke
from engine.partition.effects import Effect
from engine.partition.processor import Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import Target, now_ms
from engine.storage import keys
from engine.storage.store import Store

DAY_MS = 86_400_000
_BATCH = 5000


class _NoRuntime:
    """Effects (attempts to start, callers to answer) have nobody to go to here."""

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        return None


async def fill(data_dir: Path, count: int, partitions: int, spacing_ms: int = 2) -> None:
    store = Store(data_dir)
    store.start()
    try:
        store.put(keys.META, keys.PARTITION_COUNT_KEY, str(partitions).encode())
        store.put(keys.META, keys.UNFINISHED_INDEX_KEY, b"1")
        store.put(keys.META, keys.CREATED_INDEX_KEY, b"1")
        start = now_ms() - count * spacing_ms  # creation times spread up to now
        clock = _Clock(start)
        cores = [Partition(p, store, _NoRuntime(), clock, 1000) for p in range(partitions)]
        target = Target("Bench", "noop")
        output = pb.OutputCommandMessage(value=pb.Value(content=b'"ok"')).SerializeToString()
        began = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        for i in range(count):
            key = f"fill-{i}"
            invocation_id = str(InvocationId.for_idempotent("Bench", "", "noop", key))
            entry = pb.InputCommandMessage(value=pb.Value(content=f'"{key}"'.encode())).SerializeToString()
            core = cores[InvocationId(invocation_id).partition_key % partitions]
            clock.now = start + i * spacing_ms
            invoke = Invoke(
                invocation_id=invocation_id,
                target=target,
                input_entry=entry,
                execution_time=None,
                exclusive=False,
                retention=DAY_MS,
                idempotency_key=key,
            )
            pending.append(core.submit(invoke))
            entries = [(MessageType.OUTPUT_COMMAND, output)]
            ending = AttemptOutcome(invocation_id, 1, "dp_fill", entries, AttemptEnding.END)
            pending.append(core.submit(ending))
            if len(pending) >= 2 * _BATCH:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await store.flush()
        print(f"{count} retained invocations in {time.perf_counter() - began:.1f}s into {data_dir}")
    finally:
        await store.close()


class _Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(fill(args.data_dir, args.count, args.partitions))


if __name__ == "__main__":
    main()
