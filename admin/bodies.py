"""Request bodies of the admin API, decoded strictly with msgspec (unknown fields are errors)."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from engine import BadRequest, parse_duration

T = TypeVar("T")


class RegisterDeployment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    uri: str
    additional_headers: dict[str, str] | None = None
    use_http_11: bool = False
    force: bool = False
    breaking: bool = False
    dry_run: bool = False
    metadata: dict[str, str] | None = None


class UpdateDeployment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    uri: str | None = None
    additional_headers: dict[str, str] | None = None
    use_http_11: bool | None = None
    overwrite: bool = False
    dry_run: bool = False


class ModifyService(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
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


def decode_body(raw: bytes, kind: type[T], what: str) -> T:
    """Decode a JSON body, answering 400 with the reason on anything malformed."""
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Invalid {what} request: {exc}") from exc


def duration_ms(value: str | None, field: str) -> int | None:
    """A humantime or ISO 8601 duration in milliseconds; None stays None."""
    if value is None:
        return None
    try:
        return round(parse_duration(value) * 1000)
    except ValueError as exc:
        raise BadRequest(f"Invalid '{field}': {exc}") from exc


def check_uri(uri: str) -> None:
    if not uri.startswith(("http://", "https://")):
        raise BadRequest(f"Invalid uri '{uri}': expected an http:// or https:// URL")


class ModifyState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /services/{name}/state``: values as byte lists (Restate) or strings."""

    object_key: str
    new_state: dict[str, list[int] | str]
    version: str | None = None
    scope: str | None = None
