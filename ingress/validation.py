"""Checking a request body against the handler's input rules (content type, emptiness), as Restate does."""

from __future__ import annotations

from typing import Any

from engine import BadRequest

# A manifest without an input spec accepts anything, optionally.
_DEFAULT_INPUT: dict[str, Any] = {"contentType": "*/*", "required": False}


def validate_input(spec: dict[str, Any] | None, content_type: str | None, has_body: bool) -> None:
    spec = _DEFAULT_INPUT if spec is None else spec
    expected: str | None = spec.get("contentType")
    if expected is None:
        # The handler takes no input: body and content type must both be absent.
        if has_body or content_type is not None:
            shown = "None" if content_type is None else f'Some("{content_type}")'
            raise BadRequest(
                "input validation error: Expected body and content-type to be empty,"
                f" but wasn't with content-type '{shown}'"
            )
        return
    if not has_body:
        if content_type is not None or spec.get("required", False):
            raise BadRequest("input validation error: Empty body not allowed")
        return
    if content_type is None:
        raise BadRequest("input validation error: Empty content-type")
    if not _matches(content_type, expected):
        raise BadRequest(f"input validation error: Content-type '{content_type}' does not match '{expected}'")


def _matches(content_type: str, expected: str) -> bool:
    """Accept-style matching: ``*/*`` and ``type/*`` wildcards, parameters ignored."""
    actual = content_type.split(";", 1)[0].strip().lower()
    wanted = expected.split(";", 1)[0].strip().lower()
    if wanted in ("*/*", actual):
        return True
    wanted_type, _, wanted_sub = wanted.partition("/")
    return wanted_sub == "*" and actual.partition("/")[0] == wanted_type
