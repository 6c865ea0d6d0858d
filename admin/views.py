"""JSON shapes of the admin API, matching the real Restate admin API."""

from __future__ import annotations

from typing import Any

from engine import Deployment, format_duration
from engine.records import timestamp_nanos
from engine.schema.manifest import HandlerManifest, Options, ServiceManifest
from engine.schema.payloads import describe_input, describe_output, input_json_schema
from engine.schema.registry import Schema, ServiceEntry, normalized_uri

SERVICE_TYPES = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
_HANDLER_TYPES = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}


def deployment_view(deployment: Deployment, schema: Schema, detailed: bool = False) -> dict[str, Any]:
    """The deployment; ``detailed``: its services in full (Restate's response of
    ``GET /deployments/{id}``), otherwise as name/revision pairs (the list)."""
    entries = [entry for entry in schema.services.values() if entry.deployment_id == deployment.id]
    services: list[dict[str, Any]] = [
        {"name": entry.manifest.name, "revision": entry.revision} if not detailed else service_view(entry, schema)
        for entry in entries
    ]
    return {
        "id": deployment.id,
        "uri": normalized_uri(deployment.uri),
        "protocol_type": "RequestResponse" if deployment.protocol_mode == "REQUEST_RESPONSE" else "BidiStream",
        "http_version": "HTTP/1.1" if deployment.use_http_11 else "HTTP/2.0",
        **({"additional_headers": deployment.additional_headers} if deployment.additional_headers else {}),
        "created_at": timestamp_nanos(deployment.created_at),
        "min_protocol_version": deployment.min_protocol_version,
        "max_protocol_version": deployment.max_protocol_version,
        "sdk_version": deployment.sdk_version,
        "services": services,
    }


def service_view(entry: ServiceEntry, schema: Schema) -> dict[str, Any]:
    """A service as Restate renders it: keys in its order, unset optional fields absent (not null)."""
    manifest = entry.manifest
    settings = schema.effective(manifest)
    policy = settings.retry_policy
    view: dict[str, Any] = {
        "name": manifest.name,
        "ty": SERVICE_TYPES.get(manifest.ty, manifest.ty),
        "handlers": [handler_view(manifest, h, settings.public) for h in manifest.handlers],
        **_documented(manifest),
        "deployment_id": entry.deployment_id,
        "revision": entry.revision,
        "public": settings.public,
        "idempotency_retention": format_duration(settings.idempotency_retention),
    }
    if manifest.ty == "WORKFLOW":
        # Restate shows it for workflows only.
        view["workflow_completion_retention"] = format_duration(settings.workflow_completion_retention)
    view.update(
        journal_retention=format_duration(settings.journal_retention),
        inactivity_timeout=format_duration(settings.inactivity_timeout),
        abort_timeout=format_duration(settings.abort_timeout),
        enable_lazy_state=settings.lazy_state,
        retry_policy={
            "initial_interval": format_duration(policy.initial_interval),
            "exponentiation_factor": policy.exponentiation_factor,
            "max_attempts": policy.max_attempts,
            "max_interval": format_duration(policy.max_interval),
            "on_max_attempts": policy.on_max_attempts.value.capitalize(),
        },
    )
    return view


def handler_view(
    service: ServiceManifest, handler: HandlerManifest, service_public: bool | None = None
) -> dict[str, Any]:
    """A handler as Restate renders it: no ``ty`` for a plain service's handlers, no schema keys
    without a schema, and the handler's own retry overrides (``max_attempts`` null when unset)."""
    default_ty = {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(service.ty)
    ty = handler.ty or default_ty
    view: dict[str, Any] = {"name": handler.name}
    if ty:
        view["ty"] = _HANDLER_TYPES.get(ty, ty)
    view.update(_documented(handler))
    view["public"] = (not service.ingress_private if service_public is None else service_public) and not (
        handler.ingress_private
    )
    view["input_description"] = describe_input(handler.input)
    view["output_description"] = describe_output(handler.output)
    input_schema = input_json_schema(handler.input)
    output_schema = (handler.output or {}).get("jsonSchema")
    if input_schema is not None:
        view["input_json_schema"] = _sorted(input_schema)
    if output_schema is not None:
        view["output_json_schema"] = _sorted(output_schema)
    view["retry_policy"] = _handler_retry_policy(handler)
    return view


def _handler_retry_policy(handler: HandlerManifest) -> dict[str, Any]:
    """The handler's own retry overrides; ``max_attempts`` is always there (null: not overridden)."""
    policy: dict[str, Any] = {}
    if handler.retry_policy_initial_interval is not None:
        policy["initial_interval"] = format_duration(handler.retry_policy_initial_interval / 1000)
    if handler.retry_policy_exponentiation_factor is not None:
        policy["exponentiation_factor"] = float(handler.retry_policy_exponentiation_factor)
    policy["max_attempts"] = handler.retry_policy_max_attempts
    if handler.retry_policy_max_interval is not None:
        policy["max_interval"] = format_duration(handler.retry_policy_max_interval / 1000)
    if handler.retry_policy_on_max_attempts is not None:
        policy["on_max_attempts"] = handler.retry_policy_on_max_attempts.capitalize()
    return policy


def _documented(options: Options) -> dict[str, Any]:
    """``documentation`` and ``metadata``, present only when the manifest sets them."""
    shown: dict[str, Any] = {}
    if options.documentation is not None:
        shown["documentation"] = options.documentation
    if options.metadata:
        shown["metadata"] = options.metadata
    return shown


def _sorted(value: Any) -> Any:
    # Restate stores schemas as JSON values with sorted keys and answers them that way.
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value
