"""The admin API as a FastAPI application: not a hot path, and FastAPI gives us /openapi."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from admin.openapi import service_openapi
from admin.views import deployment_view, service_view
from engine.engine import Engine
from engine.errors import BadRequest, NotFound, QuillError
from quill import __version__


class RegisterDeployment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    uri: str
    additional_headers: dict[str, str] | None = None
    use_http_11: bool = False
    force: bool = False
    breaking: bool = False
    dry_run: bool = False
    metadata: dict[str, str] | None = None


def create_admin_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Admin API", version=__version__)

    @app.exception_handler(QuillError)
    async def quill_error(_: Request, error: QuillError) -> Response:
        return JSONResponse({"message": error.message, "restate_code": None}, status_code=error.status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        config = engine.config
        return {
            "version": __version__,
            "min_admin_api_version": 1,
            "max_admin_api_version": 1,
            "ingress_endpoint": f"http://{config.bind}:{config.ingress_port}/",
            "features": {"protocol_v7": config.enable_protocol_v7},
        }

    @app.post("/deployments", status_code=201)
    async def register(request: Request) -> Response:
        try:
            body = msgspec.json.decode(await request.body(), type=RegisterDeployment)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Invalid registration request: {exc}") from exc
        if not body.uri.startswith(("http://", "https://")):
            raise BadRequest(f"Invalid uri '{body.uri}': expected an http:// or https:// URL")
        deployment, created = await engine.schema.register(
            engine.http_client,
            body.uri,
            use_http_11=body.use_http_11,
            additional_headers=body.additional_headers,
            force=body.force,
            dry_run=body.dry_run,
        )
        services = [
            service_view(entry, engine.config)
            for entry in engine.schema.services.values()
            if entry.deployment_id == deployment.id
        ]
        if body.dry_run:
            services = [
                {"name": s["name"], "ty": s["ty"]} for s in deployment.manifest.get("services", [])
            ]
        payload = {"id": deployment.id, "services": services}
        return JSONResponse(payload, status_code=201 if created else 200)

    @app.get("/deployments")
    async def list_deployments() -> dict[str, Any]:
        return {"deployments": [deployment_view(d, engine.schema) for d in engine.schema.deployments.values()]}

    @app.get("/deployments/{deployment_id}")
    async def get_deployment(deployment_id: str) -> dict[str, Any]:
        deployment = engine.schema.deployments.get(deployment_id)
        if deployment is None:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        return deployment_view(deployment, engine.schema)

    @app.patch("/invocations/{invocation_id}/cancel", status_code=202)
    async def cancel(invocation_id: str) -> Response:
        await engine.terminate(invocation_id, kill=False)
        return Response(status_code=202)

    @app.patch("/invocations/{invocation_id}/kill")
    async def kill(invocation_id: str) -> Response:
        await engine.terminate(invocation_id, kill=True)
        return Response(status_code=200)

    @app.patch("/invocations/{invocation_id}/purge")
    async def purge(invocation_id: str) -> Response:
        await engine.purge(invocation_id)
        return Response(status_code=200)

    @app.get("/services")
    async def list_services() -> dict[str, Any]:
        return {"services": [service_view(e, engine.config) for e in engine.schema.services.values()]}

    @app.get("/services/{name}")
    async def get_service(name: str) -> dict[str, Any]:
        entry = engine.schema.services.get(name)
        if entry is None:
            raise NotFound(f"Service '{name}' not found")
        return service_view(entry, engine.config)

    @app.get("/services/{name}/openapi")
    async def get_service_openapi(name: str) -> dict[str, Any]:
        entry = engine.schema.services.get(name)
        if entry is None:
            raise NotFound(f"Service '{name}' not found")
        return service_openapi(entry, f"http://{engine.config.bind}:{engine.config.ingress_port}/")

    return app
