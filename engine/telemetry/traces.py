"""The tracing interface the invoker and engine use; with tracing off there is no tracer (None).

OpenTelemetry is imported only by :func:`start_tracing` when a tracing endpoint is configured
(``engine/telemetry/otel.py``), so a server without ``--tracing-endpoint`` loads none of it and
pays one ``is None`` check per attempt.

Span identity is derived, not stored: an invocation's span id is a hash of its invocation id and
its trace id comes from the ``traceparent`` journaled with its input (or, for a call, from its
caller's trace), so every attempt, before or after a restart, finds the same parent without any
new durable state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

from engine.config import Config, TracingProtocol
from engine.partition.types import JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import InvocationStatus


class AttemptTrace(Protocol):
    """The span of one attempt, open while the attempt runs."""

    @property
    def headers(self) -> list[tuple[str, str]]:
        """``traceparent`` (and ``tracestate``) for the attempt's request to the deployment."""
        ...

    def journaled(self, entries: list[JournalEntry]) -> None: ...

    def finished(self, ending: str, failure: str | None, completed: bool) -> None:
        """End the attempt's span; ``completed`` (the outcome completed the invocation) also ends
        the invocation's span, with the output command's failure if it carried one."""
        ...


class Tracer(Protocol):
    def start_attempt(self, status: InvocationStatus, journal: list[JournalEntry], attempt: int) -> AttemptTrace: ...

    def invocation_ended(
        self, status: InvocationStatus, failure: str | None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """An invocation completed without an attempt ending it (killed, cancelled before it ran);
        ``headers``: its input's, read before it completed."""
        ...

    async def close(self) -> None: ...


# (input headers, caller invocation id) of an invocation the engine knows, for the trace lineage.
Lineage = Callable[[str], "tuple[list[tuple[str, str]], str | None] | None"]


def start_tracing(config: Config, lineage: Lineage) -> Tracer | None:
    """The OTLP tracer for ``config.tracing_endpoint``, or None when tracing is off."""
    if not config.tracing_endpoint:
        return None
    from engine.telemetry.otel import OtlpTracer

    return OtlpTracer(config.tracing_endpoint, TracingProtocol(config.tracing_protocol), lineage)


def input_headers(journal: list[JournalEntry]) -> list[tuple[str, str]]:
    """The headers journaled with an invocation's input (the ingress request's, or a caller's)."""
    if not journal or journal[0][0] != MessageType.INPUT_COMMAND:
        return []
    return [(h.key, h.value) for h in pb.InputCommandMessage.FromString(journal[0][1]).headers]


def invocation_span_id(invocation_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(b"span:" + invocation_id.encode(), digest_size=8).digest(), "big") or 1


def invocation_trace_id(invocation_id: str) -> int:
    """The trace of an invocation that arrived with no ``traceparent`` and has no caller."""
    return int.from_bytes(hashlib.blake2b(b"trace:" + invocation_id.encode(), digest_size=16).digest(), "big") or 1
