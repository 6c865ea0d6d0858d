"""Per-service OpenAPI documents (admin ``GET /services/{name}/openapi``): valid, shaped like
Restate's, and good enough for a generated client to call a handler through quill's ingress."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from admin.openapi import service_openapi
from engine.schema.manifest import HandlerManifest, ServiceManifest
from engine.schema.registry import ServiceEntry
from tests.support import Quill


@pytest.fixture(scope="module")
def quill(registered: Quill) -> Quill:
    return registered


async def _document(quill: Quill, client: httpx.AsyncClient, service: str) -> dict[str, Any]:
    response = await client.get(f"{quill.admin}/services/{service}/openapi")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method, path) -> operationId."""
    return {(m, p): op["operationId"] for p, item in doc["paths"].items() for m, op in item.items()}


@pytest.mark.parametrize("service", ["Greeter", "Counter", "Signup"])
async def test_document_is_valid_openapi_3_1(quill: Quill, client: httpx.AsyncClient, service: str) -> None:
    doc = await _document(quill, client, service)
    validate(doc)  # raises on the first violation
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": service, "version": "1"}
    assert doc["servers"] == [{"url": f"{quill.ingress}/", "description": "Restate Ingress URL"}]
    components = doc["components"]
    assert set(components["parameters"]) == {"delay", "idempotencyKeyHeader", "idempotencyKeyPath", "key"}
    assert set(components["responses"]) == {
        "GenericError",
        "InvocationNotFoundError",
        "InvocationNotReadyError",
        "Send",
    }
    assert components["schemas"]["RestateError"]["required"] == ["message"]
    assert components["schemas"]["RestateSendResponse"]["required"] == ["invocationId", "status"]
    assert not _nulls(doc)  # a null is what makes the real server's document invalid


def _nulls(value: Any, where: str = "#") -> list[str]:
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _nulls(v, f"{where}/{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{where}/{i}")]
    return []


async def test_service_operations(quill: Quill, client: httpx.AsyncClient) -> None:
    operations = _operations(await _document(quill, client, "Greeter"))
    assert {k: v for k, v in operations.items() if v.startswith("greet")} == {
        ("post", "/restate/call/Greeter/greet"): "greet",
        ("post", "/restate/send/Greeter/greet"): "greetSend",
        ("get", "/restate/invocation/Greeter/greet/{idempotencyKey}/attach"): "greetAttach",
        ("get", "/restate/invocation/Greeter/greet/{idempotencyKey}/output"): "greetOutput",
    }
    # Four operations for every handler of the service.
    handlers = (await client.get(f"{quill.admin}/services/Greeter")).json()["handlers"]
    assert len(operations) == 4 * len(handlers)


async def test_virtual_object_operations_and_parameters(quill: Quill, client: httpx.AsyncClient) -> None:
    doc = await _document(quill, client, "Counter")
    assert {k: v for k, v in _operations(doc).items() if v.startswith("add")} == {
        ("post", "/restate/call/Counter/{key}/add"): "add",
        ("post", "/restate/send/Counter/{key}/add"): "addSend",
        ("get", "/restate/invocation/Counter/{key}/add/{idempotencyKey}/attach"): "addAttach",
        ("get", "/restate/invocation/Counter/{key}/add/{idempotencyKey}/output"): "addOutput",
    }
    paths = doc["paths"]
    params = "#/components/parameters/"
    assert [p["$ref"] for p in paths["/restate/call/Counter/{key}/add"]["post"]["parameters"]] == [
        f"{params}key",
        f"{params}idempotencyKeyHeader",
    ]
    assert [p["$ref"] for p in paths["/restate/send/Counter/{key}/add"]["post"]["parameters"]] == [
        f"{params}key",
        f"{params}idempotencyKeyHeader",
        f"{params}delay",
    ]
    output = paths["/restate/invocation/Counter/{key}/add/{idempotencyKey}/output"]["get"]
    assert [p["$ref"] for p in output["parameters"]] == [f"{params}key", f"{params}idempotencyKeyPath"]
    assert output["responses"]["404"] == {"$ref": "#/components/responses/InvocationNotFoundError"}
    assert output["responses"]["470"] == {"$ref": "#/components/responses/InvocationNotReadyError"}


async def test_workflow_operations(quill: Quill, client: httpx.AsyncClient) -> None:
    doc = await _document(quill, client, "Signup")
    assert _operations(doc) == {
        ("post", "/restate/call/Signup/{key}/run"): "run",
        ("post", "/restate/send/Signup/{key}/run"): "runSend",
        ("get", "/restate/workflow/Signup/{key}/attach"): "runAttach",
        ("get", "/restate/workflow/Signup/{key}/output"): "runOutput",
        ("post", "/restate/call/Signup/{key}/confirm"): "confirm",
        ("post", "/restate/send/Signup/{key}/confirm"): "confirmSend",
        ("post", "/restate/call/Signup/{key}/peek"): "peek",
        ("post", "/restate/send/Signup/{key}/peek"): "peekSend",
    }
    # The ingress refuses idempotency keys on workflows, so no operation offers one.
    for item in doc["paths"].values():
        for operation in item.values():
            refs = [p["$ref"].rsplit("/", 1)[1] for p in operation["parameters"]]
            assert refs[0] == "key" and not {"idempotencyKeyHeader", "idempotencyKeyPath"} & set(refs)


async def test_payload_schemas_come_from_the_handlers(quill: Quill, client: httpx.AsyncClient) -> None:
    doc = await _document(quill, client, "Counter")
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    assert schemas["addRequest"] == {"type": "integer"}
    assert schemas["addResponse"] == {"type": "integer"}
    assert schemas["appendResponse"] == {"type": "array", "items": {"type": "string"}}

    add = paths["/restate/call/Counter/{key}/add"]["post"]
    assert add["requestBody"] == {
        "required": False,  # the Python SDK marks inputs optional
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/addRequest"}}},
    }
    assert add["responses"]["200"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/addResponse"}}
    }
    assert add["responses"]["default"] == {"$ref": "#/components/responses/GenericError"}
    send = paths["/restate/send/Counter/{key}/add"]["post"]
    assert send["requestBody"] == add["requestBody"]
    # Both codes a send may answer, as Restate lists them.
    assert send["responses"]["200"] == send["responses"]["202"] == {"$ref": "#/components/responses/Send"}
    # `get` takes no input (manifest `input: {}`), `clear` returns nothing (no output content type).
    assert "requestBody" not in paths["/restate/call/Counter/{key}/get"]["post"]
    assert "getRequest" not in schemas
    assert paths["/restate/call/Counter/{key}/clear"]["post"]["responses"]["200"] == {"description": "Empty"}
    assert "clearResponse" not in schemas


async def test_unknown_service_is_404(quill: Quill, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{quill.admin}/services/Nope/openapi")
    assert response.status_code == 404
    assert response.json()["message"] == "The requested service 'Nope' does not exist"


async def test_generated_python_client_calls_the_ingress(
    quill: Quill, client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = await _document(quill, client, "Counter")
    (tmp_path / "counter.json").write_text(json.dumps(doc))
    # No post hooks: they run ruff from PATH, which the test environment need not have.
    (tmp_path / "config.json").write_text(json.dumps({"post_hooks": []}))
    package = "quill_counter_client"
    generator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openapi_python_client", "generate",
        "--path", str(tmp_path / "counter.json"),
        "--output-path", str(tmp_path / package),
        "--meta", "none",
        "--config", str(tmp_path / "config.json"),
        "--fail-on-warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(generator.communicate(), 60)
    assert generator.returncode == 0, output.decode()

    monkeypatch.syspath_prepend(str(tmp_path))
    generated = importlib.import_module(package)
    add = importlib.import_module(f"{package}.api.request_response.add")
    async with generated.Client(base_url=doc["servers"][0]["url"]) as counter:
        assert await add.asyncio("openapi", client=counter, body=4) == 4
        response = await add.asyncio_detailed("openapi", client=counter, body=3)
    assert response.status_code == 200
    assert response.parsed == 7
    assert response.headers["x-restate-id"].startswith("inv_")


def test_document_for_private_handlers_defaults_and_refs() -> None:
    """Manifest corners the SDK test services do not reach, on the pure builder."""
    user = {"$defs": {"User": {"type": "object", "properties": {"name": {"type": "string"}}}}, "$ref": "#/$defs/User"}
    handlers = [
        HandlerManifest(name="save", input={"contentType": "application/json", "required": True, "jsonSchema": user},
                        documentation="Saves a user", metadata={"team": "core"}),
        HandlerManifest(name="raw"),  # no input/output: any body in, JSON out
        HandlerManifest(name="blob", input={"contentType": "application/octet-stream"},
                        output={"contentType": "application/json"}),
        HandlerManifest(name="hidden", ingress_private=True),
    ]  # fmt: skip
    manifest = ServiceManifest(name="Users", ty="SERVICE", handlers=handlers, documentation="User registry")
    doc = service_openapi(ServiceEntry(manifest, "dp_1", 3), "http://localhost:8080/")
    validate(doc)
    assert doc["info"] == {"title": "Users", "version": "3", "description": "User registry"}
    assert not [path for path in doc["paths"] if "hidden" in path]

    schemas = doc["components"]["schemas"]
    assert schemas["saveRequest"]["$ref"] == "#/components/schemas/saveRequest/$defs/User"
    save = doc["paths"]["/restate/call/Users/save"]["post"]
    assert save["requestBody"]["required"] is True
    assert save["description"] == "Saves a user"
    assert save["x-restate-extensions"] == {"team": "core"}

    raw = doc["paths"]["/restate/call/Users/raw"]["post"]
    assert raw["requestBody"] == {"required": False, "content": {"*/*": {}}}
    assert schemas["rawResponse"] == {}  # JSON without a schema: any value
    blob = doc["paths"]["/restate/call/Users/blob"]["post"]
    assert blob["requestBody"]["content"] == {"application/octet-stream": {}}

    private = ServiceManifest(name="Users", ty="SERVICE", handlers=handlers, ingress_private=True)
    assert service_openapi(ServiceEntry(private, "dp_1", 3), "http://localhost:8080/")["paths"] == {}
