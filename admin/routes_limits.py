"""``/limits/rules``: the concurrency rule book (Restate 1.7's flow control).

``PUT /limits/rules`` upserts a batch and answers the stored rules, one per entry and in its order;
``POST /limits/rules/bulk-delete`` answers the patterns it removed. Both batches are atomic. A body
Restate cannot use is refused as Restate's axum refuses it: text, 400 for malformed JSON, 422 for
the wrong shape (``admin.limits_body``); 415 without a JSON content type. There is no GET (405, as
1.7): the rules are read through ``/query`` (``sys_rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from admin.limits_body import read_deletes, read_upserts
from admin.serde_reader import JsonBodyError
from engine import Engine
from engine.limits.book import Rule

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDescriptionResponse"}}}
_USER_LIMITS = {"$ref": "#/components/schemas/UserLimits"}
# The schemas the two operations name, as Restate's admin OpenAPI has them.
OPENAPI_COMPONENTS: dict[str, dict[str, Any]] = {
    "schemas": {
        "UpsertRuleRequest": {
            "type": "object",
            "description": "One entry in the body of `PUT /limits/rules`.",
            "required": ["pattern"],
            "properties": {
                "pattern": {
                    "type": "string",
                    "description": "Which scope/limit-key combinations the rule applies to:"
                    " `\"*\"`, `\"scope1/*\"`, `\"scope1/foo/bar\"`.",
                },
                "limits": _USER_LIMITS,
                "description": {"type": ["string", "null"], "description": "Free-form, not consulted at runtime."},
                "disabled": {"type": "boolean", "description": "`true` parks the rule (treated as absent)."},
                "precondition": {"$ref": "#/components/schemas/Precondition"},
            },
        },
        "DeleteRuleRequest": {
            "type": "object",
            "description": "One entry in the body of `POST /limits/rules/bulk-delete`.",
            "required": ["pattern"],
            "properties": {
                "pattern": {"type": "string"},
                "expected_version": {"type": ["integer", "null"], "format": "int32", "minimum": 0},
            },
        },
        "RuleResponse": {
            "type": "object",
            "required": ["pattern", "limits", "disabled", "version", "last_modified_millis_since_epoch"],
            "properties": {
                "pattern": {"type": "string"},
                "limits": _USER_LIMITS,
                "description": {"type": ["string", "null"]},
                "disabled": {"type": "boolean"},
                "version": {
                    "type": "integer",
                    "format": "int32",
                    "minimum": 0,
                    "description": "Per-rule version: bumped on runtime-relevant changes.",
                },
                "last_modified_millis_since_epoch": {"type": "integer", "format": "int64", "minimum": 0},
            },
        },
        "UserLimits": {
            "type": "object",
            "description": "Per-rule effective limits; a missing or null field means unlimited.",
            "properties": {
                "concurrency": {
                    "type": ["integer", "null"],
                    "format": "int32",
                    "minimum": 1,
                    "description": "Maximum concurrent running invocations. `None` means unlimited.",
                }
            },
        },
        "Precondition": {
            "oneOf": [
                {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["none"]}}},
                {
                    "type": "object",
                    "required": ["version", "type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["matches"]},
                        "version": {"$ref": "#/components/schemas/Version"},
                    },
                },
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"type": "string", "enum": ["does_not_exist"]}},
                },
            ],
            "description": "Optimistic-concurrency guard of a rule change.",
        },
        "Version": {"type": "integer", "format": "int32", "minimum": 0, "description": "A metadata version."},
        "ErrorDescriptionResponse": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}, "restate_code": {"type": ["string", "null"]}},
        },
    },
    "responses": {
        "Conflict": {"description": "Conflict", "content": _ERROR},
        "UnprocessableEntity": {"description": "Unprocessable entity", "content": _ERROR},
        "InternalServerError": {"description": "Internal server error", "content": _ERROR},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    "409": {"$ref": "#/components/responses/Conflict"},
    "422": {"$ref": "#/components/responses/UnprocessableEntity"},
    "500": {"$ref": "#/components/responses/InternalServerError"},
}


def _body_schema(item: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}}
            },
        }
    }


def rule_view(pattern: str, rule: Rule) -> dict[str, Any]:
    view: dict[str, Any] = {
        "pattern": pattern,
        "limits": {} if rule.concurrency is None else {"concurrency": rule.concurrency},
        "disabled": rule.disabled,
        "version": rule.version,
        "last_modified_millis_since_epoch": rule.last_modified,
    }
    if rule.description is not None:
        view["description"] = rule.description
    return view


async def _read(request: Request, read: Callable[[bytes], Any]) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return PlainTextResponse("Expected request with `Content-Type: application/json`", status_code=415)
    try:
        return read(await request.body())
    except RecursionError:  # nested deeper than Python's stack; serde stops at 128 levels
        return PlainTextResponse("Failed to parse the request body as JSON: recursion limit exceeded", status_code=400)
    except JsonBodyError as exc:
        if exc.syntax:
            return PlainTextResponse(f"Failed to parse the request body as JSON: {exc}", status_code=400)
        return PlainTextResponse(
            f"Failed to deserialize the JSON body into the target type: {exc}", status_code=422
        )


def limits_router(engine: Engine) -> APIRouter:
    router = APIRouter(tags=["rule"])

    @router.put(
        "/limits/rules",
        operation_id="upsert_rules",
        summary="Upsert a batch of rules.",
        description="Each entry carries an optional precondition: `does_not_exist` makes it a strict insert,"
        " `matches` rejects the batch unless the rule's current version is the given one, `none` (or no"
        " precondition) is unconditional. The whole batch is atomic: any failed precondition or"
        " cap-exceeded condition rolls back the rest.",
        openapi_extra=_body_schema("UpsertRuleRequest"),
        responses={
            200: {
                "description": "Rules upserted",
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/RuleResponse"}}
                    }
                },
            },
            **_RESPONSES,
        },
    )
    async def upsert_rules(request: Request) -> Response:
        upserts = await _read(request, read_upserts)
        if isinstance(upserts, Response):
            return upserts
        _, book = await engine.change_limit_rules(upserts)
        return JSONResponse([rule_view(u.pattern, book.rules[u.pattern]) for u in upserts])

    @router.post(
        "/limits/rules/bulk-delete",
        operation_id="bulk_delete_rules",
        summary="Delete a batch of rules by pattern.",
        description="Each entry may carry an `expected_version`; if present the rule must exist at that exact"
        " version, otherwise the batch fails. Without `expected_version` the delete is unconditional and"
        " idempotent: a pattern that's already absent is silently skipped. Returns the patterns that this"
        " batch actually removed.",
        openapi_extra=_body_schema("DeleteRuleRequest"),
        responses={
            200: {
                "description": "Patterns that were actually removed",
                "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}},
            },
            **_RESPONSES,
        },
    )
    async def bulk_delete_rules(request: Request) -> Response:
        deletes = await _read(request, read_deletes)
        if isinstance(deletes, Response):
            return deletes
        before, _ = await engine.change_limit_rules(deletes)
        # As Restate: each entry whose rule existed before the batch (a repeated pattern repeats).
        return JSONResponse([d.pattern for d in deletes if d.pattern in before.rules])

    return router
