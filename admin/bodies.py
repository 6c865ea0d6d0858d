"""Request bodies of the admin API, and reading them as Restate's admin API does (axum's ``Json``).

A body without a JSON content type is a 415, one that is not JSON a 400, and valid JSON of the
wrong shape (a missing or mistyped field, a bad duration or URI) a 422, with the same messages as
the reference (which answers them as text/plain; quill keeps its ``{"message","restate_code"}``
shape). Unknown fields are ignored, and an empty array reads as an empty object, as serde does.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import Request

from engine import BadRequest, QuillError, parse_duration

T = TypeVar("T")
Byte = Annotated[int, msgspec.Meta(ge=0, le=255)]

_NOT_JSON = "Failed to parse the request body as JSON"
_WRONG_SHAPE = "Failed to deserialize the JSON body into the target type"


class UnsupportedMediaType(QuillError):
    status = 415


class InvalidBody(QuillError):
    """Valid JSON of the wrong shape."""

    status = 422

    def __init__(self, reason: str) -> None:
        super().__init__(f"{_WRONG_SHAPE}: {reason}")


class RegisterDeployment(msgspec.Struct, kw_only=True):
    uri: str
    additional_headers: dict[str, str] | None = None
    use_http_11: bool = False
    force: bool = False
    breaking: bool = False
    dry_run: bool = False
    metadata: dict[str, str] | None = None


class UpdateDeployment(msgspec.Struct, kw_only=True):
    uri: str | None = None
    additional_headers: dict[str, str] | None = None
    use_http_11: bool | None = None
    overwrite: bool = False
    dry_run: bool = False


class ModifyService(msgspec.Struct, kw_only=True):
    public: bool | None = None
    idempotency_retention: str | None = None
    workflow_completion_retention: str | None = None
    journal_retention: str | None = None
    inactivity_timeout: str | None = None
    abort_timeout: str | None = None


class Query(msgspec.Struct, kw_only=True):
    query: str


class BatchInvocations(msgspec.Struct, kw_only=True):
    """Body of ``POST /internal/invocations_batch_operations/{operation}`` (the CLI and UI use it)."""

    invocation_ids: list[str]
    deployment: str | None = None


class ModifyState(msgspec.Struct, kw_only=True):
    """Body of ``POST /services/{name}/state``: values as byte lists (Restate) or strings."""

    object_key: str
    new_state: dict[str, list[Byte] | str]
    version: str | None = None
    scope: str | None = None


async def json_body(request: Request, kind: type[T], *, shape: str | None = None) -> T:
    """The request's JSON body as ``kind``."""
    return convert(await json_value(request), kind, shape=shape)


async def json_value(request: Request) -> Any:
    """The request's body as untyped JSON: 415 without a JSON content type, 400 when not JSON."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        raise UnsupportedMediaType("Expected request with `Content-Type: application/json`")
    try:
        return msgspec.json.decode(await request.body())
    except (msgspec.DecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadRequest(f"{_NOT_JSON}: {reason}") from exc


def convert(value: Any, kind: type[T], *, shape: str | None = None) -> T:
    """``value`` as ``kind``; 422 when it does not fit. ``shape`` leads the reason (the reference
    words every wrong registration body alike)."""
    try:
        return msgspec.convert({} if value == [] else value, kind)
    except msgspec.ValidationError as exc:
        raise InvalidBody(f"{shape} ({exc})" if shape else str(exc)) from exc


def duration_ms(value: str | None, field: str) -> int | None:
    """A humantime or ISO 8601 duration in milliseconds; None stays None; a bad one is a 422."""
    if value is None:
        return None
    try:
        return round(parse_duration(value) * 1000)
    except ValueError as exc:
        raise InvalidBody(f"{field}: {exc}") from exc


def check_uri(uri: str) -> None:
    """A deployment URI: not a URI at all is a 422 (the reference's body error), another scheme a 400."""
    scheme, separator, rest = uri.partition("://")
    if not separator or not scheme or not rest or any(c.isspace() for c in uri):
        raise InvalidBody(f"uri: '{uri}' is not a URI")
    if scheme not in ("http", "https"):
        raise BadRequest(f"Invalid uri '{uri}': expected an http:// or https:// URL")
