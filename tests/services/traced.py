"""A traced Restate SDK service: a caller, a callee that opens its own span with the SDK's
``RestateTracer`` (so it must join quill's trace), exported over OTLP/HTTP to
``TEST_TRACES_ENDPOINT``."""

from __future__ import annotations

import os

import restate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from restate.ext.tracing import RestateTracer

_provider = TracerProvider(resource=Resource.create({"service.name": "traced-sdk"}))
_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["TEST_TRACES_ENDPOINT"])))
_tracer = RestateTracer(_provider.get_tracer("tests.services.traced"))

traced = restate.Service("Traced")


@traced.handler()
async def echo(ctx: restate.Context, name: str) -> str:
    with _tracer.start_as_current_span("sdk work"):
        return f"echo {name}"


@traced.handler()
async def relay(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(echo, arg=name)


app = restate.app(services=[traced])
