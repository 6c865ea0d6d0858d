"""The admin API's error body, ``{"message", "restate_code"}``, without importing FastAPI."""

from __future__ import annotations

import msgspec

_encode = msgspec.json.Encoder().encode


def admin_error_body(message: str) -> bytes:
    return _encode({"message": message, "restate_code": None})


def render_admin_error(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A refusal made before the app runs (connection limits), in the admin API's shape."""
    return [(b"content-type", b"application/json")], admin_error_body(message)
