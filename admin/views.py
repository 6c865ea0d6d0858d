"""JSON shapes of the admin API, matching the real Restate admin API."""

from __future__ import annotations

from typing import Any

from engine.config import Config
from engine.durations import format_duration
from engine.manifest import HandlerManifest, ServiceManifest
from engine.records import Deployment, timestamp
from engine.schema import Schema, ServiceEntry

_SERVICE_TYPES = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
_HANDLER_TYPES = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}


def deployment_view(deployment: Deployment, schema: Schema) -> dict[str, Any]:
    services = [
        {"name": entry.manifest.name, "revision": entry.revision}
        for entry in schema.services.values()
        if entry.deployment_id == deployment.id
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


def service_view(entry: ServiceEntry, config: Config) -> dict[str, Any]:
    manifest = entry.manifest
    policy = config.retry_policy
    return {
        "name": manifest.name,
        "ty": _SERVICE_TYPES.get(manifest.ty, manifest.ty),
        "handlers": [handler_view(manifest, h) for h in manifest.handlers],
        "documentation": manifest.documentation,
        "metadata": manifest.metadata or {},
        "deployment_id": entry.deployment_id,
        "revision": entry.revision,
        "public": not manifest.ingress_private,
        "idempotency_retention": _ms(manifest.idempotency_retention, config.idempotency_retention),
        "journal_retention": _ms(manifest.journal_retention, 86_400.0),
        "inactivity_timeout": _ms(manifest.inactivity_timeout, config.inactivity_timeout),
        "abort_timeout": _ms(manifest.abort_timeout, config.abort_timeout),
        "enable_lazy_state": bool(manifest.enable_lazy_state),
        "retry_policy": {
            "initial_interval": _ms(manifest.retry_policy_initial_interval, policy.initial_interval),
            "exponentiation_factor": manifest.retry_policy_exponentiation_factor or policy.exponentiation_factor,
            "max_attempts": manifest.retry_policy_max_attempts or policy.max_attempts,
            "max_interval": _ms(manifest.retry_policy_max_interval, policy.max_interval),
            "on_max_attempts": (manifest.retry_policy_on_max_attempts or policy.on_max_attempts).capitalize(),
        },
    }


def handler_view(service: ServiceManifest, handler: HandlerManifest) -> dict[str, Any]:
    default_ty = {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(service.ty)
    ty = handler.ty or default_ty
    input_schema = (handler.input or {}).get("jsonSchema")
    output_schema = (handler.output or {}).get("jsonSchema")
    return {
        "name": handler.name,
        "ty": _HANDLER_TYPES.get(ty, ty) if ty else None,
        "documentation": handler.documentation,
        "metadata": handler.metadata or {},
        "public": not (handler.ingress_private or service.ingress_private),
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
