"""Benchmark quill or the real Restate server with the same SDK workload.

    python -m benchmarks.run --target restate --handler noop --concurrency 32 --duration 15 --warmup 3

--handler and --concurrency also take comma-separated lists; every
combination gets a fresh server, SDK process and data dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import load, procs, targets

_NETNS_ENV = "QUILL_BENCH_IN_NETNS"


@dataclass(frozen=True)
class Case:
    target: targets.TargetName
    handler: str
    concurrency: int


@dataclass(frozen=True)
class CpuSample:
    server_s: float
    sdk_s: float
    driver_s: float
    machine: procs.MachineCpu


@dataclass(frozen=True)
class Row:
    target: str
    target_version: str
    handler: str
    concurrency: int
    client: str
    scope: str | None
    invocations: int
    errors: int
    window_s: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_inv: float
    sdk_cpu_ms_per_inv: float
    driver_cpu_ms_per_inv: float
    server_cores: float
    sdk_cores: float
    driver_cores: float
    other_cores: float
    iowait_cores: float
    server_idle_cores: float
    sent_total: int
    error_samples: list[str]


# ----------------------------------------------------------------------- CLI


def _str_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def _int_list(text: str) -> list[int]:
    return [int(part) for part in _str_list(text)]


# Per load worker ({worker}): objects get a key each, so no two requests wait for one lock.
_PATHS = {
    "noop": "/restate/call/Bench/noop",
    "run": "/restate/call/Bench/run",
    "object": "/restate/call/BenchObject/k{worker}/touch",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=["quill", "quill-cluster", "restate"], required=True)
    p.add_argument("--handler", type=_str_list, default=["noop"], help="noop, run, object, or a list: noop,run")
    p.add_argument("--concurrency", type=_int_list, default=[1], help="in-flight requests, or a list: 1,32")
    p.add_argument("--duration", type=float, default=15.0, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="load before the window, seconds")
    p.add_argument("--max-requests", type=int, default=2_000_000, help="hard cap on requests sent per case")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load driver HTTP client")
    p.add_argument("--sdk-worker-class", choices=["asyncio", "uvloop"], default="uvloop")
    p.add_argument("--http2", action="store_true", help="register over h2c: bidirectional streaming mode")
    p.add_argument("--scope", help="call through /restate/scope/SCOPE/call/... (flow control; quill only)")
    p.add_argument("--idle", type=float, default=2.0, help="seconds to sample the idle server's CPU before loading")
    p.add_argument("--repeat", type=int, default=1, help="run every case this many times (fresh stack each)")
    p.add_argument("--json-out", type=Path, help="append one JSON line per case to this file")
    p.add_argument("--keep-data", action="store_true", help="keep the temp dir (logs, data) afterwards")
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra env for the server, e.g. RESTATE_DEFAULT_NUM_PARTITIONS=2",
    )  # fmt: skip
    p.add_argument(
        "--netns", choices=["auto", "on", "off"], default="auto",
        help="run everything in a private network namespace with only loopback (default: when possible)",
    )  # fmt: skip
    args = p.parse_args(argv)
    for h in args.handler:
        if h not in _PATHS:
            p.error(f"unknown handler {h!r}")
    if args.duration <= 0 or args.duration > 3600 or args.warmup < 0 or args.max_requests <= 0:
        p.error("need 0 < duration <= 3600, warmup >= 0, max-requests > 0")
    if not 1 <= args.repeat <= 20:
        p.error("need 1 <= repeat <= 20")
    return args


# ------------------------------------------------------------------- netns


def _netns_usable() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def maybe_reexec_in_netns(args: argparse.Namespace, argv: list[str]) -> None:
    """Re-run this command inside a fresh network namespace holding only `lo`.

    restate-server asks GitHub for its latest release at startup and has no
    switch for it; in a loopback-only namespace that call (and anything else
    unexpected from any process under test) cannot leave the machine.
    """
    if args.netns == "off" or os.environ.get(_NETNS_ENV) == "1":
        return
    if not _netns_usable():
        if args.netns == "on":
            sys.exit("--netns on: cannot create a network namespace (needs root/unshare)")
        print("warning: no private network namespace; running in the host namespace", file=sys.stderr)
        return
    cmd = [
        "unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
        sys.executable, "-m", "benchmarks.run", *argv,
    ]  # fmt: skip
    env = {**os.environ, _NETNS_ENV: "1"}
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


# ------------------------------------------------------------------ one case


def _cpu(server_pid: int, sdk_pid: int) -> CpuSample:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(
        server_s=procs.tree_cpu_seconds(server_pid),
        sdk_s=procs.tree_cpu_seconds(sdk_pid),
        driver_s=usage.ru_utime + usage.ru_stime,
        machine=procs.machine_cpu(),
    )


def _per_inv_ms(cpu_s: float, n: int) -> float:
    return cpu_s * 1000.0 / n if n else float("nan")


def idle_cores(pid: int, seconds: float) -> float:
    """Background CPU of an idle server: at low load it is a big share of CPU/invocation."""
    if seconds <= 0:
        return float("nan")
    start = procs.tree_cpu_seconds(pid)
    time.sleep(seconds)
    return (procs.tree_cpu_seconds(pid) - start) / seconds


def _row(
    case: Case,
    server: targets.Server,
    client: str,
    scope: str | None,
    res: load.LoadResult,
    before: CpuSample,
    after: CpuSample,
    idle: float,
) -> Row:
    d_server, d_sdk, d_driver = (
        after.server_s - before.server_s,
        after.sdk_s - before.sdk_s,
        after.driver_s - before.driver_s,
    )
    n, w = res.invocations, res.window_s
    machine_busy = after.machine.busy_s - before.machine.busy_s
    # CPU burnt by anything that is not part of this benchmark (other jobs on
    # the box): large values mean the numbers are disturbed.
    other = max(0.0, machine_busy - d_server - d_sdk - d_driver)
    return Row(
        target=case.target,
        target_version=server.version,
        handler=case.handler,
        concurrency=case.concurrency,
        client=client,
        scope=scope,
        invocations=n,
        errors=res.errors,
        window_s=round(w, 3),
        req_per_s=round(res.throughput, 1),
        p50_ms=round(res.percentile_ms(50), 3),
        p99_ms=round(res.percentile_ms(99), 3),
        server_cpu_ms_per_inv=round(_per_inv_ms(d_server, n), 4),
        sdk_cpu_ms_per_inv=round(_per_inv_ms(d_sdk, n), 4),
        driver_cpu_ms_per_inv=round(_per_inv_ms(d_driver, n), 4),
        server_cores=round(d_server / w, 3),
        sdk_cores=round(d_sdk / w, 3),
        driver_cores=round(d_driver / w, 3),
        other_cores=round(other / w, 3),
        iowait_cores=round((after.machine.iowait_s - before.machine.iowait_s) / w, 3),
        server_idle_cores=round(idle, 3),
        sent_total=res.sent_total,
        error_samples=res.error_samples,
    )


def run_case(case: Case, args: argparse.Namespace, workdir: Path) -> Row:
    extra_env = dict(kv.split("=", 1) for kv in args.server_env)
    sdk, sdk_port = targets.start_sdk(workdir, args.sdk_worker_class)
    server: targets.Server | None = None
    try:
        server = targets.start_server(case.target, workdir, extra_env)
        targets.wait_sdk_ready(sdk, sdk_port, args.startup_timeout)
        targets.wait_http_ok(server.managed, f"http://127.0.0.1:{server.ports.admin}/health", args.startup_timeout)
        targets.register_deployment(server.ports.admin, sdk_port, args.http2)
        cfg = load.LoadConfig(
            host="127.0.0.1",
            port=server.ports.ingress,
            path=_PATHS[case.handler].replace("/restate/", f"/restate/scope/{args.scope}/", 1 if args.scope else 0),
            concurrency=case.concurrency,
            duration_s=args.duration,
            warmup_s=args.warmup,
            max_requests=args.max_requests,
            request_timeout_s=args.request_timeout,
            client=args.client,
        )
        load.run_sync(load.wait_until_callable(cfg, args.startup_timeout))
        srv_pid, sdk_pid = server.managed.pid, sdk.pid
        idle = idle_cores(srv_pid, args.idle)
        samples: list[CpuSample] = []
        result = load.run_sync(
            load.run_load(
                cfg, lambda: samples.append(_cpu(srv_pid, sdk_pid)), lambda: samples.append(_cpu(srv_pid, sdk_pid))
            )
        )
        if not server.managed.alive():
            raise RuntimeError(f"server died during the run:\n{server.managed.log_tail()}")
        return _row(case, server, args.client, args.scope, result, samples[0], samples[1], idle)
    finally:
        if server is not None:
            procs.stop(server.managed)
        procs.stop(sdk)


# ------------------------------------------------------------------- output

_COLUMNS: list[tuple[str, str, str]] = [
    # (header, Row attribute, format)
    ("target", "target", "{}"),
    ("handler", "handler", "{}"),
    ("conc", "concurrency", "{}"),
    ("invocations", "invocations", "{}"),
    ("errors", "errors", "{}"),
    ("req/s", "req_per_s", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server CPU ms/inv", "server_cpu_ms_per_inv", "{:.3f}"),
    ("SDK CPU ms/inv", "sdk_cpu_ms_per_inv", "{:.3f}"),
    ("driver CPU ms/inv", "driver_cpu_ms_per_inv", "{:.3f}"),
    ("other cores", "other_cores", "{:.2f}"),
]


def format_table(rows: list[Row]) -> str:
    cells = [[fmt.format(getattr(r, attr)) for _, attr, fmt in _COLUMNS] for r in rows]
    headers = [h for h, _, _ in _COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(vals: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(c) for c in cells)])


def environment() -> dict[str, object]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "in_netns": os.environ.get(_NETNS_ENV) == "1",
    }


def append_json(path: Path, row: Row, args: argparse.Namespace) -> None:
    record = {**asdict(row), "duration_s": args.duration, "warmup_s": args.warmup, **environment()}
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    args = parse_args(raw_argv)
    # Turn SIGTERM into SystemExit so the finally blocks stop what we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.target == "restate":
        targets.ensure_restate()  # before the namespace: it needs the registry
    maybe_reexec_in_netns(args, raw_argv)
    cases = [Case(args.target, h, c) for h in args.handler for c in args.concurrency for _ in range(args.repeat)]
    rows: list[Row] = []
    for case in cases:
        workdir = Path(tempfile.mkdtemp(prefix=f"quill-bench-{case.target}-"))
        try:
            row = run_case(case, args, workdir)
        except Exception:
            print(f"case {case} failed; logs kept in {workdir}", file=sys.stderr)
            raise
        if not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
        rows.append(row)
        print(f"done: {case.target} {case.handler} c={case.concurrency}: {row.req_per_s} req/s", file=sys.stderr)
        if row.error_samples:
            print(f"  error samples: {row.error_samples}", file=sys.stderr)
        if row.sent_total >= args.max_requests:
            print("  warning: --max-requests reached before the window ended; req/s is understated", file=sys.stderr)
        if args.json_out is not None:
            append_json(args.json_out, row, args)
    env = environment()
    print(f"\n{env['date']}  cpus={env['cpus']}  duration={args.duration}s warmup={args.warmup}s client={args.client}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
