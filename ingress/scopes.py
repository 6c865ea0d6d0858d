"""Flow-control inputs of an ingress request: the scope of ``/restate/scope/{scope}/...`` (and of
attach / output / lookup bodies) and the limit key (``x-restate-limit-key`` header, else the first
``limit-key`` query parameter, its name matched case-insensitively), refused in Restate's words."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from engine import BadRequest, InvalidName, parse_limit_key, parse_scope

LIMIT_KEY_HEADER = b"x-restate-limit-key"
LIMIT_KEY_WITHOUT_SCOPE = "limit-key requires a scope to be set"
_VISIBLE_ASCII = frozenset(range(0x20, 0x7F)) | {0x09}  # what http's HeaderValue::to_str accepts


def scope_of(text: str) -> str:
    try:
        return parse_scope(text)
    except InvalidName as exc:
        raise BadRequest(f"bad scope value: {exc}") from exc


def limit_key_of(scope: dict[str, Any]) -> str | None:
    """The request's canonical limit key; None when it has none (or an empty one)."""
    raw: str | None = None
    for name, value in scope["headers"]:
        if name == LIMIT_KEY_HEADER:
            if not _VISIBLE_ASCII.issuperset(value):
                raise BadRequest("bad header x-restate-limit-key: ToStrError { _priv: () }")
            raw = value.decode()
            break
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        raw = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() == "limit-key"), None)
    if raw is None:
        return None
    try:
        return parse_limit_key(raw)
    except InvalidName as exc:
        raise BadRequest(f"invalid limit-key: {exc}") from exc
