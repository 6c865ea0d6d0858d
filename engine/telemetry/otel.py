"""OpenTelemetry spans for invocations and attempts, exported over OTLP (gRPC or HTTP/protobuf).

Loaded only when a tracing endpoint is configured (see ``engine/telemetry/traces.py``).

- One span per invocation, ``{service}/{handler}`` (kind SERVER), written when it completes, from
  its creation time. Its parent is the ``traceparent`` the ingress request carried (journaled with
  the input) or, for a service-to-service call, the caller's invocation span, so caller and
  callee share one trace. One-way sends start a trace of their own (the sender is not recorded).
- One span per attempt, ``attempt {service}/{handler}`` (kind CLIENT), child of the invocation's;
  every journal entry the attempt wrote is an event on it (``Command/Call``, ``Completion/Run``…).
  Its context goes to the deployment as ``traceparent``, and the Restate SDKs parent their own
  spans under it (``restate.ext.tracing`` in the Python SDK), so they join the same trace.

The invocation's span id is derived from its invocation id (see ``traces.py``); the SDK's id
generator is asked for it through a context variable while that span starts.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import OrderedDict
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from engine.config import TracingProtocol
from engine.partition.types import JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import InvocationStatus, Target
from engine.telemetry.traces import Lineage, input_headers, invocation_span_id, invocation_trace_id

_propagator = TraceContextTextMapPropagator()
_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("quill_forced_ids", default=None)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KNOWN_LIMIT = 65_536  # invocations whose trace is remembered in memory (the lineage is the fallback)
_LINEAGE_DEPTH = 64
_NO_OUTPUT = "[571] the invocation ended without an output command"


class _DerivedIds(IdGenerator):
    """Random ids, except the derived ones of an invocation span being started."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced is not None else self._random.generate_trace_id()


class OtlpTracer:
    def __init__(self, endpoint: str, protocol: TracingProtocol, lineage: Lineage) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": "quill"}), id_generator=_DerivedIds())
        self._provider.add_span_processor(BatchSpanProcessor(_exporter(endpoint, protocol)))
        self._tracer = self._provider.get_tracer("quill")
        self._lineage = lineage
        # invocation id -> (trace id, flags, parent of its span), for attempts and callees.
        self._known: OrderedDict[str, tuple[int, TraceFlags, SpanContext | None]] = OrderedDict()

    # -- Tracer ------------------------------------------------------------------------------
    def start_attempt(self, status: InvocationStatus, journal: list[JournalEntry], attempt: int) -> _AttemptSpan:
        caller = status.caller.invocation_id if status.caller is not None else None
        trace_id, flags, _ = self._place(status.id, input_headers(journal), caller)
        invocation = SpanContext(trace_id, invocation_span_id(status.id), is_remote=False, trace_flags=flags)
        name = _name(status.target)
        span = self._tracer.start_span(
            f"attempt {name}",
            context=set_span_in_context(NonRecordingSpan(invocation)),
            kind=SpanKind.CLIENT,
            attributes={"restate.invocation.id": status.id, "quill.attempt": attempt, **_target(status.target)},
        )
        return _AttemptSpan(self, span, status, len(journal))

    def invocation_ended(
        self, status: InvocationStatus, failure: str | None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        caller = status.caller.invocation_id if status.caller is not None else None
        trace_id, flags, parent = self._place(status.id, headers, caller)
        self._known.pop(status.id, None)
        if not flags.sampled:
            return
        context = set_span_in_context(NonRecordingSpan(parent)) if parent is not None else Context()
        token = _forced_ids.set((trace_id, invocation_span_id(status.id)))
        try:
            span = self._tracer.start_span(
                _name(status.target),
                context=context,
                kind=SpanKind.SERVER,
                start_time=status.created_at * 1_000_000,
                attributes={"restate.invocation.id": status.id, **_target(status.target)},
            )
        finally:
            _forced_ids.reset(token)
        span.set_attribute("restate.invocation.result", "failure" if failure is not None else "success")
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR, failure))
        span.end()

    async def close(self) -> None:
        # Flushing may wait for an unreachable collector: never on the event loop.
        await asyncio.to_thread(self._provider.shutdown)

    # -- lineage -----------------------------------------------------------------------------
    def _place(
        self, invocation_id: str, headers: list[tuple[str, str]] | None, caller_id: str | None, depth: int = 0
    ) -> tuple[int, TraceFlags, SpanContext | None]:
        """(trace id, flags, parent span context) of an invocation's span; ``headers`` None: ask
        the engine for the invocation's input headers and caller."""
        known = self._known.get(invocation_id)
        if known is not None:
            return known
        if headers is None:
            found = self._lineage(invocation_id)
            headers = found[0] if found is not None else []
            if caller_id is None and found is not None:
                caller_id = found[1]
        placed: tuple[int, TraceFlags, SpanContext | None]
        remote = _remote_parent(headers)
        if caller_id is not None and depth < _LINEAGE_DEPTH:
            trace_id, flags, _ = self._place(caller_id, None, None, depth + 1)
            placed = trace_id, flags, SpanContext(trace_id, invocation_span_id(caller_id), False, flags)
        elif remote is not None:
            placed = remote.trace_id, remote.trace_flags, remote
        else:
            placed = invocation_trace_id(invocation_id), _SAMPLED, None
        self._known[invocation_id] = placed
        if len(self._known) > _KNOWN_LIMIT:
            self._known.popitem(last=False)
        return placed


class _AttemptSpan:
    def __init__(self, tracer: OtlpTracer, span: Span, status: InvocationStatus, index: int) -> None:
        self._tracer = tracer
        self._span = span
        self._status = status
        self._index = index  # journal index of the next entry
        self._output: str | None = _NO_OUTPUT  # the invocation's failure, None once a value was output

    @property
    def headers(self) -> list[tuple[str, str]]:
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=set_span_in_context(self._span))
        return list(carrier.items())

    def journaled(self, entries: list[JournalEntry]) -> None:
        for message_type, payload in entries:
            self._span.add_event(_entry_name(message_type), {"restate.journal.index": self._index})
            self._index += 1
            if message_type == MessageType.OUTPUT_COMMAND:
                output = pb.OutputCommandMessage.FromString(payload)
                failed = output.HasField("failure")
                self._output = f"[{output.failure.code}] {output.failure.message}" if failed else None

    def finished(self, ending: str, failure: str | None, completed: bool) -> None:
        self._span.set_attribute("quill.attempt.ending", ending)
        if ending == "error" and failure is not None:
            self._span.set_status(Status(StatusCode.ERROR, failure))
        self._span.end()
        if completed:
            self._tracer.invocation_ended(self._status, self._output)


def _exporter(endpoint: str, protocol: TracingProtocol) -> SpanExporter:
    if protocol is TracingProtocol.HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        # As OTEL_EXPORTER_OTLP_ENDPOINT: a base URL gets the signal's path.
        if urlsplit(endpoint).path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))


def _remote_parent(headers: list[tuple[str, str]]) -> SpanContext | None:
    carrier = {key.lower(): value for key, value in headers if key.lower() in ("traceparent", "tracestate")}
    if "traceparent" not in carrier:
        return None
    context = get_current_span(_propagator.extract(carrier)).get_span_context()
    return context if context.is_valid else None


def _name(target: Target) -> str:
    return f"{target.service}/{target.handler}"


def _target(target: Target) -> dict[str, str]:
    keyed = f"{target.service}/{target.key}/{target.handler}" if target.key else _name(target)
    return {
        "restate.invocation.target": keyed,
        "rpc.system": "restate",
        "rpc.service": target.service,
        "rpc.method": target.handler,
    }


def _entry_name(message_type: int) -> str:
    """``Command/Call``, ``Completion/Sleep``, ``Notification/Signal``: Restate's journal entry names."""
    try:
        name = MessageType(message_type).name
    except ValueError:
        return "Custom"
    rest, _, kind = name.rpartition("_")
    return f"{kind.capitalize()}/{''.join(part.capitalize() for part in rest.split('_'))}"
