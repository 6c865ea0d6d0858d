"""The ``quill`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from engine import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="quill", description="A durable-execution server, wire-compatible with Restate."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (ingress + admin API)")
    serve.add_argument("--config", default=os.environ.get("QUILL_CONFIG"), help="TOML configuration file")
    serve.add_argument("--bind", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--ingress-port", type=int, help="ingress port (default 8080)")
    serve.add_argument("--admin-port", type=int, help="admin API port (default 9070)")
    serve.add_argument("--dapr-port", type=int, help="also serve the Dapr API (/v1.0/...) on this port, e.g. 3500")
    serve.add_argument("--data-dir", help="data directory (default ./quill-data)")
    serve.add_argument("--partitions", type=int, help="number of partitions, fixed at first start (default 8)")
    serve.add_argument("--workers", type=int, help="processes sharing the partitions, fixed at first start (default 1)")
    serve.add_argument("--log-level", default=os.environ.get("QUILL_LOG_LEVEL", "info"))
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    args = parser.parse_args(argv)

    worker = "" if args.worker_index is None else f"w{args.worker_index} "
    logging.basicConfig(level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s {worker}%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides = {
        "bind": args.bind,
        "ingress_port": args.ingress_port,
        "admin_port": args.admin_port,
        "dapr_port": args.dapr_port,
        "data_dir": args.data_dir,
        "partitions": args.partitions,
        "workers": args.workers,
    }
    try:
        config = load_config(file=args.config, overrides=overrides)
    except (ValueError, OSError) as exc:
        print(f"quill: {exc}", file=sys.stderr)
        return 2
    from engine.workers.layout import LayoutError, WorkerPlan, namespace, settle

    try:
        settle(config.data_path, config.workers)
    except LayoutError as exc:
        print(f"quill: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        if config.workers > 1 and args.worker_index is None:
            from quill.supervisor import supervise, worker_argv

            return runner.run(supervise(config, worker_argv()))
        from quill.server import serve as run_server

        if args.worker_index is None:
            runner.run(run_server(config))
        else:
            plan = WorkerPlan(args.worker_index, config.workers, namespace(config.data_path))
            runner.run(run_server(config, plan=plan, ready=_tell_supervisor))
    return 0


def _tell_supervisor() -> None:
    """The worker serves: one byte on the pipe the supervisor gave it."""
    fd = os.environ.get("QUILL_READY_FD")
    if fd is not None:
        os.write(int(fd), b"1")
        os.close(int(fd))
