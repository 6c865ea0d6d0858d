"""The ``quill`` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys

from engine.config import LogFormat, TracingProtocol, load_config
from engine.errors import QuillError, StartupError
from engine.telemetry.logs import configure_logging
from quill.listen import bind_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="quill", description="A durable-execution server, wire-compatible with Restate."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (ingress + admin API)")
    serve.add_argument("--config", default=os.environ.get("QUILL_CONFIG"), help="TOML configuration file")
    serve.add_argument("--bind", help="default address of every listener (default 127.0.0.1)")
    serve.add_argument("--ingress-bind", help="address of the ingress listener (default: --bind)")
    serve.add_argument("--admin-bind", help="address of the admin API listener (default: --bind)")
    serve.add_argument("--dapr-bind", help="address of the --dapr-port listener (default: --bind)")
    serve.add_argument("--ingress-port", type=int, help="ingress port (default 8080)")
    serve.add_argument("--admin-port", type=int, help="admin API port (default 9070)")
    serve.add_argument("--dapr-port", type=int, help="also serve the Dapr API (/v1.0/...) on this port, e.g. 3500")
    serve.add_argument(
        "--dapr-allow-url-targets",
        action="store_true",
        default=None,
        help="let /v1.0/invoke/{appId} name any http(s) URL, not only registered apps (never quill's own ports)",
    )
    serve.add_argument(
        "--request-identity-private-key-pem-file",
        help="sign every request to deployments with this ed25519 key (PEM, PKCS#8), as Restate does",
    )
    serve.add_argument("--data-dir", help="data directory (default ./quill-data)")
    serve.add_argument("--partitions", type=int, help="number of partitions, fixed at first start (default 8)")
    serve.add_argument("--workers", type=int, help="processes sharing the partitions, fixed at first start (default 1)")
    serve.add_argument("--log-level", default=os.environ.get("QUILL_LOG_LEVEL", "info"))
    serve.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=os.environ.get("QUILL_LOG_FORMAT", LogFormat.TEXT.value),
        help="text (default) or json: one object a line",
    )
    serve.add_argument(
        "--tracing-endpoint", help="export traces over OTLP to this collector, e.g. http://127.0.0.1:4317"
    )
    serve.add_argument(
        "--tracing-protocol",
        choices=[p.value for p in TracingProtocol],
        help="OTLP transport (default grpc, as Restate; or http/protobuf)",
    )
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.add_argument("--cluster", help="cluster mode: NATS JetStream servers, nats://h:p,nats://h:p (default off)")
    serve.add_argument("--node-name", help="this node's name in the cluster (default n1)")
    commands.add_parser("dev-cluster", help="start a local 3-server NATS + 3-node quill cluster", add_help=False)
    if (argv if argv is not None else sys.argv[1:])[:1] == ["dev-cluster"]:
        from quill import devcluster

        return devcluster.main((argv if argv is not None else sys.argv[1:])[1:])
    args = parser.parse_args(argv)
    if args.log_format not in {f.value for f in LogFormat}:  # a QUILL_LOG_FORMAT argparse did not check
        parser.error(f"argument --log-format: invalid choice: {args.log_format!r} (choose from 'text', 'json')")

    process = None if args.worker_index is None else f"w{args.worker_index}"
    if args.cluster or os.environ.get("QUILL_CLUSTER"):
        process = args.node_name or os.environ.get("QUILL_NODE_NAME", "n1")
    configure_logging(args.log_level, LogFormat(args.log_format), process)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides = {
        "bind": args.bind,
        "ingress_bind": args.ingress_bind,
        "admin_bind": args.admin_bind,
        "dapr_bind": args.dapr_bind,
        "dapr_allow_url_targets": args.dapr_allow_url_targets,
        "ingress_port": args.ingress_port,
        "admin_port": args.admin_port,
        "dapr_port": args.dapr_port,
        "request_identity_private_key_pem_file": args.request_identity_private_key_pem_file,
        "data_dir": args.data_dir,
        "partitions": args.partitions,
        "tracing_endpoint": args.tracing_endpoint,
        "tracing_protocol": args.tracing_protocol,
        "workers": args.workers,
        "cluster": args.cluster,
        "node_name": args.node_name,
    }
    try:
        config = load_config(file=args.config, overrides=overrides)
    except (ValueError, OSError) as exc:
        print(f"quill: {exc}", file=sys.stderr)
        return 2
    if config.tracing_endpoint and importlib.util.find_spec("opentelemetry.sdk") is None:
        print("quill: --tracing-endpoint needs OpenTelemetry: pip install 'quill[tracing]'", file=sys.stderr)
        return 2
    sockets = None
    if config.workers <= 1 and args.worker_index is None:
        try:
            sockets = bind_all(config.listeners())  # before anything slow: a taken port fails at once
        except StartupError as exc:
            print(f"quill: {exc.message}", file=sys.stderr)
            return 1
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
    try:
        with runner:
            if config.workers > 1 and args.worker_index is None:
                from quill.supervisor import supervise, worker_argv

                return runner.run(supervise(config, worker_argv()))
            from quill.server import serve as run_server

            if args.worker_index is None:
                runner.run(run_server(config, sockets=sockets))
            else:
                plan = WorkerPlan(args.worker_index, config.workers, namespace(config.data_path))
                runner.run(run_server(config, plan=plan, ready=_tell_supervisor))
    except StartupError as exc:
        print(f"quill: {exc.message}", file=sys.stderr)
        return 1
    except QuillError as exc:
        # Refused at start (e.g. a NATS server too old for cluster mode): one line, no traceback.
        print(f"quill: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _tell_supervisor() -> None:
    """The worker serves: one byte on the pipe the supervisor gave it."""
    fd = os.environ.get("QUILL_READY_FD")
    if fd is not None:
        os.write(int(fd), b"1")
        os.close(int(fd))
