"""What one attempt reports to metrics and traces: how long it took, how it ended, what it journaled.

Completions are counted where the partition core announces them (its ``Complete`` effect, in
``engine/runtime/executor.py``); attempts are counted here, by how they ended.
"""

from __future__ import annotations

import time

from engine.invoker.attempt import AttemptResult, Interrupted
from engine.partition.commands import AttemptEnding
from engine.partition.types import JournalEntry
from engine.telemetry.metrics import AttemptStatus, Metrics
from engine.telemetry.traces import AttemptTrace

_STATUS: dict[AttemptEnding | Interrupted, AttemptStatus] = {
    AttemptEnding.END: AttemptStatus.COMPLETED,
    AttemptEnding.SUSPEND: AttemptStatus.SUSPENDED,
}


class ObservedAttempt:
    __slots__ = ("_metrics", "trace", "_partition", "_started")

    def __init__(self, metrics: Metrics, trace: AttemptTrace | None, partition: int) -> None:
        self._metrics = metrics
        self.trace = trace
        self._partition = partition
        self._started = time.perf_counter()
        metrics.attempt_started(partition)

    def journaled(self, entries: list[JournalEntry]) -> None:
        """Entries the partition accepted for this attempt."""
        if self.trace is not None:
            self.trace.journaled(entries)

    def finished(self, result: AttemptResult, accepted: bool) -> None:
        """``accepted``: the partition took the outcome (a stale attempt's is dropped)."""
        if accepted:
            status = _STATUS.get(result.ending, AttemptStatus.FAILED)
            seconds = time.perf_counter() - self._started
            self._metrics.attempt_finished(self._partition, status, status is AttemptStatus.FAILED, seconds)
        if self.trace is not None:
            completed = accepted and result.ending is AttemptEnding.END
            self.trace.finished(str(result.ending), result.failure, completed)
