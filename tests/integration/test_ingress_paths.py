"""How the ingress classifies paths and answers what does not fit, CORS, private services and
hostile ``?delay=`` values and bodies, as Restate 1.7.12 does (/work/research/compat/NOTES.md,
sections E, F, H, I); where the reference answers 500 or drops the connection, quill answers 400."""

from __future__ import annotations

import httpx
import pytest

from ingress.paths import BAD_AWAKEABLE_PATH, BAD_INVOCATION_PATH, BAD_LEGACY_PATH, BAD_PATH, BAD_WORKFLOW_PATH
from tests.support import Quill

DONE = "inv_1bU0DWWKIOHH0t8PeP3F2yNF36KEOV9Jpa"  # well-formed, unknown to quill
NOT_FOUND = "not found"
UNKNOWN_SERVICE = "service 'Nope' not found, make sure to register the service before calling it."
UNKNOWN_HANDLER = (
    "the service 'Greeter' exists, but the handler 'nope' was not found,"
    " check that the handler exists in the latest registered service version."
)
BAD_KEY = (
    "bad path, cannot decode key: FromUtf8Error { bytes: [255],"
    " error: Utf8Error { valid_up_to: 0, error_len: Some(1) } }"
)
METHOD = "method not allowed"


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


PATHS = [
    # A known family with the wrong number of segments: 400 with the valid forms.
    ("GET", "/restate/call/Greeter", 400, BAD_PATH),
    ("POST", "/restate/call/Greeter/greet/extra/more", 400, BAD_PATH),
    ("POST", "/restate/send/Greeter", 400, BAD_PATH),
    ("POST", "/restate/call", 400, BAD_PATH),
    ("POST", "/restate/call/Counter/add", 400, BAD_PATH),  # an object without its key
    ("POST", "/restate/call/Greeter/k/greet", 400, BAD_PATH),  # a key on a plain service
    ("POST", "/restate/send/Signup/run", 400, BAD_PATH),
    ("POST", "/restate/scope/s1/call/Greeter", 400, BAD_PATH),
    ("POST", "/restate/scope/s1/foo/Greeter/greet", 400, BAD_PATH),
    ("GET", f"/restate/attach/{DONE}/extra", 400, BAD_PATH),
    ("GET", f"/restate/output/{DONE}/extra", 400, BAD_PATH),
    ("GET", "/restate/attach/x/y", 400, BAD_PATH),
    ("POST", "/restate/lookup/x", 400, BAD_PATH),
    ("POST", "/Greeter/greet/x/y/z", 400, BAD_LEGACY_PATH),
    ("POST", "/Greeter/greet/send/x", 400, BAD_LEGACY_PATH),
    ("POST", "/Counter/k1", 400, BAD_LEGACY_PATH),
    ("POST", "/Greeter/k/greet", 400, BAD_LEGACY_PATH),
    ("GET", "/Greeter", 400, "bad path: /Greeter"),
    ("GET", "/", 400, "bad path: /"),
    ("GET", "/restate/", 400, "bad path: /restate"),
    ("GET", "/openapi", 400, "bad path: /openapi"),
    ("GET", "/a/b/c/d/e/f/g/h", 400, "bad path: /a/b/c/d/e/f/g/h"),  # more than 7 slashes
    ("GET", "/restate/invocation/x", 400, BAD_INVOCATION_PATH),
    ("GET", "/restate/invocation", 400, BAD_INVOCATION_PATH),
    ("GET", "/restate/invocation/Greeter/greet/ik", 400, BAD_INVOCATION_PATH),
    ("GET", "/restate/workflow/Signup/k1", 400, BAD_WORKFLOW_PATH),
    ("GET", "/restate/workflow", 400, BAD_WORKFLOW_PATH),
    ("POST", "/restate/awakeables/x", 400, BAD_AWAKEABLE_PATH),
    ("POST", "/restate/a/x", 400, BAD_AWAKEABLE_PATH),
    # Three segments after /restate/invocation/: the first names a service, looked up first.
    ("GET", f"/restate/invocation/{DONE}/attach/extra", 404, f"service '{DONE}' not found, make sure to register"),
    ("GET", f"/restate/invocation/{DONE}/foo", 404, NOT_FOUND),
    ("GET", "/restate/workflow/Signup/k1/foo", 404, NOT_FOUND),
    ("GET", "/restate/foo", 404, NOT_FOUND),
    ("GET", "/restate/openapi", 404, NOT_FOUND),
    ("POST", "/restate/call/Nope/x", 404, UNKNOWN_SERVICE),
    ("POST", "/Nope/x", 404, UNKNOWN_SERVICE),
    ("POST", "/restate/call/Greeter/nope", 404, UNKNOWN_HANDLER),
    # Invocation ids are checked before the method.
    ("POST", "/restate/attach/inv_xxx", 400, "bad invocation id 'inv_xxx': unrecognized codec version"),
    ("GET", "/restate/output/x", 400, "bad invocation id 'x': bad format"),
    ("GET", "/restate/invocation/inv_1/attach", 400, "bad invocation id 'inv_1': bad length"),
    ("POST", f"/restate/attach/{DONE}", 405, METHOD),
    ("GET", "/restate/lookup", 405, METHOD),
    ("PUT", "/restate/call/Greeter/greet", 405, METHOD),
    ("POST", "/restate/health", 405, METHOD),
    ("DELETE", "/restate/health/x", 405, METHOD),
    # Keys are percent-decoded, and must be UTF-8.
    ("POST", "/restate/call/Counter/%FF/add", 400, BAD_KEY),
    ("POST", "/Counter/%FF/add", 400, BAD_KEY),
    ("GET", "/restate/workflow/Signup/%FF/output", 400, BAD_KEY),
]


@pytest.mark.parametrize(("method", "path", "status", "message"), PATHS)
async def test_path_classification(
    quill: Quill, client: httpx.AsyncClient, method: str, path: str, status: int, message: str
) -> None:
    answer = await client.request(method, f"{quill.ingress}{path}", content=b'"x"', headers=_json())
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["message"].startswith(message), body
    assert (body["code"], body["source"], answer.headers["x-restate-error-source"]) == (status, "ingress", "ingress")


async def test_valid_forms_reach_their_targets(quill: Quill, client: httpx.AsyncClient) -> None:
    called = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="paths")
    invocation_id = called.headers["x-restate-id"]
    for path in (f"/restate/attach/{invocation_id}", f"/restate/invocation/{invocation_id}/output"):
        answer = await client.get(f"{quill.ingress}{path}")
        assert (answer.status_code, answer.json()) == (200, "Hello paths!")
    # A key may hold a '/' (percent-encoded) and '+' stays a '+'.
    await client.post(f"{quill.ingress}/restate/call/Counter/a%2Fb+c/add", json=2)
    assert (await client.post(f"{quill.ingress}/Counter/a%2Fb+c/get")).json() == 2
    health = await client.get(f"{quill.ingress}/restate/health/anything")
    assert "Greeter" in health.json()["services"]
    # Restate answers HEAD /restate/health with 405 (and no body, as any HEAD).
    head = await client.head(f"{quill.ingress}/restate/health")
    assert (head.status_code, head.content, head.headers["x-restate-error-source"]) == (405, b"", "ingress")


async def test_an_empty_object_key_is_a_key_of_its_own(quill: Quill, client: httpx.AsyncClient) -> None:
    # As in Restate: "" is a key like any other (its own state and lock), not "no key".
    first = await client.post(f"{quill.ingress}/restate/call/Counter//add", json=1)
    assert first.status_code == 200, first.text
    assert (await client.post(f"{quill.ingress}/Counter//add", json=2)).json() == 3
    # A handler's call to the empty key reaches the same object.
    assert (await client.post(f"{quill.ingress}/Caller/call_counter", json="")).json() == 8
    assert (await client.post(f"{quill.ingress}/restate/call/Counter/not-empty/get")).json() == 0
    invocation = await client.get(f"{quill.admin}/invocations/{first.headers['x-restate-id']}")
    assert invocation.json()["target"] == "Counter//add"
    query = {"query": "SELECT service_key, value_utf8 FROM state WHERE service_name = 'Counter' AND service_key = ''"}
    state = await client.post(f"{quill.admin}/query", json=query, headers={"accept": "application/json"})
    assert [row["service_key"] for row in state.json()["rows"]] == [""]


async def test_cors_as_the_reference_answers_it(quill: Quill, client: httpx.AsyncClient) -> None:
    vary = "origin, access-control-request-method, access-control-request-headers"
    preflight = await client.options(
        f"{quill.ingress}/restate/call/Greeter/greet",
        headers={
            "origin": "http://example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,idempotency-key",
        },
    )
    assert (preflight.status_code, preflight.content) == (200, b"")
    assert preflight.headers["access-control-allow-origin"] == "http://example.com"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert preflight.headers["access-control-allow-headers"] == "content-type,idempotency-key"
    assert (preflight.headers["access-control-allow-credentials"], preflight.headers["vary"]) == ("true", vary)
    # Any path is a preflight target; without an Origin nothing is mirrored.
    bare = await client.options(f"{quill.ingress}/nope/nope/nope/nope")
    assert bare.status_code == 200 and "access-control-allow-origin" not in bare.headers
    assert bare.headers["access-control-allow-credentials"] == "true"

    called = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", json="cors", headers={"origin": "http://example.com"}
    )
    assert called.json() == "Hello cors!"
    assert called.headers["access-control-allow-origin"] == "http://example.com"
    # quill lets browser code read the invocation id (a deliberate addition, see the README).
    assert called.headers["access-control-expose-headers"] == "x-restate-id, idempotency-expires"
    refused = await client.post(f"{quill.ingress}/restate/call/Greeter/nope", headers={"origin": "http://e.com"})
    assert (refused.status_code, refused.headers["access-control-allow-origin"]) == (404, "http://e.com")
    plain = await client.get(f"{quill.ingress}/restate/health")
    assert plain.headers["vary"] == vary and "access-control-expose-headers" not in plain.headers
    # The admin API has none, as in Restate.
    assert (
        "access-control-allow-origin"
        not in (await client.get(f"{quill.admin}/health", headers={"origin": "http://e.com"})).headers
    )


async def test_private_services_are_refused_with_the_reference_message(quill: Quill, client: httpx.AsyncClient) -> None:
    await client.patch(f"{quill.admin}/services/Timers", json={"public": False})
    try:
        for path in ("/restate/call/Timers/sleep", "/Timers/sleep", "/restate/send/Timers/sleep", "/Timers/sleep/send"):
            answer = await client.post(f"{quill.ingress}{path}", json=1)
            assert answer.status_code == 400
            assert answer.json() == {"code": 400, "message": "the invoked service is not public", "source": "ingress"}
    finally:
        await client.patch(f"{quill.admin}/services/Timers", json={"public": True})


@pytest.mark.parametrize(
    ("delay", "problem"),
    [
        ("1000000000000000000s", "ends after 9999-12-31"),
        ("2912109d", "ends after 9999-12-31"),  # the reference drops the connection here
        ("631139040000s", "ends after 9999-12-31"),
        ("99999999999999999999s", "ends after 9999-12-31"),
        ("P99999999Y", "please use units of days or smaller"),
        ("P1M", "please use units of days or smaller"),
        ("1000y", "please use units of days or smaller"),
        ("-1s", "negative signed durations cannot be converted to an unsigned duration"),
        ("1s%20ago", "negative signed durations cannot be converted to an unsigned duration"),
        ("1e309s", ""),
        ("10", ""),
        ("NaN", ""),
        ("abc", ""),
        ("%FF", ""),
        ("", ""),
        (".5s", ""),
    ],
)
async def test_hostile_delays_are_400(quill: Quill, client: httpx.AsyncClient, delay: str, problem: str) -> None:
    answer = await client.post(f"{quill.ingress}/restate/send/Greeter/greet?delay={delay}", json="d")
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith("bad delay query parameter, must be a ISO8601 duration: ")
    assert problem in answer.json()["message"]


async def test_delays_the_reference_accepts(quill: Quill, client: httpx.AsyncClient) -> None:
    for delay in (
        "0",
        "PT0S",
        "1ms",
        "1ns",
        "PT1.5S",
        "1.5s",
        "%2B1s",
        "1d1h",
        "1h%2030m",
        "2%20days%201%20sec",
        "P1W",
    ):
        answer = await client.post(f"{quill.ingress}/restate/send/Greeter/greet?delay={delay}", json="d")
        assert answer.status_code == 202, (delay, answer.text)
        assert list(answer.json()) == ["invocationId", "executionTime", "status"]
    latest = await client.post(f"{quill.ingress}/restate/send/Greeter/greet?delay=2912000d&delay=-1s", json="d")
    assert latest.json()["executionTime"].startswith("9999-")  # the first delay wins
    call = await client.post(f"{quill.ingress}/restate/call/Greeter/greet?delay=1s", json="d")
    assert call.json()["message"].startswith("cannot use the delay query parameter with calls")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"[]",
        b"{}",
        b"null",
        b'"x"',
        b'{"target":5}',
        b'{"target":"invocation"}',
        b'{"target":"invocation","invocationId":5}',
        b'{"target":"workflow","workflowName":"Signup"}',
        b'{"target":"idempotentInvocation","service":"Greeter","handler":"greet"}',
        b'{"target":"foo"}',
        b'{"target":"Invocation","invocationId":"x"}',
        b"\x00\xff\xfe\x01garbage\x80",
        b"[" * 100_000 + b"]",
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
    ],
)
async def test_malformed_target_bodies_are_400(quill: Quill, client: httpx.AsyncClient, body: bytes) -> None:
    for action in ("attach", "output", "lookup"):
        answer = await client.post(f"{quill.ingress}/restate/{action}", content=body, headers=_json())
        assert answer.status_code == 400, (action, answer.text)  # Restate: 500 with a Rust backtrace
        what = "lookup" if action == "lookup" else "request"
        assert answer.json()["message"].startswith(f"cannot read body: invalid {what} body: ")


async def test_target_bodies(quill: Quill, client: httpx.AsyncClient) -> None:
    called = await client.post(
        f"{quill.ingress}/restate/call/Greeter/greet", json="body", headers={"idempotency-key": "b"}
    )
    invocation_id = called.headers["x-restate-id"]
    bodies = [
        {"target": "invocation", "invocationId": invocation_id, "extra": 1},  # unknown fields are ignored
        {"target": "idempotentInvocation", "service": "Greeter", "handler": "greet", "idempotencyKey": "b"},
    ]
    for body in bodies:
        assert (await client.post(f"{quill.ingress}/restate/lookup", json=body)).json() == {
            "invocationId": invocation_id
        }
        assert (await client.post(f"{quill.ingress}/restate/output", json=body)).json() == "Hello body!"
    bad_id = await client.post(f"{quill.ingress}/restate/attach", json={"target": "invocation", "invocationId": "x"})
    assert bad_id.json() == {"code": 400, "message": "bad invocation id 'x': bad format", "source": "ingress"}


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}
