"""``/services``: list, describe, handlers, operator overrides (PATCH), OpenAPI, state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from admin.bodies import ModifyService, ModifyState, duration_ms, json_body
from admin.documented import READ, errors
from admin.openapi import service_openapi
from admin.views import SERVICE_TYPES, handler_view, service_view
from engine import BadRequest, Engine, InvalidName, NotFound, parse_scope
from engine.schema.registry import ServiceEntry
from engine.schema.settings import ServiceOverrides

_MODIFY = errors(400, 404, 405, 409, 415, 422, 500)


def services_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def entry_of(name: str, missing: str = "The requested service '{}' does not exist") -> ServiceEntry:
        entry = engine.schema.services.get(name)
        if entry is None:
            raise NotFound(missing.format(name))
        return entry

    def view(name: str) -> dict[str, Any]:
        return service_view(entry_of(name), engine.schema)

    @router.get("/services", operation_id="list_services", responses=READ)
    async def list_services() -> dict[str, Any]:
        return {"services": [view(name) for name in engine.schema.services]}

    @router.get("/services/{service}", operation_id="get_service", responses=READ)
    async def get_service(service: str) -> dict[str, Any]:
        return view(service)

    @router.patch("/services/{service}", operation_id="modify_service", responses=_MODIFY)
    async def modify_service(service: str, request: Request) -> dict[str, Any]:
        entry = entry_of(service, "not found in the schema registry: service with name '{}'")
        body = await json_body(request, ModifyService)
        if body.workflow_completion_retention is not None and entry.manifest.ty != "WORKFLOW":
            ty = SERVICE_TYPES.get(entry.manifest.ty, entry.manifest.ty)
            raise BadRequest(f"modifying retention time for service type {ty} is unsupported")
        overrides = ServiceOverrides(
            public=body.public,
            idempotency_retention=duration_ms(body.idempotency_retention, "idempotency_retention"),
            workflow_completion_retention=duration_ms(
                body.workflow_completion_retention, "workflow_completion_retention"
            ),
            journal_retention=duration_ms(body.journal_retention, "journal_retention"),
            inactivity_timeout=duration_ms(body.inactivity_timeout, "inactivity_timeout"),
            abort_timeout=duration_ms(body.abort_timeout, "abort_timeout"),
        )
        await engine.schema.set_overrides(service, overrides)
        return view(service)

    @router.post(
        "/services/{service}/state", status_code=202, operation_id="modify_service_state", responses=_MODIFY
    )
    async def modify_state(service: str, request: Request) -> Response:
        entry = entry_of(service)
        if entry.manifest.ty not in ("VIRTUAL_OBJECT", "WORKFLOW"):
            ty = SERVICE_TYPES.get(entry.manifest.ty, entry.manifest.ty)
            raise BadRequest(f"Cannot modify state for service type {ty}")
        body = await json_body(request, ModifyState)
        scope = None if body.scope is None else _scope(body.scope)
        new_state = [
            (k.encode(), v.encode() if isinstance(v, str) else bytes(v)) for k, v in sorted(body.new_state.items())
        ]
        await engine.replace_state(service, body.object_key, new_state, body.version, scope)
        return Response(status_code=202)

    @router.get("/services/{service}/handlers", operation_id="list_service_handlers", responses=READ)
    async def list_handlers(service: str) -> dict[str, Any]:
        return {"handlers": view(service)["handlers"]}

    @router.get("/services/{service}/handlers/{handler}", operation_id="get_service_handler", responses=READ)
    async def get_handler(service: str, handler: str) -> dict[str, Any]:
        entry = entry_of(service)
        found = entry.manifest.handler(handler)
        if found is None:
            raise NotFound(f"The requested handler '{handler}' on service '{service}' does not exist")
        return handler_view(entry.manifest, found, engine.schema.is_public(service))

    @router.get("/services/{service}/openapi", operation_id="get_service_openapi", responses=READ)
    async def get_service_openapi(service: str) -> dict[str, Any]:
        return service_openapi(entry_of(service), engine.config.ingress_url)

    return router


def _scope(text: str) -> str:
    try:
        return parse_scope(text)
    except InvalidName as exc:
        raise BadRequest(f"Invalid scope '{text}': {exc}") from exc
