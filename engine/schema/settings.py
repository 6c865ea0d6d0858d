"""A handler's effective settings, computed once: server default < service manifest < handler
manifest < operator override (``PATCH /services/{name}``).

The registry recomputes them whenever a deployment or an override changes; the facade (when it
creates invocations), the invoker (timeouts, retries, lazy state), the ingress (public) and the
admin views all read the same values.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from engine.config import Config, OnMaxAttempts, RetryPolicy
from engine.partition.commands import InvocationSettings
from engine.schema.manifest import HandlerManifest, Options, ServiceManifest

# Restate's default journal retention for completed invocations.
DEFAULT_JOURNAL_RETENTION = 86_400.0


class ServiceType(StrEnum):
    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerType(StrEnum):
    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"


class ServiceOverrides(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an operator changed with ``PATCH /services/{name}``; None = keep the manifest's value.

    Durations are milliseconds. Stored in META under ``keys.service_config_key``; they outlive
    re-registration of the service, as Restate keeps service-level settings across revisions.
    """

    public: bool | None = None
    idempotency_retention: int | None = None
    workflow_completion_retention: int | None = None
    journal_retention: int | None = None
    inactivity_timeout: int | None = None
    abort_timeout: int | None = None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Effective settings of a service (``handler`` None) or of one of its handlers; durations in
    seconds."""

    service_ty: ServiceType
    handler_ty: HandlerType | None  # None: a plain service's handler, or the service itself
    public: bool
    idempotency_retention: float
    workflow_completion_retention: float
    journal_retention: float
    inactivity_timeout: float
    abort_timeout: float
    retry_policy: RetryPolicy
    lazy_state: bool

    @property
    def exclusive(self) -> bool:
        return self.handler_ty in (HandlerType.EXCLUSIVE, HandlerType.WORKFLOW)

    @property
    def workflow_run(self) -> bool:
        return self.handler_ty is HandlerType.WORKFLOW

    @property
    def invocation(self) -> InvocationSettings:
        """What the partition keeps of them for an invocation of this handler."""
        retention = self.workflow_completion_retention if self.workflow_run else self.idempotency_retention
        return InvocationSettings(
            self.exclusive,
            self.workflow_run,
            int(retention * 1000),
            virtual_object=self.service_ty is ServiceType.VIRTUAL_OBJECT,
            keyed=self.service_ty is not ServiceType.SERVICE,
        )


def effective(
    service: ServiceManifest, handler: HandlerManifest | None, override: ServiceOverrides | None, config: Config
) -> Settings:
    """The settings of ``handler`` of ``service`` (or of the service itself when None)."""
    change = override or ServiceOverrides()
    layers: list[Options] = [service] if handler is None else [service, handler]
    service_ty = ServiceType(service.ty)
    handler_ty = _handler_type(service_ty, handler)
    # Restate keeps the workflow completion retention on the workflow's run handler.
    run = handler if handler is not None else next((h for h in service.handlers if _is_run(service_ty, h)), None)
    workflow_retention = run.workflow_completion_retention if run is not None else None
    public = not service.ingress_private if change.public is None else change.public
    return Settings(
        service_ty=service_ty,
        handler_ty=handler_ty,
        public=public and not (handler is not None and handler.ingress_private),
        idempotency_retention=_seconds(
            change.idempotency_retention, _last(layers, "idempotency_retention"), config.idempotency_retention
        ),
        workflow_completion_retention=_seconds(
            change.workflow_completion_retention, workflow_retention, config.workflow_completion_retention
        ),
        journal_retention=_seconds(
            change.journal_retention, _last(layers, "journal_retention"), DEFAULT_JOURNAL_RETENTION
        ),
        inactivity_timeout=_seconds(
            change.inactivity_timeout, _last(layers, "inactivity_timeout"), config.inactivity_timeout
        ),
        abort_timeout=_seconds(change.abort_timeout, _last(layers, "abort_timeout"), config.abort_timeout),
        retry_policy=_retry_policy(layers, config.retry_policy),
        lazy_state=bool(_last(layers, "enable_lazy_state")),
    )


def _handler_type(service_ty: ServiceType, handler: HandlerManifest | None) -> HandlerType | None:
    if handler is None:
        return None
    if handler.ty is not None:
        return HandlerType(handler.ty)
    return {ServiceType.VIRTUAL_OBJECT: HandlerType.EXCLUSIVE, ServiceType.WORKFLOW: HandlerType.WORKFLOW}.get(
        service_ty
    )


def _is_run(service_ty: ServiceType, handler: HandlerManifest) -> bool:
    return _handler_type(service_ty, handler) is HandlerType.WORKFLOW


def _last(layers: list[Options], name: str) -> object:
    """The value of the most specific layer that sets ``name``."""
    value = None
    for layer in layers:
        found = getattr(layer, name)
        if found is not None:
            value = found
    return value


def _seconds(override_ms: int | None, manifest_ms: object, default: float) -> float:
    if override_ms is not None:
        return override_ms / 1000
    if isinstance(manifest_ms, int):
        return manifest_ms / 1000
    return default


def _retry_policy(layers: list[Options], default: RetryPolicy) -> RetryPolicy:
    initial = _last(layers, "retry_policy_initial_interval")
    maximum = _last(layers, "retry_policy_max_interval")
    attempts = _last(layers, "retry_policy_max_attempts")
    factor = _last(layers, "retry_policy_exponentiation_factor")
    on_max = _last(layers, "retry_policy_on_max_attempts")
    return RetryPolicy(
        initial_interval=initial / 1000 if isinstance(initial, int) else default.initial_interval,
        exponentiation_factor=float(factor) if isinstance(factor, int | float) else default.exponentiation_factor,
        max_interval=maximum / 1000 if isinstance(maximum, int) else default.max_interval,
        max_attempts=attempts if isinstance(attempts, int) else default.max_attempts,
        on_max_attempts=OnMaxAttempts(on_max.lower()) if isinstance(on_max, str) else default.on_max_attempts,
    )
