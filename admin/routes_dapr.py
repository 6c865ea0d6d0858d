"""Dapr apps and HTTP endpoints in the admin API.

Registered through ``POST /deployments`` with ``"kind": "dapr"`` (or ``"http_endpoint"``), which
delegates here (``is_dapr_registration``); listed, described and removed under ``/dapr/apps``, apart
from ``/deployments``, whose Restate shapes the ``restate`` CLI parses.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from admin.bodies import convert
from admin.documented import errors
from engine import Engine, NotFound
from engine.dapr.apps import KINDS, DaprApp, Registration


def is_dapr_registration(body: Any) -> bool:
    """A registration body for a Dapr app: ``kind`` names one, or an ``app_id`` is given."""
    return isinstance(body, dict) and (body.get("kind") in KINDS or "app_id" in body)


async def register_dapr_app(engine: Engine, body: Any) -> Response:
    """201 new, 200 already registered with the same settings; 400 unreachable or unhealthy,
    409 different settings without ``force``."""
    registration = convert(body, Registration)
    app, created = await engine.dapr_apps.register(registration)
    return JSONResponse(app_view(app), status_code=201 if created else 200)


def app_view(app: DaprApp) -> dict[str, Any]:
    config = app.config or {}
    return {
        "id": app.app_id,
        "app_id": app.app_id,
        "kind": app.kind,
        "uri": app.uri,
        "access": msgspec.to_builtins(app.access),
        "retry": {"maxRetries": app.max_retries, "duration": f"{round(app.retry_interval * 1000)}ms"},
        "additional_headers": app.additional_headers,
        "healthz": app.healthz,
        "actor_types": list(config.get("entities", [])),
        "dapr_config": app.config,
        "created_at": app.created_at,
    }


def dapr_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/dapr/apps", operation_id="list_dapr_apps")
    async def list_apps() -> dict[str, Any]:
        return {"apps": [app_view(app) for app in engine.dapr_apps.apps.values()]}

    @router.get("/dapr/apps/{app_id}", operation_id="get_dapr_app", responses=errors(404))
    async def get_app(app_id: str) -> dict[str, Any]:
        app = engine.dapr_apps.apps.get(app_id)
        if app is None:
            raise NotFound(f"Dapr app '{app_id}' not found")
        return app_view(app)

    @router.delete("/dapr/apps/{app_id}", status_code=202, operation_id="delete_dapr_app", responses=errors(404))
    async def delete_app(app_id: str) -> Response:
        await engine.dapr_apps.remove(app_id)
        return Response(status_code=202)

    return router
