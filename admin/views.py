"""JSON shapes of the admin API, matching the real Restate admin API."""

from __future__ import annotations

from typing import Any

from engine import Config, Deployment, format_duration, timestamp
from engine.schema.manifest import HandlerManifest, ServiceManifest
from engine.schema.registry import Schema, ServiceEntry, ServiceOverrides

_SERVICE_TYPES = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
_HANDLER_TYPES = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}


def deployment_view(deployment: Deployment, schema: Schema, config: Config | None = None) -> dict[str, Any]:
    """The deployment; with ``config``, its services in full (Restate's detailed response of
    ``GET /deployments/{id}``), otherwise as name/revision pairs (the list)."""
    entries = [entry for entry in schema.services.values() if entry.deployment_id == deployment.id]
    services: list[dict[str, Any]] = [
        {"name": entry.manifest.name, "revision": entry.revision}
        if config is None
        else service_view(entry, config, schema.overrides.get(entry.manifest.name))
        for entry in entries
    ]
    return {
        "id": deployment.id,
        "uri": deployment.uri,
        "protocol_type": "RequestResponse" if deployment.protocol_mode == "REQUEST_RESPONSE" else "BidiStream",
        "http_version": "HTTP/1.1" if deployment.use_http_11 else "HTTP/2.0",
        "additional_headers": deployment.additional_headers,
        "created_at": timestamp(deployment.created_at),
        "min_protocol_version": deployment.min_protocol_version,
        "max_protocol_version": deployment.max_protocol_version,
        "sdk_version": deployment.sdk_version,
        "services": services,
    }


def service_view(entry: ServiceEntry, config: Config, overrides: ServiceOverrides | None = None) -> dict[str, Any]:
    manifest = entry.manifest
    policy = config.retry_policy
    change = overrides or ServiceOverrides()
    public = change.public if change.public is not None else not manifest.ingress_private
    view: dict[str, Any] = {
        "name": manifest.name,
        "ty": _SERVICE_TYPES.get(manifest.ty, manifest.ty),
        "handlers": [handler_view(manifest, h, public) for h in manifest.handlers],
        "documentation": manifest.documentation,
        "metadata": manifest.metadata or {},
        "deployment_id": entry.deployment_id,
        "revision": entry.revision,
        "public": public,
        "idempotency_retention": _ms(
            _first(change.idempotency_retention, manifest.idempotency_retention), config.idempotency_retention
        ),
        "journal_retention": _ms(_first(change.journal_retention, manifest.journal_retention), 86_400.0),
        "inactivity_timeout": _ms(
            _first(change.inactivity_timeout, manifest.inactivity_timeout), config.inactivity_timeout
        ),
        "abort_timeout": _ms(_first(change.abort_timeout, manifest.abort_timeout), config.abort_timeout),
        "enable_lazy_state": bool(manifest.enable_lazy_state),
        "retry_policy": {
            "initial_interval": _ms(manifest.retry_policy_initial_interval, policy.initial_interval),
            "exponentiation_factor": manifest.retry_policy_exponentiation_factor or policy.exponentiation_factor,
            "max_attempts": manifest.retry_policy_max_attempts or policy.max_attempts,
            "max_interval": _ms(manifest.retry_policy_max_interval, policy.max_interval),
            "on_max_attempts": (manifest.retry_policy_on_max_attempts or policy.on_max_attempts).capitalize(),
        },
    }
    if manifest.ty == "WORKFLOW":
        # Restate shows it for workflows only; it lives on the workflow handler in the manifest.
        run = next((h for h in manifest.handlers if (h.ty or "WORKFLOW") == "WORKFLOW"), None)
        manifest_value = run.workflow_completion_retention if run is not None else None
        view["workflow_completion_retention"] = _ms(
            _first(change.workflow_completion_retention, manifest_value), config.workflow_completion_retention
        )
    return view


def handler_view(
    service: ServiceManifest, handler: HandlerManifest, service_public: bool | None = None
) -> dict[str, Any]:
    default_ty = {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(service.ty)
    ty = handler.ty or default_ty
    input_schema = (handler.input or {}).get("jsonSchema")
    output_schema = (handler.output or {}).get("jsonSchema")
    return {
        "name": handler.name,
        "ty": _HANDLER_TYPES.get(ty, ty) if ty else None,
        "documentation": handler.documentation,
        "metadata": handler.metadata or {},
        "public": (not service.ingress_private if service_public is None else service_public)
        and not handler.ingress_private,
        "input_description": _describe(handler.input, input_schema, default_required=False),
        "output_description": _describe(handler.output, output_schema, default_required=True),
        "input_json_schema": input_schema,
        "output_json_schema": output_schema,
    }


def _describe(spec: dict[str, Any] | None, json_schema: Any, *, default_required: bool) -> str:
    if spec is None or (not spec and not default_required):
        return "none"
    if isinstance(json_schema, dict):
        title = json_schema.get("title") or json_schema.get("type")
        if title:
            return f"JSON {title}" if json_schema.get("title") is None else f"JSON '{title}'"
    return spec.get("contentType", "application/json") if spec else "none"


def _ms(value: int | None, default_seconds: float) -> str:
    return format_duration(value / 1000 if value is not None else default_seconds)


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
