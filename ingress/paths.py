"""Parsing ingress paths into invocation targets."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from engine import BadRequest, Target
from engine.schema.registry import Schema

BAD_PATH = (
    "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler,"
    " /restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id,"
    " /restate/output/:invocation_id, or /restate/lookup"
)
BAD_LEGACY_PATH = "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler"


@dataclass(frozen=True)
class Route:
    target: Target
    send: bool


def split_path(raw_path: bytes) -> list[str]:
    """Path segments, each percent-decoded on its own so a key may contain '/'."""
    text = raw_path.decode("latin-1")
    return [unquote(segment) for segment in text.strip("/").split("/")] if text.strip("/") else []


def _versioned(segments: list[str]) -> bool:
    return len(segments) >= 2 and segments[0] == "restate" and segments[1] in ("call", "send")


def parse_invocation_path(segments: list[str], schema: Schema) -> Route:
    """Resolve ``/restate/call|send/...`` and the older unversioned forms against the schema."""
    versioned = _versioned(segments)
    parts = segments[2:] if versioned else segments
    if len(parts) < 2 or any(not p for p in parts):
        raise BadRequest(BAD_PATH if versioned else f"bad path: /{'/'.join(segments)}")
    service, rest = parts[0], parts[1:]
    entry = schema.services.get(service)
    if entry is None:
        schema.resolve(service, rest[-1])  # raises the not-found error
        raise AssertionError("unreachable")
    keyed = entry.manifest.ty in ("VIRTUAL_OBJECT", "WORKFLOW")
    segments_needed = 2 if keyed else 1
    if versioned:
        send = segments[1] == "send"
    else:
        # The older API marks a send with a trailing '/send' segment.
        send = len(rest) == segments_needed + 1 and rest[-1] == "send"
        if send:
            rest = rest[:-1]
    if len(rest) != segments_needed:
        # Restate answers a key on a plain service, or none on an object, with the path forms.
        raise BadRequest(BAD_PATH if versioned else BAD_LEGACY_PATH)
    key, handler = (rest[0], rest[1]) if keyed else ("", rest[0])
    schema.resolve(service, handler)
    return Route(Target(service, handler, key), send)


def metric_labels(segments: list[str], schema: Schema) -> tuple[str, bool]:
    """(service, is a send) of a path that did not parse, for the ingress request counter: the
    service only when registered, so mistyped paths cannot grow the label set."""
    versioned = _versioned(segments)
    parts = segments[2:] if versioned else segments
    service = parts[0] if parts and parts[0] in schema.services else ""
    return service, (segments[1] == "send") if versioned else (bool(segments) and segments[-1] == "send")
