"""Property-based fuzzing of the Restate ingress: whatever arrives, quill answers, and never with a
5xx of its own (a 5xx the *handler* made, ``x-restate-error-source: invocation``, is the handler's).

Requests are written on a raw socket, so methods, paths (percent-encodings, undecodable bytes,
empty segments), queries, headers and bodies reach quill exactly as generated. They are built from
the ingress's own vocabulary (its path families, registered services, attach/output/lookup bodies,
hostile ``?delay=`` values) mixed with arbitrary text and bytes. Handlers that could block or retry
for ever on arbitrary input (a sleep of any length, a workflow waiting on its promise, an object
handler that fails on a bad argument and holds its key) are never named, so every request that
reaches a handler gets its answer at once. The Dapr routes (``/v1.0/``) answer in daprd's terms,
where an unknown app is a 500 by design, and are left to their own tests.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService

# Handlers that answer at once whatever they get (terminal errors included).
SAFE_TARGETS = ["Greeter/greet", "Greeter/headers", "Greeter/fail", "Counter/{key}/get", "Counter/{key}/describe"]
SERVICES = ["Greeter", "Counter", "Signup", "Nope", "restate"]
HANDLERS = ["greet", "headers", "fail", "get", "describe", "nope", "send", "attach", "output", "resolve", "reject"]
# Any other registered handler could block: a generated segment may not name one.
UNSAFE = {"run", "confirm", "add", "append", "hold", "clear", "tag", "counted", "flaky", "stubborn", "two_steps",
          "nap", "process", "sleep", "call_counter", "send_marks", "mark", "call_failing", "refuse",
          "wait_for_awakeable", "resolve_awakeable", "reject_awakeable", "cancellable", "send_then_attach",
          "call_twice_idempotently", "call_cancellable"}  # fmt: skip
IDS = ["inv_1bU0DWWKIOHH0t8PeP3F2yNF36KEOV9Jpa", "inv_1", "inv_xxx", "x", "inv_1" + "z" * 33]
AWAKEABLES = ["sign_1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "prom_1", "sign_1!!"]
DELAYS = ["1s", "0", "10", "-1s", "P1Y", "PT1S", "1e309s", "NaN", "99999999999999999999s", "2912109d", "%FF", ""]
PERCENT = ["%FF", "%2F", "%00", "%E2%82", "%E2%82%AC", "%20", "+", "%", "%G1", "%25"]

segment_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"), max_size=12)
segment = st.one_of(
    st.sampled_from(SERVICES + HANDLERS + IDS + AWAKEABLES + ["call", "send", "scope", "invocation", "workflow"]),
    st.lists(st.one_of(segment_text, st.sampled_from(PERCENT)), max_size=4).map("".join),
).filter(lambda s: s not in UNSAFE)

family = st.sampled_from(
    ["", "/restate", "/restate/call", "/restate/send", "/restate/attach", "/restate/output", "/restate/lookup",
     "/restate/invocation", "/restate/workflow", "/restate/awakeables", "/restate/a", "/restate/health",
     "/restate/scope/s1/call", "/restate/foo"]
)  # fmt: skip
target_path = st.builds(
    lambda verb, target, key: f"/restate/{verb}/{target.replace('{key}', key)}",
    st.sampled_from(["call", "send"]),
    st.sampled_from(SAFE_TARGETS),
    st.sampled_from(["k", "", "%FF", "a%2Fb", "x+y"]),
)
path = st.one_of(
    target_path,
    st.builds(lambda f, segments, slash: f + "".join("/" + s for s in segments) + slash, family,
              st.lists(segment, max_size=7), st.sampled_from(["", "/", "//"])),
)  # fmt: skip
query = st.one_of(
    st.just(""),
    st.sampled_from(DELAYS).map(lambda d: f"?delay={d}"),
    st.lists(st.sampled_from(DELAYS), min_size=2, max_size=3).map(lambda ds: "?" + "&".join(f"delay={d}" for d in ds)),
    st.builds(lambda k, v: f"?{k}={v}", st.sampled_from(["delay", "limit-key", "x", ""]), segment_text),
)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
headers = st.dictionaries(
    st.sampled_from(["content-type", "origin", "access-control-request-method", "access-control-request-headers",
                     "x-restate-limit-key", "accept", "x-custom"]),
    st.one_of(st.sampled_from(["application/json", "text/plain", "application/octet-stream", "*/*", "application",
                               "Application/JSON", "application/json; charset=utf-8", "http://example.com"]),
              header_value),
    max_size=4,
)  # fmt: skip
idempotency_key = st.one_of(st.none(), header_value.map(lambda v: "ik-" + v))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
target_body = st.fixed_dictionaries(
    {"target": st.sampled_from(["invocation", "workflow", "idempotentInvocation", "Invocation", "x"])},
    optional={
        "invocationId": st.sampled_from(IDS) | json_values,
        "workflowName": st.sampled_from(SERVICES) | json_values,
        "workflowKey": segment_text | json_values,
        "service": st.sampled_from(SERVICES),
        "handler": st.sampled_from(HANDLERS),
        "key": segment_text,
        "idempotencyKey": segment_text.map(lambda v: "body-" + v),
        "scope": st.none() | segment_text,
    },
)
body = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    target_body.map(lambda v: json.dumps(v).encode()),
)
method = st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])

Request = tuple[str, str, dict[str, str], bytes]  # method, path and query, headers, body


def _request(method: str, path: str, query: str, headers: dict[str, str], key: str | None, body: bytes) -> Request:
    return method, path + query, {**headers, **({"idempotency-key": key} if key is not None else {})}, body


# Anything, and (as often) a call or send to a real handler, where most of the work happens.
requests = st.one_of(
    st.builds(_request, method, path, query, headers, idempotency_key, body),
    st.builds(
        _request,
        st.sampled_from(["POST", "POST", "GET"]),
        target_path,
        st.one_of(query, st.sampled_from(DELAYS).map(lambda d: f"?delay={d}")),
        st.one_of(headers, st.just({"content-type": "application/json"})),
        idempotency_key,
        st.one_of(body, json_values.map(lambda v: json.dumps(v).encode())),
    ),
)

ANSWER_WITHIN = 15.0  # seconds; every request here is answered at once when all is well


@pytest.fixture(scope="module")
def quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quill]:
    """A quill and an SDK service of its own: the fuzz leaves the shared ones alone."""
    service = SdkService()
    server = Quill(tmp_path_factory.mktemp("quill-fuzz") / "data", env=QUILL_TEST_ENV)
    try:
        answer = httpx.post(f"{server.admin}/deployments", json={"uri": service.url, "use_http_11": True})
        assert answer.status_code == 201, answer.text
        yield server
    finally:
        server.stop()
        service.stop()


@settings(
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
# What issue 15 saw answered with a 500 (or not at all), always tried.
@example(request=("POST", "/restate/send/Greeter/greet?delay=2912109d", {"content-type": "application/json"}, b"1"))
@example(request=("POST", "/restate/send/Greeter/greet?delay=99999999999999999999s", {}, b""))
@example(request=("POST", "/restate/attach", {"content-type": "application/json"}, b"{"))
@example(request=("POST", "/restate/lookup", {}, b'{"a":' * 50_000 + b"1" + b"}" * 50_000))
@example(request=("POST", "/restate/output", {}, b'{"target":"invocation","invocationId":5}'))
@example(request=("POST", "/restate/call/Counter//get", {}, b""))
def test_every_request_gets_an_answer_and_no_5xx_of_quills_own(quill: Quill, request: Request) -> None:
    method, target, headers, body = request
    status, answer_headers, answer = _exchange(quill.ingress_port, method, target, headers, body)
    source = answer_headers.get("x-restate-error-source")
    assert status < 500 or source == "invocation", (status, answer_headers, answer[:500])
    if status >= 400 and method != "HEAD" and source == "ingress":
        error = json.loads(answer)  # quill's own errors have Restate's shape
        assert set(error) == {"code", "message", "source"} and error["code"] == status


def _exchange(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a fresh connection; the answer, read to the end."""
    lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1", "connection: close", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    deadline = time.monotonic() + ANSWER_WITHIN
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if time.monotonic() > deadline:
                break
    head, _, content = bytes(received).partition(b"\r\n\r\n")
    assert head, f"no answer to {method} {target}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, content
