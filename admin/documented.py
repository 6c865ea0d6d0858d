"""What the admin API's own OpenAPI document (``GET /openapi``) says about errors.

Each route declares the error statuses Restate's document lists for it, answered in Restate's
shape (``ErrorDescriptionResponse``: ``{"message", "restate_code"}``); FastAPI's generic 422 for
parameter validation is left out, because quill answers those 400 in the same shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_DESCRIPTIONS = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    425: "Too early",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


class ErrorDescriptionResponse(BaseModel):
    """Error details of the response."""

    message: str
    restate_code: str | None = None


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer ``statuses``."""
    return {status: {"model": ErrorDescriptionResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


# The sets Restate's document gives most routes.
READ = errors(400, 404, 405, 409, 500)
OPERATOR = errors(400, 404, 409, 503)


def without_parameter_validation(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without FastAPI's own 422 responses and their schemas."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in str(response):
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document
