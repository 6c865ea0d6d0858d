"""The body of ``POST /restate/attach|output|lookup``: which invocation it names.

Restate answers an undecodable body with a 500 (its message carries a Rust backtrace); it is the
client's mistake, so quill answers 400 with what was wrong and the forms a body may take.
"""

from __future__ import annotations

import msgspec

from engine import BadRequest, InvocationId
from ingress.paths import Action, parse_id
from ingress.scopes import scope_of


class InvocationTarget(msgspec.Struct, rename="camel", kw_only=True):
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
# The fields each target needs (wire name, struct field).
_REQUIRED = {
    "invocation": (("invocationId", "invocation_id"),),
    "workflow": (("workflowName", "workflow_name"), ("workflowKey", "workflow_key")),
    "idempotentInvocation": (("service", "service"), ("handler", "handler"), ("idempotencyKey", "idempotency_key")),
}
_decode = msgspec.json.Decoder(InvocationTarget).decode


def target_from_body(action: Action, body: bytes) -> InvocationId:
    what = "lookup" if action is Action.LOOKUP else "request"
    try:
        parsed = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadRequest(f"cannot read body: invalid {what} body: {reason}; expected one of {_TARGET_FORMS}") from exc
    scope = None if parsed.scope is None else scope_of(parsed.scope)
    if parsed.target == "invocation" and parsed.invocation_id is not None:
        return parse_id(parsed.invocation_id)
    if parsed.target == "workflow" and parsed.workflow_name is not None and parsed.workflow_key is not None:
        return InvocationId.for_workflow(parsed.workflow_name, parsed.workflow_key, scope)
    if (
        parsed.target == "idempotentInvocation"
        and parsed.service is not None
        and parsed.handler is not None
        and parsed.idempotency_key is not None
    ):
        return InvocationId.for_idempotent(
            parsed.service, parsed.key, parsed.handler, parsed.idempotency_key, scope
        )
    required = _REQUIRED.get(parsed.target)
    if required is None:
        problem = f"unknown target '{parsed.target}'"
    else:
        missing = [name for name, field in required if getattr(parsed, field) is None]
        problem = "missing field " + ", ".join(f"`{name}`" for name in missing)
    raise BadRequest(f"cannot read body: invalid {what} body: {problem}; expected one of {_TARGET_FORMS}")
