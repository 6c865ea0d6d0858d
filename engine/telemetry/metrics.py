"""What quill counts on its hot path, kept as plain numbers until Prometheus scrapes them.

prometheus-client's ``Counter.labels(...).inc()`` takes a lock and looks the child up on every
call; every writer here runs on the one event-loop thread, so quill keeps dicts of ints keyed by
label tuples and a small bucket histogram, and ``engine/telemetry/collector.py`` turns them into
metric families at scrape time. Timed on this machine (loaded): an increment plus an observation
through ``labels(...)`` 13.2 µs, here 2.2 µs; everything one no-op invocation records, about 12 µs,
~1 % of its server CPU (README, Metrics: What it costs).

Label values are tuples in a fixed order and live in one process: with ``--workers`` each worker
keeps its own :class:`Metrics`, which the collector labels by worker (gathering them is to come).
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

C = TypeVar("C")
R = TypeVar("R")

# Latency buckets in seconds: sub-millisecond for the in-memory apply, up to minutes for attempts.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
)  # fmt: skip
# Writes (puts and deletes) in one group commit.
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class IngressStatus(enum.StrEnum):
    """Restate's values of ``restate_ingress_requests_total{status}``."""

    ADMITTED = "admitted"
    COMPLETED = "completed"
    REQUEST_ERROR = "request_error"  # refused before or while becoming an invocation (4xx)
    INVOCATION_ERROR = "invocation_error"  # the invocation ended with a failure


class RpcType(enum.StrEnum):
    CALL = "call"
    SEND = "send"


class AttemptStatus(enum.StrEnum):
    """Restate's values of ``restate_invoker_invocation_tasks_total{status}``."""

    STARTED = "started"
    COMPLETED = "completed"
    SUSPENDED = "suspended"
    FAILED = "failed"


class RetryAction(enum.StrEnum):
    RETRY = "retry"
    PAUSE = "pause"  # retries exhausted, on_max_attempts = pause
    KILL = "kill"  # retries exhausted, on_max_attempts = kill


class Histogram:
    """Cumulative-on-read buckets: ``counts[i]`` holds observations in (bounds[i-1], bounds[i]]."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


K = TypeVar("K")


class _Histograms(dict[K, Histogram]):
    """One histogram per label value, made on first use."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__()
        self._bounds = bounds

    def __missing__(self, key: K) -> Histogram:
        histogram = self[key] = Histogram(self._bounds)
        return histogram


class Metrics:
    """The recorder; every method is a few dict operations on the event-loop thread."""

    enabled = True

    def __init__(self) -> None:
        self.ingress_requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)  # status, service, type
        self.ingress_duration: _Histograms[tuple[str, str]] = _Histograms(LATENCY_BUCKETS)  # service, type
        self.enqueued: defaultdict[int, int] = defaultdict(int)  # partition
        self.attempts: defaultdict[tuple[str, str, int], int] = defaultdict(int)  # status, transient, partition
        self.attempt_duration = Histogram(LATENCY_BUCKETS)
        self.retries: defaultdict[tuple[str, str], int] = defaultdict(int)  # service, action
        self.completed: defaultdict[tuple[int, str, str], int] = defaultdict(int)  # partition, service, outcome
        self.apply_duration: _Histograms[type] = _Histograms(LATENCY_BUCKETS)  # command record class
        self.commit_writes = Histogram(SIZE_BUCKETS)
        self.fsync_duration = Histogram(LATENCY_BUCKETS)

    def ingress_admitted(self) -> None:
        self.ingress_requests[IngressStatus.ADMITTED, "", ""] += 1

    def ingress_finished(self, status: IngressStatus, service: str, rpc_type: RpcType, seconds: float) -> None:
        self.ingress_requests[status, service, rpc_type] += 1
        self.ingress_duration[service, rpc_type].observe(seconds)

    def attempt_enqueued(self, partition: int) -> None:
        self.enqueued[partition] += 1

    def attempt_started(self, partition: int) -> None:
        self.attempts[AttemptStatus.STARTED, "", partition] += 1

    def attempt_finished(self, partition: int, status: AttemptStatus, transient: bool, seconds: float) -> None:
        self.attempts[status, "true" if transient else "", partition] += 1
        self.attempt_duration.observe(seconds)

    def retry(self, service: str, action: RetryAction) -> None:
        self.retries[service, action] += 1

    def invocation_completed(self, partition: int, service: str, success: bool) -> None:
        self.completed[partition, service, "success" if success else "failure"] += 1

    def applied(self, command: type, seconds: float) -> None:
        """``command``: the record's class (``Invoke``, ``AttemptOutcome``…)."""
        self.apply_duration[command].observe(seconds)

    def timed(self, apply: Callable[[C], R], command: C) -> R:
        """``apply(command)`` (a partition's submit), its duration recorded as apply latency:
        submitting applies the command synchronously and stages its writes."""
        started = time.perf_counter()
        result = apply(command)
        self.applied(type(command), time.perf_counter() - started)
        return result

    def group_commit(self, writes: int, fsync_seconds: float) -> None:
        self.commit_writes.observe(writes)
        self.fsync_duration.observe(fsync_seconds)


class DisabledMetrics(Metrics):
    """``QUILL_METRICS=false``: nothing is recorded and ``/metrics`` is not served."""

    enabled = False

    def ingress_admitted(self) -> None:
        pass

    def ingress_finished(self, status: IngressStatus, service: str, rpc_type: RpcType, seconds: float) -> None:
        pass

    def attempt_enqueued(self, partition: int) -> None:
        pass

    def attempt_started(self, partition: int) -> None:
        pass

    def attempt_finished(self, partition: int, status: AttemptStatus, transient: bool, seconds: float) -> None:
        pass

    def retry(self, service: str, action: RetryAction) -> None:
        pass

    def invocation_completed(self, partition: int, service: str, success: bool) -> None:
        pass

    def applied(self, command: type, seconds: float) -> None:
        pass

    def timed(self, apply: Callable[[C], R], command: C) -> R:
        return apply(command)

    def group_commit(self, writes: int, fsync_seconds: float) -> None:
        pass


NO_METRICS = DisabledMetrics()
