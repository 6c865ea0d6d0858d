"""Classifying ingress paths the way Restate's ingress does (``path_parsing.rs`` of restate 1.7).

The path is normalised (surrounding slashes trimmed), must have 2 to 7 slashes, and is then read
segment by segment: the first names the family (``/restate/<verb>/...`` or the older
``/{service}/...``), and a family with the wrong number of segments answers 400 with its valid
forms rather than 404. Service and handler names are taken as sent; object, workflow and scope
keys are percent-decoded (an undecodable key is a 400). Where a form needs to know whether a
service is keyed (call, send, the older API, attach by idempotency key), the service is looked up
first, so an unknown one is a 404 before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_to_bytes

from engine import BadRequest, InvocationId, NotFound
from engine.schema.registry import Schema

BAD_PATH = (
    "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler,"
    " /restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id,"
    " /restate/output/:invocation_id, or /restate/lookup"
)
BAD_LEGACY_PATH = "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler"
BAD_INVOCATION_PATH = (
    "bad path, expected either /restate/invocation/:invocation_id/output or"
    " /restate/invocation/:invocation_id/attach or /restate/invocation/:invocation_target/:idempotency_key/output"
    " or /restate/invocation/:invocation_target/:idempotency_key/attach"
)
BAD_WORKFLOW_PATH = (
    "bad path, expected either /restate/workflow/:workflow_name/:workflow_key/output or"
    " /restate/workflow/:workflow_name/:workflow_key/attach"
)
BAD_AWAKEABLE_PATH = "bad path, expected either /restate/awakeables/:id/resolve or /restate/awakeables/:id/reject"
_MAX_SLASHES = 7  # /restate/scope/{scope}/call/{service}/{key}/{handler}


class Action(StrEnum):
    """What a request wants of an existing invocation."""

    ATTACH = "attach"  # wait for its result
    OUTPUT = "output"  # its result now, or 470
    LOOKUP = "lookup"  # only its id


@dataclass(frozen=True)
class ServicePath:
    """A call or send: ``key`` is None for a plain service."""

    service: str
    handler: str
    key: str | None
    send: bool
    scope: str | None = None


@dataclass(frozen=True)
class HealthPath:
    pass


@dataclass(frozen=True)
class AwakeablePath:
    awakeable_id: str
    resolve: bool


@dataclass(frozen=True)
class InvocationPath:
    """Attach to / get the output of an invocation named by the path (``GET``)."""

    action: Action
    invocation_id: InvocationId


@dataclass(frozen=True)
class TargetInBodyPath:
    """``POST /restate/attach|output|lookup``: the invocation is described by the body."""

    action: Action


Route = ServicePath | HealthPath | AwakeablePath | InvocationPath | TargetInBodyPath


def classify(raw_path: bytes, schema: Schema) -> Route:
    path = "/" + raw_path.decode("latin-1").strip("/")
    if not 2 <= path.count("/") <= _MAX_SLASHES:
        raise BadRequest(f"bad path: {path}")
    first, *rest = path[1:].split("/")
    if first != "restate":
        return _legacy(first, rest, schema)
    verb, rest = rest[0], rest[1:]
    if verb == "health":
        return HealthPath()  # whatever follows is ignored, as Restate does
    if verb in ("awakeables", "a"):
        return _awakeable(rest)
    if verb == "invocation":
        return _invocation(rest, schema)
    if verb == "workflow":
        return _workflow(rest)
    if verb in ("call", "send"):
        return _call_or_send(verb, rest, schema, None)
    if verb == "scope":
        if len(rest) < 2:
            raise BadRequest(BAD_PATH)
        return _call_or_send(rest[1], rest[2:], schema, decode_key(rest[0]))
    if verb in ("attach", "output", "lookup"):
        return _by_id_or_body(Action(verb), rest)
    raise NotFound("not found")


def refused_invocation_labels(raw_path: bytes, schema: Schema) -> tuple[str, bool] | None:
    """(service, is a send) of a call or send path that did not classify, for the ingress request
    counter; None for the other families. The service only when registered, so mistyped paths
    cannot grow the label set."""
    parts = raw_path.decode("latin-1").strip("/").split("/")
    if parts[0] == "restate":
        if len(parts) < 2 or parts[1] not in ("call", "send"):
            return None
        service, send = (parts[2] if len(parts) > 2 else ""), parts[1] == "send"
    else:
        service, send = parts[0], parts[-1] == "send"
    return (service if service in schema.services else ""), send


def decode_key(segment: str) -> str:
    """A percent-decoded key; Restate refuses one that is not UTF-8 and describes it as Rust would."""
    raw = unquote_to_bytes(segment)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        length = "None" if exc.reason == "unexpected end of data" else f"Some({exc.end - exc.start})"
        raise BadRequest(
            f"bad path, cannot decode key: FromUtf8Error {{ bytes: [{', '.join(map(str, raw))}],"
            f" error: Utf8Error {{ valid_up_to: {exc.start}, error_len: {length} }} }}"
        ) from exc


def parse_id(text: str) -> InvocationId:
    try:
        return InvocationId.parse(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _is_keyed(service: str, schema: Schema) -> bool:
    entry = schema.services.get(service)
    if entry is None:
        raise NotFound(f"service '{service}' not found, make sure to register the service before calling it.")
    return entry.manifest.ty in ("VIRTUAL_OBJECT", "WORKFLOW")


def _legacy(service: str, rest: list[str], schema: Schema) -> ServicePath:
    """``/{service}/{handler}[/send]`` and ``/{object}/{key}/{handler}[/send]``."""
    keyed = _is_keyed(service, schema)
    needed = 2 if keyed else 1
    send = len(rest) == needed + 1 and rest[-1] == "send"
    if len(rest) != needed + send:
        raise BadRequest(BAD_LEGACY_PATH)
    key = decode_key(rest[0]) if keyed else None
    return ServicePath(service, rest[needed - 1], key, send)


def _call_or_send(verb: str, rest: list[str], schema: Schema, scope: str | None) -> ServicePath:
    if verb not in ("call", "send") or not rest:
        raise BadRequest(BAD_PATH)
    service, rest = rest[0], rest[1:]
    keyed = _is_keyed(service, schema)
    if len(rest) != (2 if keyed else 1):
        # Also a key on a plain service, or none on an object: Restate answers with the path forms.
        raise BadRequest(BAD_PATH)
    key = decode_key(rest[0]) if keyed else None
    return ServicePath(service, rest[-1], key, verb == "send", scope)


def _by_id_or_body(action: Action, rest: list[str]) -> InvocationPath | TargetInBodyPath:
    if not rest:
        return TargetInBodyPath(action)
    if action is Action.LOOKUP or len(rest) > 1:
        raise BadRequest(BAD_PATH)
    return InvocationPath(action, parse_id(rest[0]))  # the id is checked before the method


def _attach_or_output(segment: str) -> Action:
    if segment not in ("attach", "output"):
        raise NotFound("not found")
    return Action(segment)


def _invocation(rest: list[str], schema: Schema) -> InvocationPath:
    """``/restate/invocation/{id}/{action}`` or ``.../{service}/[{key}/]{handler}/{idempotency key}/{action}``;
    segments after the action are ignored."""
    if len(rest) < 2:
        raise BadRequest(BAD_INVOCATION_PATH)
    if len(rest) == 2:
        action = _attach_or_output(rest[1])
        return InvocationPath(action, parse_id(rest[0]))
    service = rest[0]
    keyed = _is_keyed(service, schema)
    needed = 5 if keyed else 4
    if len(rest) < needed:
        raise BadRequest(BAD_INVOCATION_PATH)
    key = decode_key(rest[1]) if keyed else None
    handler, idempotency_key = rest[needed - 3], rest[needed - 2]
    action = _attach_or_output(rest[needed - 1])
    return InvocationPath(action, InvocationId.for_idempotent(service, key, handler, idempotency_key))


def _workflow(rest: list[str]) -> InvocationPath:
    """``/restate/workflow/{name}/{key}/{action}`` (segments after the action are ignored)."""
    if len(rest) < 3:
        raise BadRequest(BAD_WORKFLOW_PATH)
    key = decode_key(rest[1])
    return InvocationPath(_attach_or_output(rest[2]), InvocationId.for_workflow(rest[0], key))


def _awakeable(rest: list[str]) -> AwakeablePath:
    if len(rest) < 2:
        raise BadRequest(BAD_AWAKEABLE_PATH)
    if rest[1] not in ("resolve", "reject"):
        raise NotFound("not found")
    return AwakeablePath(rest[0], rest[1] == "resolve")
