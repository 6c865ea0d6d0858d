"""``/deployments``: register (discovery), list, describe, update in place, remove."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from admin.bodies import RegisterDeployment, UpdateDeployment, check_uri, decode_body
from admin.routes_dapr import is_dapr_registration, register_dapr_app
from admin.views import deployment_view, service_view
from engine import Deployment, Engine, NotFound, QuillError
from engine.schema.manifest import EndpointManifest
from engine.schema.registry import ServiceEntry


class NotImplementedYet(QuillError):
    status = 501


def deployments_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def preview(deployment: Deployment) -> list[dict[str, Any]]:
        """The services a registration would create, in the shape the CLI shows before applying."""
        manifest = msgspec.convert(deployment.manifest, EndpointManifest)
        views = []
        for service in manifest.services:
            previous = engine.schema.services.get(service.name)
            revision = 1 if previous is None else previous.revision + (previous.deployment_id != deployment.id)
            entry = ServiceEntry(service, deployment.id, revision)
            views.append(service_view(entry, engine.schema))
        return views

    @router.post("/deployments", status_code=201)
    async def register(request: Request) -> Response:
        raw = await request.body()
        if is_dapr_registration(raw):  # a plain-HTTP Dapr app: no Restate discovery
            return await register_dapr_app(engine, raw)
        body = decode_body(raw, RegisterDeployment, "registration")
        check_uri(body.uri)
        deployment, created = await engine.schema.register(
            engine.http_client,
            body.uri,
            use_http_11=body.use_http_11,
            additional_headers=body.additional_headers,
            force=body.force,
            dry_run=body.dry_run,
        )
        services = [
            service_view(entry, engine.schema)
            for name, entry in engine.schema.services.items()
            if entry.deployment_id == deployment.id
        ]
        if body.dry_run:
            services = preview(deployment)
        payload = {
            "id": deployment.id,
            "services": services,
            "min_protocol_version": deployment.min_protocol_version,
            "max_protocol_version": deployment.max_protocol_version,
            "sdk_version": deployment.sdk_version,
        }
        return JSONResponse(payload, status_code=201 if created else 200)

    @router.get("/deployments")
    async def list_deployments() -> dict[str, Any]:
        return {"deployments": [deployment_view(d, engine.schema) for d in engine.schema.deployments.values()]}

    @router.get("/deployments/{deployment_id}")
    async def get_deployment(deployment_id: str) -> dict[str, Any]:
        deployment = engine.schema.deployments.get(deployment_id)
        if deployment is None:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        return deployment_view(deployment, engine.schema, detailed=True)

    @router.delete("/deployments/{deployment_id}", status_code=202)
    async def delete_deployment(deployment_id: str, force: bool = False) -> Response:
        if deployment_id not in engine.schema.deployments:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        if not force:
            # As Restate 1.7: only the forced removal exists.
            raise NotImplementedYet(
                "Removing a deployment without force is not supported yet. Use force=true to remove it;"
                " in-flight invocations of its services will fail to make progress."
            )
        await engine.schema.remove_deployment(deployment_id)
        return Response(status_code=202)

    async def update(deployment_id: str, request: Request) -> dict[str, Any]:
        body = decode_body(await request.body(), UpdateDeployment, "update deployment")
        if body.uri is not None:
            check_uri(body.uri)
        deployment = await engine.schema.update_deployment(
            engine.http_client,
            deployment_id,
            uri=body.uri,
            use_http_11=body.use_http_11,
            additional_headers=body.additional_headers,
            dry_run=body.dry_run,
        )
        view = deployment_view(deployment, engine.schema, detailed=True)
        if body.dry_run:
            view["services"] = preview(deployment)
        return view

    router.add_api_route("/deployments/{deployment_id}", update, methods=["PATCH"], operation_id="update_deployment")
    router.add_api_route("/deployments/{deployment_id}", update, methods=["PUT"], operation_id="replace_deployment")
    return router
