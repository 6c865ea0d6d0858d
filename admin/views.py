"""JSON shapes of the admin API, matching the real Restate admin API."""

from __future__ import annotations

from typing import Any

from engine import Deployment, format_duration, timestamp
from engine.schema.manifest import HandlerManifest, ServiceManifest
from engine.schema.registry import Schema, ServiceEntry

_SERVICE_TYPES = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
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


def service_view(entry: ServiceEntry, schema: Schema) -> dict[str, Any]:
    manifest = entry.manifest
    settings = schema.effective(manifest)
    policy = settings.retry_policy
    view: dict[str, Any] = {
        "name": manifest.name,
        "ty": _SERVICE_TYPES.get(manifest.ty, manifest.ty),
        "handlers": [handler_view(manifest, h, settings.public) for h in manifest.handlers],
        "documentation": manifest.documentation,
        "metadata": manifest.metadata or {},
        "deployment_id": entry.deployment_id,
        "revision": entry.revision,
        "public": settings.public,
        "idempotency_retention": format_duration(settings.idempotency_retention),
        "journal_retention": format_duration(settings.journal_retention),
        "inactivity_timeout": format_duration(settings.inactivity_timeout),
        "abort_timeout": format_duration(settings.abort_timeout),
        "enable_lazy_state": settings.lazy_state,
        "retry_policy": {
            "initial_interval": format_duration(policy.initial_interval),
            "exponentiation_factor": policy.exponentiation_factor,
            "max_attempts": policy.max_attempts,
            "max_interval": format_duration(policy.max_interval),
            "on_max_attempts": policy.on_max_attempts.value.capitalize(),
        },
    }
    if manifest.ty == "WORKFLOW":
        # Restate shows it for workflows only.
        view["workflow_completion_retention"] = format_duration(settings.workflow_completion_retention)
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
