"""Finding invocations for attach / output / lookup: by id, by idempotency key, by workflow."""

from __future__ import annotations

import msgspec

from engine import BadRequest, InvocationId, NotFound
from ingress.scopes import scope_of


class InvocationTarget(msgspec.Struct, rename="camel", kw_only=True):
    """Body of ``POST /restate/attach|output|lookup``."""

    target: str
    invocation_id: str | None = None
    workflow_name: str | None = None
    workflow_key: str | None = None
    service: str | None = None
    key: str | None = None
    handler: str | None = None
    idempotency_key: str | None = None
    scope: str | None = None


_TARGET_FORMS = (
    '{"target":"invocation","invocationId"}, {"target":"workflow","workflowName","workflowKey","scope"?},'
    ' {"target":"idempotentInvocation","service","key"?,"handler","idempotencyKey","scope"?}'
)


def parse_id(text: str) -> InvocationId:
    try:
        return InvocationId.parse(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def target_from_body(body: bytes) -> InvocationId:
    try:
        parsed = msgspec.json.decode(body, type=InvocationTarget)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # Restate answers 500 "cannot read body"; a malformed body is the client's error: 400.
        raise BadRequest(f"cannot read body: invalid request body: {exc}, expected one of {_TARGET_FORMS}") from exc
    scope = None if parsed.scope is None else scope_of(parsed.scope)
    if parsed.target == "invocation" and parsed.invocation_id:
        return parse_id(parsed.invocation_id)
    if parsed.target == "workflow" and parsed.workflow_name and parsed.workflow_key is not None:
        return InvocationId.for_workflow(parsed.workflow_name, parsed.workflow_key, scope)
    if parsed.target == "idempotentInvocation" and parsed.service and parsed.handler and parsed.idempotency_key:
        return InvocationId.for_idempotent(
            parsed.service, parsed.key or "", parsed.handler, parsed.idempotency_key, scope
        )
    raise BadRequest(f"Invalid target, expected one of {_TARGET_FORMS}")


def target_from_path(segments: list[str]) -> tuple[InvocationId, str]:
    """``/restate/{attach|output}/{id}`` and the older ``/restate/invocation|workflow/.../{action}``."""
    if len(segments) == 3 and segments[1] in ("attach", "output"):
        return parse_id(segments[2]), segments[1]
    action = segments[-1]
    if action not in ("attach", "output"):
        raise NotFound("not found")
    rest = segments[2:-1]
    if segments[1] == "workflow" and len(rest) == 2:
        return InvocationId.for_workflow(rest[0], rest[1]), action
    if segments[1] == "invocation":
        if len(rest) == 1:
            return parse_id(rest[0]), action
        if len(rest) in (3, 4):
            service, *key, handler, idempotency_key = rest
            return InvocationId.for_idempotent(service, key[0] if key else "", handler, idempotency_key), action
    raise BadRequest(
        "Bad path, expected /restate/attach/{id}, /restate/output/{id}, /restate/invocation/{id}/attach|output,"
        " /restate/invocation/{service}/[{key}/]{handler}/{idempotencyKey}/attach|output or"
        " /restate/workflow/{name}/{key}/attach|output"
    )
