"""What one attempt reports to metrics and traces: how long it took, how it ended, what it journaled.

The partition core decides when an invocation completes; the invoker sees it happen at the
boundary, as an accepted ``end`` outcome, and learns from the output command it carried (in the
last batch, or an earlier one in bidi mode) whether the invocation succeeded.
"""

from __future__ import annotations

import time

from engine.invoker.attempt import AttemptResult, JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.telemetry.metrics import AttemptStatus, Metrics
from engine.telemetry.traces import AttemptTrace

_STATUS = {"end": AttemptStatus.COMPLETED, "suspend": AttemptStatus.SUSPENDED}
NO_OUTPUT = "[571] the invocation ended without an output command"


class ObservedAttempt:
    __slots__ = (
        "_metrics",
        "trace",
        "_partition",
        "_service",
        "_started",
        "output_failure",
        "_output_seen",
        "_watching",
    )

    def __init__(self, metrics: Metrics, trace: AttemptTrace | None, partition: int, service: str) -> None:
        self._metrics = metrics
        self.trace = trace
        self._partition = partition
        self._service = service
        self._started = time.perf_counter()
        self.output_failure: str | None = None
        self._output_seen = False
        self._watching = metrics.enabled or trace is not None
        metrics.attempt_started(partition)

    def journaled(self, entries: list[JournalEntry]) -> None:
        """Entries the partition accepted for this attempt."""
        if not self._watching:
            return
        for message_type, payload in entries:
            if message_type == MessageType.OUTPUT_COMMAND:
                self._output_seen = True
                output = pb.OutputCommandMessage.FromString(payload)
                if output.HasField("failure"):
                    self.output_failure = f"[{output.failure.code}] {output.failure.message}"
        if self.trace is not None:
            self.trace.journaled(entries)

    def finished(self, result: AttemptResult, accepted: bool) -> None:
        """``accepted``: the partition took the outcome (a stale attempt's is dropped)."""
        completed = accepted and result.ending == "end"
        if completed and not self._output_seen:
            self.output_failure = NO_OUTPUT
        if accepted:
            status = _STATUS.get(result.ending, AttemptStatus.FAILED)
            seconds = time.perf_counter() - self._started
            self._metrics.attempt_finished(self._partition, status, status is AttemptStatus.FAILED, seconds)
        if completed:
            self._metrics.invocation_completed(self._partition, self._service, self.output_failure is None)
        if self.trace is not None:
            self.trace.finished(result.ending, result.failure, completed, self.output_failure)
