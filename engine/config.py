"""The one typed configuration object.

Sources, later ones winning: defaults (Restate's), an optional TOML file, ``QUILL_*`` environment
variables, command-line flags. Durations may be written as humantime or ISO 8601 strings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from engine.durations import parse_duration


class TracingProtocol(StrEnum):
    """OTLP transports, named as ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` names them."""

    GRPC = "grpc"  # what Restate's tracing-endpoint speaks
    HTTP_PROTOBUF = "http/protobuf"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"  # one object a line


class OnMaxAttempts(StrEnum):
    """What happens to an invocation whose retries ran out."""

    PAUSE = "pause"  # stop until an operator resumes (or kills) it
    KILL = "kill"  # complete it with its last failure


class RetryPolicy(msgspec.Struct, frozen=True):
    initial_interval: float = 0.5
    exponentiation_factor: float = 2.0
    max_interval: float = 60.0
    max_attempts: int | None = 70
    on_max_attempts: OnMaxAttempts = OnMaxAttempts.PAUSE

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based)."""
        return min(self.initial_interval * self.exponentiation_factor ** (attempt - 1), self.max_interval)


class Face(StrEnum):
    """The HTTP faces quill listens with."""

    INGRESS = "ingress"
    ADMIN = "admin"
    DAPR = "dapr"


class Listener(NamedTuple):
    face: Face
    host: str
    port: int

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    # Each listener's own address wins over ``bind`` (whatever source set either): ``bind``
    # only fills in the listeners nobody gave an address.
    bind: str = "127.0.0.1"
    ingress_bind: str | None = None
    admin_bind: str | None = None
    dapr_bind: str | None = None
    ingress_port: int = 8080
    admin_port: int = 9070
    data_dir: str = "quill-data"
    partitions: int = 8
    workers: int = 1  # processes sharing the partitions (fixed at first start, like partitions)
    # Cluster mode: NATS JetStream servers ("nats://h:p,nats://h:p"); None = embedded, the default.
    cluster: str | None = None
    node_name: str = "n1"
    cluster_request_deadline: float = 30.0  # how long a request waits for a partition's leader
    snapshot_records: int = 10_000  # a leader snapshots its partition every this many records
    snapshot_interval: float = 600.0  # ... or this often
    retry_policy: RetryPolicy = RetryPolicy()
    inactivity_timeout: float = 60.0
    abort_timeout: float = 600.0
    idempotency_retention: float = 86_400.0
    workflow_completion_retention: float = 86_400.0
    cleanup_interval: float = 60.0  # how often expired results are purged
    concurrent_invocations: int = 1000
    request_size_limit: int = 32 * 1024 * 1024
    admin_request_size_limit: int = 2 * 1024 * 1024  # Restate's admin API: axum's 2 MB
    # Connections, as Restate's HTTP server (hyper) limits them: header count and head size.
    max_request_headers: int = 100
    max_request_header_size: int = 8192 + 4096 * 100
    header_read_timeout: float = 30.0
    connection_idle_timeout: float = 30.0
    max_connections: int = 10_000  # and at most half the file-descriptor limit
    # How long SIGTERM waits for attempts in flight to finish their current step (Restate: 1m).
    shutdown_timeout: float = 60.0
    log_retained_entries: int = 100_000
    # RocksDB: one memory budget (half block cache, half memtables) and a bounded WAL.
    rocksdb_memory_budget: int = 256 * 1024 * 1024
    rocksdb_max_total_wal_size: int = 128 * 1024 * 1024
    cluster_name: str = "localcluster"
    enable_protocol_v7: bool = False
    dapr_port: int | None = None  # an extra listener serving only the Dapr API (daprd's 3500)
    # Whether /v1.0/invoke/{appId} may name any http(s) URL (as daprd allows); off, only registered
    # apps and HTTP endpoints are targets. quill's own listeners are never targets.
    dapr_allow_url_targets: bool = False
    # Restate's request identity: sign every request to a deployment with this ed25519 key.
    request_identity_private_key_pem_file: str | None = None
    request_identity_expiration: float = 60.0
    metrics: bool = True  # GET /metrics on the admin port
    tracing_endpoint: str | None = None  # OTLP collector; None: no tracing (nothing imported)
    tracing_protocol: TracingProtocol = TracingProtocol.GRPC

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def ingress_address(self) -> str:
        return self.ingress_bind or self.bind

    @property
    def admin_address(self) -> str:
        return self.admin_bind or self.bind

    @property
    def dapr_address(self) -> str:
        return self.dapr_bind or self.bind

    @property
    def ingress_url(self) -> str:
        return http_url(self.ingress_address, self.ingress_port)

    def listeners(self) -> list[Listener]:
        """Every address quill listens on (the Dapr port only when configured)."""
        found = [
            Listener(Face.INGRESS, self.ingress_address, self.ingress_port),
            Listener(Face.ADMIN, self.admin_address, self.admin_port),
        ]
        if self.dapr_port is not None:
            found.append(Listener(Face.DAPR, self.dapr_address, self.dapr_port))
        return found


def http_url(host: str, port: int) -> str:
    """``http://host:port/``, with IPv6 literals in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


_DURATION_FIELDS = {
    "inactivity_timeout",
    "abort_timeout",
    "idempotency_retention",
    "workflow_completion_retention",
    "cleanup_interval",
    "cluster_request_deadline",
    "snapshot_interval",
    "request_identity_expiration",
    "header_read_timeout",
    "connection_idle_timeout",
    "shutdown_timeout",
}
_RETRY_DURATION_FIELDS = {"initial_interval", "max_interval"}


def load_config(
    *, file: str | None = None, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Merge the sources into a validated :class:`Config`; raises ValueError on bad input."""
    raw: dict[str, Any] = {}
    if file:
        with open(file, "rb") as fh:
            raw.update(tomllib.load(fh))
    environ = os.environ if env is None else env
    for name, value in environ.items():
        if name.startswith("QUILL_") and name != "QUILL_CONFIG":
            key = name[len("QUILL_") :].lower()
            if key.startswith("retry_policy__"):
                raw.setdefault("retry_policy", {})[key.split("__", 1)[1]] = value
            else:
                raw[key] = value
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    raw = {k.replace("-", "_"): v for k, v in raw.items()}
    for key in _DURATION_FIELDS & raw.keys():
        raw[key] = parse_duration(raw[key])
    retry = {k.replace("-", "_"): v for k, v in raw.get("retry_policy", {}).items()}
    for key in _RETRY_DURATION_FIELDS & retry.keys():
        retry[key] = parse_duration(retry[key])
    if retry:
        raw["retry_policy"] = retry
    try:
        # strict=False lets env strings ("8") convert to ints and floats.
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid configuration: {exc}") from exc
