"""Per-service OpenAPI 3.1 documents (admin ``GET /services/{name}/openapi``).

The shape follows what the Restate 1.7 server emits for one service: one operation per ingress
route a client may use on each public handler (call, send, attach, output), the handlers' JSON
schemas as ``<handler>Request`` / ``<handler>Response`` components, and Restate's shared
parameters, responses and error schema. Unlike the real server's document, this one validates:
no ``null`` anywhere (its ``tags[].externalDocs.description: null`` is what fails validation).
"""

from __future__ import annotations

from typing import Any

from engine.schema.manifest import HandlerManifest, ServiceManifest
from engine.schema.registry import ServiceEntry

JsonObject = dict[str, Any]

_KEYED_SERVICE_TYPES = frozenset({"VIRTUAL_OBJECT", "WORKFLOW"})
_DOCS_URL = "https://docs.restate.dev/invoke/http"

# Tag names of the real server; every operation carries one so generators group them alike.
_CALL_TAG = "Request Response"
_SEND_TAG = "Send"
_ATTACH_TAG = "Attach"
_OUTPUT_TAG = "Get Output"


def service_openapi(entry: ServiceEntry, ingress_url: str) -> JsonObject:
    """The OpenAPI 3.1 document of one registered service, with ``ingress_url`` as its server."""
    service = entry.manifest
    schemas: JsonObject = {}
    paths: JsonObject = {}
    for handler in _public_handlers(service):
        paths.update(_handler_paths(service, handler, schemas))

    info: JsonObject = {"title": service.name, "version": str(entry.revision)}
    if service.documentation:
        info["description"] = service.documentation
    if service.metadata:
        info["x-restate-extensions"] = dict(service.metadata)

    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": ingress_url, "description": "Restate Ingress URL"}],
        "paths": paths,
        "tags": _tags(),
        # Handler schemas first, Restate's own last, as the real server orders them.
        "components": {
            "parameters": _parameters(),
            "responses": _responses(),
            "schemas": {**schemas, **_restate_schemas()},
        },
    }


# -- operations ----------------------------------------------------------------------------


def _public_handlers(service: ServiceManifest) -> list[HandlerManifest]:
    # The ingress refuses private services and handlers, so the document offers none of them.
    if service.ingress_private:
        return []
    return [h for h in service.handlers if not h.ingress_private]


def _handler_paths(service: ServiceManifest, handler: HandlerManifest, schemas: JsonObject) -> JsonObject:
    """The path items of one handler; its schemas are added to ``schemas``."""
    name = handler.name
    keyed = service.ty in _KEYED_SERVICE_TYPES
    is_workflow = service.ty == "WORKFLOW"
    target = f"{service.name}/{{key}}/{name}" if keyed else f"{service.name}/{name}"

    # Workflows refuse the idempotency-key header: a workflow key is already its idempotency.
    call_params = _refs("parameters", (["key"] if keyed else []) + ([] if is_workflow else ["idempotencyKeyHeader"]))
    request_body = _request_body(name, handler.input, schemas)
    response = _handler_response(name, handler.output, schemas)
    common = _common_fields(handler)

    def describe(default: str) -> str:
        return handler.documentation or default

    call = {
        **common,
        "operationId": name,
        "description": describe(f"Call {service.name} handler {name} and wait for response"),
        "tags": [_CALL_TAG],
        "parameters": call_params,
        **({"requestBody": request_body} if request_body else {}),
        "responses": {"200": response, "default": _ref("responses", "GenericError")},
    }
    send = {
        **common,
        "operationId": f"{name}Send",
        "description": describe(f"Send request to {service.name} handler {name}"),
        "tags": [_SEND_TAG],
        "parameters": [*call_params, _ref("parameters", "delay")],
        **({"requestBody": request_body} if request_body else {}),
        # 200 and 202, as the real server lists them (the same response: its schema is a named
        # component, so generators make one model of it).
        "responses": {
            "200": _ref("responses", "Send"),
            "202": _ref("responses", "Send"),
            "default": _ref("responses", "GenericError"),
        },
    }
    paths: JsonObject = {
        f"/restate/call/{target}": {"post": call},
        f"/restate/send/{target}": {"post": send},
    }

    if is_workflow:
        # A workflow's result is its run handler's: attach/output address the workflow by key.
        if _handler_type(service, handler) != "WORKFLOW":
            return paths
        base = f"/restate/workflow/{service.name}/{{key}}"
        lookup_params = _refs("parameters", ["key"])
        attach_doc = f"Attach to the running instance of {service.name}/{name} workflow and wait to finish"
        output_doc = f"Get output of the {service.name}/{name} workflow"
    else:
        # Other handlers are found again by the idempotency key they were invoked with.
        base = f"/restate/invocation/{target}/{{idempotencyKey}}"
        lookup_params = _refs("parameters", (["key"] if keyed else []) + ["idempotencyKeyPath"])
        attach_doc = (
            f"Attach to a running instance of {service.name}/{name} using the idempotency key and wait to finish"
        )
        output_doc = f"Get output of a running instance of {service.name}/{name} using idempotency key"

    not_found = _ref("responses", "InvocationNotFoundError")
    paths[f"{base}/attach"] = {
        "get": {
            **common,
            "operationId": f"{name}Attach",
            "description": describe(attach_doc),
            "tags": [_ATTACH_TAG],
            "parameters": lookup_params,
            "responses": {"200": response, "404": not_found, "default": _ref("responses", "GenericError")},
        }
    }
    paths[f"{base}/output"] = {
        "get": {
            **common,
            "operationId": f"{name}Output",
            "description": describe(output_doc),
            "tags": [_OUTPUT_TAG],
            "parameters": lookup_params,
            "responses": {
                "200": response,
                "404": not_found,
                "470": _ref("responses", "InvocationNotReadyError"),
                "default": _ref("responses", "GenericError"),
            },
        }
    }
    return paths


def _common_fields(handler: HandlerManifest) -> JsonObject:
    fields: JsonObject = {"summary": handler.name}
    if handler.metadata:
        fields["x-restate-extensions"] = dict(handler.metadata)
    return fields


def _handler_type(service: ServiceManifest, handler: HandlerManifest) -> str | None:
    # As in admin/views.py: an unset type defaults by service type (objects EXCLUSIVE, workflows WORKFLOW).
    return handler.ty or {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(service.ty)


# -- payloads ------------------------------------------------------------------------------


def _request_body(operation_id: str, spec: dict[str, Any] | None, schemas: JsonObject) -> JsonObject | None:
    """The request body of a handler's input spec, or None when it takes no body.

    Manifest semantics: a missing ``input`` accepts any body (``*/*``) or none; an ``input``
    without ``contentType`` (the SDKs' ``{}``) expects an empty body; ``required`` (default
    false) says whether an empty body is refused.
    """
    if spec is None:
        spec = {"contentType": "*/*", "required": False}
    content_type = spec.get("contentType")
    if content_type is None:
        return None
    return {
        "required": bool(spec.get("required", False)),
        "content": {content_type: _media(f"{operation_id}Request", content_type, spec.get("jsonSchema"), schemas)},
    }


def _handler_response(operation_id: str, spec: dict[str, Any] | None, schemas: JsonObject) -> JsonObject:
    # A missing ``output`` defaults to JSON; one without ``contentType`` means an empty response.
    if spec is None:
        spec = {"contentType": "application/json"}
    content_type = spec.get("contentType")
    if content_type is None:
        return {"description": "Empty"}
    media = _media(f"{operation_id}Response", content_type, spec.get("jsonSchema"), schemas)
    return {"description": "Handler response", "content": {content_type: media}}


def _media(schema_name: str, content_type: str, json_schema: Any, schemas: JsonObject) -> JsonObject:
    """A media type object; JSON payloads get their schema as the component ``schema_name``."""
    if json_schema is None and not _is_json(content_type):
        return {}  # an opaque payload (bytes, text, ...): no schema to offer
    schemas[schema_name] = _component_schema(schema_name, json_schema)
    return {"schema": _ref("schemas", schema_name)}


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _component_schema(name: str, json_schema: Any) -> Any:
    # No schema, or the boolean schema true, both mean "any JSON value"; generators prefer {}.
    if json_schema is None or json_schema is True:
        return {}
    # The schema moves under #/components/schemas/<name>, so its local refs ("#/$defs/X") must too.
    return _rebase_refs(json_schema, f"#/components/schemas/{name}")


def _rebase_refs(value: Any, prefix: str) -> Any:
    if isinstance(value, list):
        return [_rebase_refs(v, prefix) for v in value]
    if not isinstance(value, dict):
        return value
    rebased = {k: _rebase_refs(v, prefix) for k, v in value.items()}
    ref = rebased.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        rebased["$ref"] = prefix + ref[1:]
    return rebased


# -- Restate's shared components -----------------------------------------------------------


def _ref(kind: str, name: str) -> JsonObject:
    return {"$ref": f"#/components/{kind}/{name}"}


def _refs(kind: str, names: list[str]) -> list[JsonObject]:
    return [_ref(kind, n) for n in names]


def _tags() -> list[JsonObject]:
    descriptions = {
        _CALL_TAG: "Request response to handler",
        _SEND_TAG: "Send to handler",
        _ATTACH_TAG: "Attach to invocation",
        _OUTPUT_TAG: "Get invocation output",
    }
    return [
        {"name": name, "description": text, "externalDocs": {"url": _DOCS_URL}} for name, text in descriptions.items()
    ]


def _parameters() -> JsonObject:
    string = {"type": "string"}
    return {
        "delay": {
            "name": "delay",
            "in": "query",
            "required": False,
            "schema": string,
            "example": "10s",
            "description": "Specify the delay to execute the operation, for more info check the "
            "[delay documentation](https://docs.restate.dev/invoke/http#sending-a-delayed-message-over-http)",
        },
        "idempotencyKeyHeader": {
            "name": "idempotency-key",
            "in": "header",
            "required": False,
            "schema": string,
            "description": "Idempotency key to execute the request, for more details checkout the "
            "[idempotency key documentation](https://docs.restate.dev/invoke/http#invoke-a-handler-idempotently).",
        },
        "idempotencyKeyPath": {
            "name": "idempotencyKey",
            "in": "path",
            "required": True,
            "schema": string,
            "description": "Idempotency key used to execute the original request, for more details checkout the "
            "[idempotency key documentation](https://docs.restate.dev/invoke/http#invoke-a-handler-idempotently).",
        },
        "key": {"name": "key", "in": "path", "required": True, "schema": string},
    }


def _responses() -> JsonObject:
    def error(description: str, code: int, message: str) -> JsonObject:
        media = {"schema": _ref("schemas", "RestateError"), "example": {"code": code, "message": message}}
        return {"description": description, "content": {"application/json": media}}

    send_example = {"invocationId": "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "status": "Accepted"}
    return {
        "GenericError": error("Error response", 500, "Internal server error"),
        "InvocationNotFoundError": error("Invocation not found", 404, "Not found"),
        "InvocationNotReadyError": error("Invocation still running, output is not ready yet", 470, "Not ready"),
        # The schema is a named component (the real server inlines it) so generators make one model.
        "Send": {
            "description": "Send response",
            "content": {
                "application/json": {"schema": _ref("schemas", "RestateSendResponse"), "example": send_example}
            },
        },
    }


def _restate_schemas() -> JsonObject:
    return {
        "RestateError": {
            "type": "object",
            "title": "RestateError",
            "description": "Generic error used by Restate to propagate Terminal errors/exceptions back to callers",
            "properties": {
                "code": {"type": "integer", "title": "error code"},
                "message": {"type": "string", "title": "Error message"},
                "metadata": {
                    "type": "object",
                    "title": "Additional metadata map",
                    "additionalProperties": {"type": "string"},
                },
                "source": {"type": "string", "title": "Who made the error: ingress or invocation"},
            },
            "required": ["message"],
        },
        "RestateSendResponse": {
            "type": "object",
            "title": "RestateSendResponse",
            "properties": {
                "invocationId": {"type": "string"},
                "status": {"type": "string", "enum": ["Accepted", "PreviouslyAccepted"]},
                "executionTime": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Time when the invocation will be executed, in case 'delay' is used",
                },
            },
            "required": ["invocationId", "status"],
            "additionalProperties": False,
        },
    }
