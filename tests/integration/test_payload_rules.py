"""Input validation, output content types and the admin's handler metadata for every input/output
shape the Python and TypeScript SDKs put in their manifests, as Restate 1.7.12 answers them
(recorded in /work/research/compat/NOTES.md, sections A and C; tests/services/payloads.py and the
TsPayloads service of tests/ts/services.js declare the shapes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import Quill, SdkService, TsService

JSON = "application/json"
NO_RULE_MATCH = "input validation error: Expected body and content-type to be empty, but wasn't with content-type"


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Iterator[Quill]:
    """The shared test services, and both SDKs' payload services."""
    services = [SdkService("tests.services.payloads:app"), TsService(script="tests/ts/payloads.js")]
    try:
        for service in services:
            answer = httpx.post(f"{registered.admin}/deployments", json={"uri": service.url, "use_http_11": True})
            assert answer.status_code == 201, answer.text
        yield registered
    finally:
        for service in services:
            service.stop()


# (path, content type, body) -> (status, content type of the answer, body or error message)
CASES = [
    # A TS handler without a parameter advertises optional JSON input: an empty JSON request runs it.
    ("TsPayloads/noInput", None, b"", 200, JSON, b'"no input"'),
    ("TsPayloads/noInput", JSON, b"", 200, JSON, b'"no input"'),
    ("TsPayloads/noInput", "text/plain", b"x", 400, JSON, "'text/plain' does not match 'application/json'"),
    ("TsPayloads/noInput", None, b'"x"', 400, JSON, "input validation error: Empty content-type"),
    ("TsPayloads/noInput", "application/json; charset=utf-8", b"{}", 200, JSON, b'"no input"'),
    ("TsPayloads/optional", JSON, b'"bob"', 200, JSON, b'"opt \\"bob\\""'),
    ("TsPayloads/optional", JSON, b"", 200, JSON, b'"opt undefined"'),
    # serde.empty: no body and no content type only.
    ("TsPayloads/emptySerde", None, b"", 200, JSON, b'"empty serde"'),
    ("TsPayloads/emptySerde", JSON, b"", 400, JSON, f"{NO_RULE_MATCH} 'Some(\"application/json\")'"),
    ("TsPayloads/emptySerde", None, b"x", 400, JSON, f"{NO_RULE_MATCH} 'None'"),
    # A JSON schema: a body is required once a content type is sent; bodies are not parsed here.
    ("TsPayloads/jsonSchema", JSON, b"", 400, JSON, "input validation error: Empty body not allowed"),
    ("TsPayloads/jsonSchema", JSON, b'{"n":1}', 200, JSON, b'{"n":1}'),
    ("TsPayloads/standardSchema", JSON, b'{"name":"ts"}', 200, JSON, b'"hi ts"'),
    ("TsPayloads/binary", JSON, b"", 400, JSON, "'application/json' does not match 'application/octet-stream'"),
    ("TsPayloads/binary", "application/octet-stream", b"abc", 200, "application/octet-stream", b"cba"),
    ("TsPayloads/custom", "application/x-custom", b"abc", 200, "application/x-custom", b"custom:abc"),
    ("TsPayloads/acceptText", "text/markdown", b"# a", 200, "text/plain", b"# a"),
    ("TsPayloads/acceptText", JSON, b"{}", 400, JSON, "Content-type 'application/json' does not match 'text/*'"),
    # Matching is case-sensitive, as in the reference.
    ("TsPayloads/noInput", "Application/JSON", b"{}", 400, JSON, "Content-type 'Application/JSON' does not match"),
    # Output: an empty result has a content type only with setContentTypeIfEmpty.
    ("TsPayloads/emptyJson", None, b"", 200, None, b""),
    ("TsPayloads/emptyJsonSet", None, b"", 200, JSON, b""),
    ("TsPayloads/emptyBinarySet", None, b"", 200, "application/octet-stream", b""),
    ("TsPayloads/voidSerdeSet", None, b"", 200, None, b""),
    ("TsPayloads/textOut", None, b"", 200, "text/plain", b"plain text"),
    # The Python SDK: a handler without input says `input: {}`.
    ("PyPayloads/no_input", None, b"", 200, JSON, b'"no input"'),
    ("PyPayloads/no_input", JSON, b'"x"', 400, JSON, f"{NO_RULE_MATCH} 'Some(\"application/json\")'"),
    ("PyPayloads/optional", None, b"", 200, JSON, b'"opt None"'),
    ("PyPayloads/optional", JSON, b"", 400, JSON, "input validation error: Empty body not allowed"),
    ("PyPayloads/optional", "application/json; charset=utf-8", b'"py"', 200, JSON, b"\"opt 'py'\""),
    ("PyPayloads/pydantic_model", JSON, b'{"name":"py","age":3}', 200, JSON, b'{"name":"PY","age":4}'),
    ("PyPayloads/dataclass_input", JSON, b'{"x":1,"y":2}', 200, JSON, b"3"),
    ("PyPayloads/raw_bytes", "text/plain", b"abc", 200, "application/octet-stream", b"cba"),
    ("PyPayloads/raw_bytes", None, b"", 200, None, b""),
    ("PyPayloads/no_output", JSON, b'"py"', 200, None, b""),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content_type", "body", "status", "answer_type", "expected"), CASES)
async def test_input_rules_and_output_content_type(
    quill: Quill,
    client: httpx.AsyncClient,
    path: str,
    content_type: str | None,
    body: bytes,
    status: int,
    answer_type: str | None,
    expected: bytes | str,
) -> None:
    headers = {"content-type": content_type} if content_type is not None else {}
    answer = await client.post(f"{quill.ingress}/restate/call/{path}", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers.get("content-type") == answer_type
    if isinstance(expected, bytes):
        assert answer.content == expected
    else:
        assert expected in answer.json()["message"]
        assert (answer.json()["source"], answer.headers["x-restate-error-source"]) == ("ingress", "ingress")


async def test_handler_metadata_leaves_out_what_is_unset(quill: Quill, client: httpx.AsyncClient) -> None:
    async def handler(service: str, name: str) -> dict[str, object]:
        answer = await client.get(f"{quill.admin}/services/{service}/handlers/{name}")
        assert answer.status_code == 200
        found: dict[str, object] = answer.json()
        return found

    none = {"max_attempts": None}  # the one explicit null
    # Service handlers have no "ty"; no schema, no documentation, no metadata: no key at all.
    assert await handler("TsPayloads", "noInput") == {
        "name": "noInput",
        "public": True,
        "input_description": "application/json",
        "output_description": "application/json",
        "retry_policy": none,
    }
    assert (await handler("TsPayloads", "emptySerde"))["input_description"] == "none"
    assert (await handler("TsPayloads", "emptyJsonSet"))["output_description"] == "optional application/json"
    assert (await handler("TsPayloads", "voidSerdeSet"))["output_description"] == "none"
    assert await handler("PyPayloads", "no_input") == {
        "name": "no_input",
        "public": True,
        "input_description": "none",
        "output_description": "JSON string",
        "output_json_schema": {"type": "string"},
        "retry_policy": none,
    }
    model = await handler("PyPayloads", "pydantic_model")
    assert model["input_description"] == model["output_description"] == "JSON 'Person'"
    # Schemas come back with their keys sorted, as Restate stores them.
    assert list(model["input_json_schema"]) == ["properties", "required", "title", "type"]  # type: ignore[arg-type]
    assert list(model["input_json_schema"]["properties"]) == ["age", "name"]  # type: ignore[index]
    raw = await handler("PyPayloads", "raw_bytes")
    assert (raw["input_description"], raw["input_json_schema"]) == ("*/*", True)
    assert (await handler("PyPayloads", "no_output"))["output_description"] == "none"
    shared = await handler("Counter", "get")
    assert (shared["ty"], "input_json_schema" in shared) == ("Shared", False)

    service = (await client.get(f"{quill.admin}/services/Greeter")).json()
    assert "documentation" not in service and "metadata" not in service
    assert [k for k in service if k in ("idempotency_retention", "journal_retention")] == [
        "idempotency_retention",
        "journal_retention",
    ]
    workflow = list((await client.get(f"{quill.admin}/services/Signup")).json())
    assert workflow.index("workflow_completion_retention") == workflow.index("idempotency_retention") + 1
