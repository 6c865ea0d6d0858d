"""``/services``: list, describe, handlers, operator overrides (PATCH), OpenAPI, state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from admin.bodies import ModifyService, ModifyState, decode_body, duration_ms
from admin.openapi import service_openapi
from admin.views import handler_view, service_view
from engine import BadRequest, Engine, InvalidName, NotFound, parse_scope
from engine.schema.registry import ServiceEntry
from engine.schema.settings import ServiceOverrides


def services_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def entry_of(name: str) -> ServiceEntry:
        entry = engine.schema.services.get(name)
        if entry is None:
            raise NotFound(f"Service '{name}' not found")
        return entry

    def view(name: str) -> dict[str, Any]:
        return service_view(entry_of(name), engine.schema)

    @router.get("/services")
    async def list_services() -> dict[str, Any]:
        return {"services": [view(name) for name in engine.schema.services]}

    @router.get("/services/{name}")
    async def get_service(name: str) -> dict[str, Any]:
        return view(name)

    @router.patch("/services/{name}")
    async def modify_service(name: str, request: Request) -> dict[str, Any]:
        entry = entry_of(name)
        body = decode_body(await request.body(), ModifyService, "modify service")
        if body.workflow_completion_retention is not None and entry.manifest.ty != "WORKFLOW":
            raise BadRequest(f"Cannot set the workflow completion retention of '{name}': it is not a workflow")
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
        await engine.schema.set_overrides(name, overrides)
        return view(name)

    @router.post("/services/{name}/state", status_code=202)
    async def modify_state(name: str, request: Request) -> Response:
        entry = entry_of(name)
        if entry.manifest.ty not in ("VIRTUAL_OBJECT", "WORKFLOW"):
            raise BadRequest(f"Service '{name}' is not a virtual object: it has no state")
        body = decode_body(await request.body(), ModifyState, "modify state")
        scope = None if body.scope is None else _scope(body.scope)
        try:
            new_state = [
                (k.encode(), v.encode() if isinstance(v, str) else bytes(v)) for k, v in sorted(body.new_state.items())
            ]
        except ValueError as exc:
            raise BadRequest(f"Invalid state value: {exc}") from exc
        await engine.replace_state(name, body.object_key, new_state, body.version, scope)
        return Response(status_code=202)

    @router.get("/services/{name}/handlers")
    async def list_handlers(name: str) -> dict[str, Any]:
        service = view(name)
        return {"handlers": service["handlers"]}

    @router.get("/services/{name}/handlers/{handler}")
    async def get_handler(name: str, handler: str) -> dict[str, Any]:
        entry = entry_of(name)
        found = entry.manifest.handler(handler)
        if found is None:
            raise NotFound(f"Handler '{name}/{handler}' not found")
        return handler_view(entry.manifest, found, engine.schema.is_public(name))

    @router.get("/services/{name}/openapi")
    async def get_service_openapi(name: str) -> dict[str, Any]:
        return service_openapi(entry_of(name), engine.config.ingress_url)

    return router


def _scope(text: str) -> str:
    try:
        return parse_scope(text)
    except InvalidName as exc:
        raise BadRequest(f"Invalid scope '{text}': {exc}") from exc
