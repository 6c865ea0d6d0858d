"""Traces over OTLP: invocation and attempt spans, a call's callee in its caller's trace, the
ingress traceparent continued, and the SDK's own spans parented under the attempt."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.otlp import GrpcReceiver, HttpReceiver, ReceivedSpan
from tests.support import REPO, Quill, SdkService, one_process

pytestmark = one_process

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def traced_service(receiver: HttpReceiver) -> Iterator[SdkService]:
    service = SdkService("tests.services.traced:app", env={"TEST_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces"})
    yield service
    service.stop()


def _quill(data: Path, endpoint: str, protocol: str) -> Quill:
    env = {"QUILL_TRACING_ENDPOINT": endpoint, "QUILL_TRACING_PROTOCOL": protocol, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    return Quill(data, env=env)


def test_a_call_and_its_callee_share_the_ingress_trace_and_the_sdk_spans_join_it(
    tmp_path: Path, receiver: HttpReceiver, traced_service: SdkService
) -> None:
    quill = _quill(tmp_path / "data", receiver.endpoint, "http/protobuf")
    try:
        registered = httpx.post(f"{quill.admin}/deployments", json={"uri": traced_service.url, "use_http_11": True})
        assert registered.status_code == 201, registered.text
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        answer = httpx.post(f"{quill.ingress}/Traced/relay", json="x", headers={"traceparent": traceparent})
        assert answer.json() == "echo x"

        def complete(spans: list[ReceivedSpan]) -> bool:
            names = {span.name for span in spans}
            return {"Traced/relay", "Traced/echo", "sdk work"} <= names

        spans = receiver.sink.wait_for(complete)
    finally:
        quill.stop()
    (relay,) = [s for s in spans if s.name == "Traced/relay"]
    (echo,) = [s for s in spans if s.name == "Traced/echo"]
    relay_attempts = [s for s in spans if s.name == "attempt Traced/relay"]
    (echo_attempt,) = [s for s in spans if s.name == "attempt Traced/echo"]
    (sdk_work,) = [s for s in spans if s.name == "sdk work"]

    assert {s.trace_id for s in spans} == {CLIENT_TRACE}
    # The caller's invocation continues the client's span; the callee's is its caller's child.
    assert relay.parent_span_id == CLIENT_SPAN and relay.kind == SERVER
    assert echo.parent_span_id == relay.span_id
    assert relay.attributes["restate.invocation.id"] != echo.attributes["restate.invocation.id"]
    assert relay.attributes["rpc.service"] == "Traced" and relay.attributes["rpc.method"] == "relay"
    assert relay.attributes["restate.invocation.result"] == "success"
    # Request/response mode: the caller suspends on the call and a second attempt returns its result.
    assert len(relay_attempts) == 2
    assert all(a.parent_span_id == relay.span_id and a.kind == CLIENT for a in relay_attempts)
    first, second = sorted(relay_attempts, key=lambda a: int(a.attributes["quill.attempt"]))
    assert "Command/Call" in first.events and first.attributes["quill.attempt.ending"] == "suspend"
    assert second.events == ["Command/Output"] and second.attributes["quill.attempt.ending"] == "end"
    assert echo_attempt.parent_span_id == echo.span_id
    assert echo_attempt.events == ["Command/Output"]
    # The SDK read the attempt's traceparent: its span is the callee attempt's child.
    assert sdk_work.service == "traced-sdk" and sdk_work.parent_span_id == echo_attempt.span_id
    assert relay.service == echo.service == "quill"


def test_over_grpc_an_invocation_without_traceparent_starts_its_own_trace(
    tmp_path: Path, sdk_service: SdkService
) -> None:
    receiver = GrpcReceiver()
    quill = _quill(tmp_path / "data", receiver.endpoint, "grpc")
    try:
        registered = httpx.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201, registered.text
        assert httpx.post(f"{quill.ingress}/Greeter/fail", json="x").status_code == 409
        spans = receiver.sink.wait_for(lambda spans: any(s.name == "Greeter/fail" for s in spans))
    finally:
        quill.stop()
        receiver.stop()
    (invocation,) = [s for s in spans if s.name == "Greeter/fail"]
    (attempt,) = [s for s in spans if s.name == "attempt Greeter/fail"]
    assert invocation.parent_span_id == ""
    assert attempt.trace_id == invocation.trace_id and attempt.parent_span_id == invocation.span_id
    assert invocation.attributes["restate.invocation.result"] == "failure"


def test_without_an_endpoint_no_opentelemetry_sdk_or_exporter_is_loaded(tmp_path: Path) -> None:
    # (FastAPI itself imports the OpenTelemetry *API* when it is installed.)
    script = f"""
import asyncio, sys
from admin import create_admin_app
from engine import Engine, load_config
from ingress import IngressApp

async def main():
    engine = Engine(load_config(env={{}}, overrides={{"data_dir": {str(tmp_path / "data")!r}}}))
    await engine.start()
    create_admin_app(engine), IngressApp(engine)
    await engine.stop()

asyncio.run(main())
loaded = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto", "grpc")
print(sorted(name for name in sys.modules if name.startswith(loaded)))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
