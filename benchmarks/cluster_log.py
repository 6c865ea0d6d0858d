"""Cluster mode's log on a local 3-server JetStream cluster (sync_interval: always): what it costs.

    .venv/bin/python -m benchmarks.cluster_log --appends 1000 --duration 10 --record-bytes 4096

Reports: conditional-append latency of one writer (p50/p99), records/s with 8 partitions and one
record in flight each, client CPU per append (this process) and NATS CPU per append (all three
servers), and the failover pause when the server leading most streams is SIGKILLed while those 8
writers append (kill → first acknowledgement on each partition it led; the longest pause of the others),
and how fast a partition replays from the log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

import uvloop

from benchmarks.procs import tree_cpu_seconds
from engine.log.jetstream import JetStreamCluster, JetStreamLog
from engine.log.jetstream_client import JetStreamSettings
from engine.log.record import append_msg_id
from tests.cluster.support import NatsCluster


def servers_cpu(cluster: NatsCluster) -> float:
    return sum(tree_cpu_seconds(server.process.pid) for server in cluster.servers if server.process is not None)


async def latency(log: JetStreamLog, appends: int, record: bytes) -> dict[str, float]:
    last = await log.last_sequence()
    samples = []
    cpu = time.process_time()
    for _ in range(appends):
        started = time.perf_counter()
        last = await log.append(record, expected_last=last, msg_id=append_msg_id("bench", 1, last))
        samples.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    quantiles = statistics.quantiles(samples, n=100)
    return {
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "client_cpu_ms_per_append": round(cpu / appends * 1000, 3),
    }


async def replay(log: JetStreamLog) -> dict[str, float]:
    started, count = time.perf_counter(), 0
    async with aclosing(log.read(await log.first_sequence())) as records:
        async for _ in records:
            count += 1
    elapsed = time.perf_counter() - started
    return {"records": count, "records_per_s": round(count / elapsed)}


async def writer(log: JetStreamLog, record: bytes, stop: asyncio.Event, acks: list[tuple[float, int]]) -> None:
    last = await log.last_sequence()
    while not stop.is_set():
        last = await log.append(record, expected_last=last, msg_id=append_msg_id("bench", 1, last))
        acks.append((time.monotonic(), log.partition))


async def throughput(
    cluster: NatsCluster, logs: list[JetStreamLog], record: bytes, duration: float
) -> dict[str, float]:
    stop = asyncio.Event()
    acks: list[tuple[float, int]] = []
    cpu, nats_cpu = time.process_time(), servers_cpu(cluster)
    tasks = [asyncio.create_task(writer(log, record, stop, acks)) for log in logs]
    await asyncio.sleep(duration)  # the measurement window
    stop.set()
    await asyncio.gather(*tasks)
    cpu, nats_cpu = time.process_time() - cpu, servers_cpu(cluster) - nats_cpu
    return {
        "records_per_s": round(len(acks) / duration),
        "client_cpu_ms_per_append": round(cpu / len(acks) * 1000, 3),
        "nats_cpu_ms_per_append": round(nats_cpu / len(acks) * 1000, 3),
    }


async def failover(
    cluster: NatsCluster, handle: JetStreamCluster, logs: list[JetStreamLog], record: bytes
) -> dict[str, object]:
    leaders = {log.partition: await handle.stream_leader(log.partition) for log in logs}
    names = [name for name in leaders.values() if name is not None]
    victim = cluster.server(max(set(names), key=names.count))
    led = {p for p, name in leaders.items() if name == victim.name}
    stop = asyncio.Event()
    acks: list[tuple[float, int]] = []
    tasks = [asyncio.create_task(writer(log, record, stop, acks)) for log in logs]
    await asyncio.sleep(2)  # appends in full flow before the kill
    killed_at = time.monotonic()
    victim.kill()
    while not led <= {p for t, p in acks if t > killed_at + 0.001}:
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*tasks)
    back = [min(t for t, p in acks if p == partition and t > killed_at) - killed_at for partition in led]
    cluster.restart(victim)
    return {
        "killed": victim.name,
        "streams_it_led": len(led),
        "led_resumed_after_s": [round(b, 2) for b in sorted(back)],
        "others_longest_gap_s": round(max((longest_gap(acks, p) for p in leaders if p not in led), default=0), 3),
    }


def longest_gap(acks: list[tuple[float, int]], partition: int) -> float:
    times = [t for t, p in acks if p == partition]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


async def main(args: argparse.Namespace) -> None:
    record = bytes(args.record_bytes)
    with tempfile.TemporaryDirectory(prefix="quill-cluster-bench-") as root:
        cluster = NatsCluster(Path(root))
        cluster.start()
        try:
            settings = JetStreamSettings(urls=tuple(cluster.urls), node="bench")
            async with await JetStreamCluster.connect(settings) as handle:
                logs = [await handle.partition_log(p) for p in range(args.partitions)]
                results = {
                    "record_bytes": args.record_bytes,
                    "sequential": await latency(logs[0], args.appends, record),
                    f"partitions_{args.partitions}": await throughput(cluster, logs, record, args.duration),
                    "replay": await replay(logs[0]),
                    "failover": await failover(cluster, handle, logs, record),
                }
        finally:
            cluster.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--record-bytes", type=int, default=4096)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the loop `quill serve` runs on
        runner.run(main(parser.parse_args()))
