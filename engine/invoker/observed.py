"""What one attempt reports to metrics and traces: how long it took, how it ended, what it journaled.

Completions are counted where the partition core announces them (its ``Complete`` effect, in
``engine/runtime/executor.py``); the trace of an invocation ends here, when an accepted ``end``
outcome completed it, with the output command it carried (in the last batch, or an earlier one in
bidi mode) saying whether it succeeded.
"""

from __future__ import annotations

import time

from engine.invoker.attempt import AttemptResult
from engine.partition.commands import AttemptEnding
from engine.partition.types import JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.telemetry.metrics import AttemptStatus, Metrics
from engine.telemetry.traces import AttemptTrace

_STATUS = {AttemptEnding.END: AttemptStatus.COMPLETED, AttemptEnding.SUSPEND: AttemptStatus.SUSPENDED}
NO_OUTPUT = "[571] the invocation ended without an output command"


class ObservedAttempt:
    __slots__ = (
        "_metrics",
        "trace",
        "_partition",
        "_started",
        "output_failure",
        "_output_seen",
    )

    def __init__(self, metrics: Metrics, trace: AttemptTrace | None, partition: int) -> None:
        self._metrics = metrics
        self.trace = trace
        self._partition = partition
        self._started = time.perf_counter()
        self.output_failure: str | None = None
        self._output_seen = False
        metrics.attempt_started(partition)

    def journaled(self, entries: list[JournalEntry]) -> None:
        """Entries the partition accepted for this attempt."""
        if self.trace is None:
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
        completed = accepted and result.ending is AttemptEnding.END
        if completed and not self._output_seen:
            self.output_failure = NO_OUTPUT
        if accepted:
            ending = result.ending
            status = (
                _STATUS.get(ending, AttemptStatus.FAILED) if isinstance(ending, AttemptEnding) else AttemptStatus.FAILED
            )
            seconds = time.perf_counter() - self._started
            self._metrics.attempt_finished(self._partition, status, status is AttemptStatus.FAILED, seconds)
        if self.trace is not None:
            self.trace.finished(str(result.ending), result.failure, completed, self.output_failure)
