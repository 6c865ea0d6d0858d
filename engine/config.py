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
from typing import Any

import msgspec

from engine.durations import parse_duration


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


class Config(msgspec.Struct, frozen=True, kw_only=True):
    bind: str = "127.0.0.1"
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
    log_retained_entries: int = 100_000
    cluster_name: str = "localcluster"
    enable_protocol_v7: bool = False
    dapr_port: int | None = None  # an extra listener serving only the Dapr API (daprd's 3500)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


_DURATION_FIELDS = {
    "inactivity_timeout",
    "abort_timeout",
    "idempotency_retention",
    "workflow_completion_retention",
    "cleanup_interval",
    "cluster_request_deadline",
    "snapshot_interval",
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
