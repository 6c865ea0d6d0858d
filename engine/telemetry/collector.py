"""Turns quill's counters and live state into Prometheus metric families when ``/metrics`` is read.

Counters come from :class:`~engine.telemetry.metrics.Metrics`; gauges (invocations by status,
inbox depth, timers, HTTP/2 streams) are read from the engine at scrape time, so keeping them
costs the hot path nothing. Names follow Restate's where Restate measures the same thing (its
metrics are summaries; quill's latencies are histograms with the same base name, so ``_sum`` and
``_count`` read the same and quantiles come from ``histogram_quantile``). ``constant_labels``
(``worker`` once there are several processes) are added to every sample.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from engine.telemetry.metrics import Histogram, Metrics


class EngineState(Protocol):
    """The read-only views of the engine facade the collector reads (see engine/engine.py)."""

    @property
    def partition_count(self) -> int: ...

    def invocation_census(self) -> Mapping[tuple[int, str, str], int]: ...

    def keyed_services(self) -> list[str]: ...

    def timers_armed(self) -> int: ...

    def http2_usage(self) -> tuple[int, int]: ...

    def invoker_load(self) -> tuple[int, int]: ...


class QuillCollector(Collector):
    def __init__(self, metrics: Metrics, engine: EngineState, constant_labels: Mapping[str, str] | None = None) -> None:
        self._metrics = metrics
        self._engine = engine
        self._constant = dict(constant_labels or {})

    def collect(self) -> Iterator[Metric]:
        yield from self._restate_named()
        yield from self._invocations()
        yield from self._runtime()
        yield from self._storage()

    # -- families ----------------------------------------------------------------------------
    def _restate_named(self) -> Iterator[Metric]:
        m = self._metrics
        requests = self._counter(
            "restate_ingress_requests",
            "Number of ingress requests in different states, see label status to classify",
            ["status", "rpc_service", "rpc_type"],
        )
        for (status, service, rpc_type), value in m.ingress_requests.items():
            # Restate labels admitted requests by status only.
            self._add_sparse(requests, value, status=status, rpc_service=service, rpc_type=rpc_type)
        yield requests
        duration = self._histogram(
            "restate_ingress_request_duration_seconds",
            "Total latency of Ingress request processing in seconds",
            ["rpc_service", "rpc_type"],
        )
        for (service, rpc_type), histogram in m.ingress_duration.items():
            self._add_histogram(duration, [service, rpc_type], histogram)
        yield duration
        enqueued = self._counter(
            "restate_invoker_enqueue", "Number of invocations that were added to the queue", ["partition_id"]
        )
        for partition, value in m.enqueued.items():
            enqueued.add_metric([str(partition), *self._constant.values()], value)
        yield enqueued
        tasks = self._counter(
            "restate_invoker_invocation_tasks", "Invocation task operation", ["status", "transient", "partition_id"]
        )
        for (status, transient, partition), value in m.attempts.items():
            # As Restate, ``transient`` only on failed attempts.
            self._add_sparse(tasks, value, status=status, transient=transient, partition_id=str(partition))
        yield tasks
        task_duration = self._histogram(
            "restate_invoker_task_duration_seconds", "Time taken to complete an invoker task", []
        )
        self._add_histogram(task_duration, [], m.attempt_duration)
        yield task_duration
        apply = self._histogram(
            "restate_partition_apply_command_duration_seconds",
            "Time spent applying partition processor command",
            ["command"],
        )
        for command, histogram in m.apply_duration.items():
            self._add_histogram(apply, [command.__name__], histogram)
        yield apply
        partitions = self._gauge("restate_num_partitions", "Number of partitions", [])
        partitions.add_metric(list(self._constant.values()), self._engine.partition_count)
        yield partitions

    def _invocations(self) -> Iterator[Metric]:
        census = self._engine.invocation_census()
        current = self._gauge(
            "quill_invocations", "Invocations not yet completed, by status", ["partition", "service", "status"]
        )
        inbox: defaultdict[str, int] = defaultdict(int, dict.fromkeys(self._engine.keyed_services(), 0))
        for (partition, service, status), value in census.items():
            current.add_metric([str(partition), service, status, *self._constant.values()], value)
            if status == "inboxed":
                inbox[service] += value
        yield current
        depth = self._gauge(
            "quill_inbox_depth", "Invocations waiting in a virtual object's inbox, per object service", ["service"]
        )
        for service, value in sorted(inbox.items()):
            depth.add_metric([service, *self._constant.values()], value)
        yield depth
        completed = self._counter(
            "quill_invocations_completed",
            "Invocations completed since start, by outcome",
            ["partition", "service", "outcome"],
        )
        for (partition, service, outcome), value in self._metrics.completed.items():
            completed.add_metric([str(partition), service, outcome, *self._constant.values()], value)
        yield completed

    def _runtime(self) -> Iterator[Metric]:
        retries = self._counter(
            "quill_invoker_retries",
            "Failed attempts followed by a retry, or by a pause or kill once retries ran out",
            ["service", "action"],
        )
        for (service, action), value in self._metrics.retries.items():
            retries.add_metric([service, action, *self._constant.values()], value)
        yield retries
        in_flight, backing_off = self._engine.invoker_load()
        yield self._single("quill_invoker_attempts_in_flight", "Attempts running or waiting for a slot", in_flight)
        yield self._single("quill_invoker_backing_off", "Invocations waiting for their next retry", backing_off)
        yield self._single("quill_timers_armed", "Timers waiting to fire", self._engine.timers_armed())
        connections, streams = self._engine.http2_usage()
        yield self._single("quill_http2_connections", "Open HTTP/2 connections to deployments", connections)
        yield self._single("quill_http2_streams_in_use", "HTTP/2 streams open to deployments", streams)

    def _storage(self) -> Iterator[Metric]:
        writes = self._histogram(
            "quill_storage_group_commit_writes", "Puts and deletes written by one group commit", []
        )
        self._add_histogram(writes, [], self._metrics.commit_writes)
        yield writes
        fsync = self._histogram(
            "quill_storage_fsync_duration_seconds", "Time to sync the write-ahead log of one group commit", []
        )
        self._add_histogram(fsync, [], self._metrics.fsync_duration)
        yield fsync

    # -- helpers -----------------------------------------------------------------------------
    def _counter(self, name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
        return CounterMetricFamily(name, documentation, labels=[*labels, *self._constant])

    def _gauge(self, name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=[*labels, *self._constant])

    def _histogram(self, name: str, documentation: str, labels: list[str]) -> HistogramMetricFamily:
        return HistogramMetricFamily(name, documentation, labels=[*labels, *self._constant])

    def _single(self, name: str, documentation: str, value: float) -> GaugeMetricFamily:
        gauge = self._gauge(name, documentation, [])
        gauge.add_metric(list(self._constant.values()), value)
        return gauge

    def _add_sparse(self, family: Metric, value: float, **labels: str) -> None:
        """A sample whose empty labels are left out, as Restate leaves them out."""
        present = {name: label for name, label in labels.items() if label}
        family.samples.append(Sample(family.name + "_total", {**present, **self._constant}, value))

    def _add_histogram(self, family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
        cumulative, buckets = 0, []
        for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
            cumulative += count
            buckets.append((_bound(bound), cumulative))
        buckets.append(("+Inf", cumulative + histogram.counts[-1]))
        family.add_metric([*labels, *self._constant.values()], buckets, histogram.total)


def _bound(value: float) -> str:
    return str(float(value))


def build_registry(
    metrics: Metrics, engine: EngineState, constant_labels: Mapping[str, str] | None = None
) -> CollectorRegistry:
    """A registry of its own per engine (several engines may share a process in tests)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QuillCollector(metrics, engine, constant_labels))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
