"""The discovery manifest an SDK serves at ``GET /discover`` (endpoint manifest v2-v4)."""

from __future__ import annotations

from typing import Any

import msgspec

MANIFEST_ACCEPT = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (2, 3, 4))


class Options(msgspec.Struct, rename="camel", kw_only=True):
    """Settings a service and each of its handlers may carry (durations in milliseconds)."""

    documentation: str | None = None
    metadata: dict[str, str] | None = None
    inactivity_timeout: int | None = None
    abort_timeout: int | None = None
    journal_retention: int | None = None
    idempotency_retention: int | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    retry_policy_initial_interval: int | None = None
    retry_policy_max_interval: int | None = None
    retry_policy_max_attempts: int | None = None
    retry_policy_exponentiation_factor: float | None = None
    retry_policy_on_max_attempts: str | None = None


class HandlerManifest(Options, kw_only=True):
    name: str
    ty: str | None = None
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    workflow_completion_retention: int | None = None


class ServiceManifest(Options, kw_only=True):
    name: str
    ty: str
    handlers: list[HandlerManifest]

    def handler(self, name: str) -> HandlerManifest | None:
        for handler in self.handlers:
            if handler.name == name:
                return handler
        return None


class EndpointManifest(msgspec.Struct, rename="camel", kw_only=True):
    protocol_mode: str | None = None
    min_protocol_version: int
    max_protocol_version: int
    services: list[ServiceManifest]
    lambda_compression: str | None = None


decode_manifest = msgspec.json.Decoder(EndpointManifest).decode
