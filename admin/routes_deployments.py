"""``/deployments``: register (discovery), list, describe, update in place, remove."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from admin.bodies import RegisterDeployment, UpdateDeployment, check_uri, convert, json_body, json_value
from admin.documented import READ, errors
from admin.routes_dapr import is_dapr_registration, register_dapr_app
from admin.views import deployment_view, service_view
from engine import Deployment, Engine, NotFound, QuillError
from engine.schema.manifest import EndpointManifest
from engine.schema.registry import ServiceEntry


class NotImplementedYet(QuillError):
    status = 501


_REGISTRATION_SHAPE = "data did not match any variant of untagged enum RegisterDeploymentRequest"


def deployments_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def preview(deployment: Deployment) -> list[dict[str, Any]]:
        """The services a registration would create, in the shape the CLI shows before applying."""
        manifest = msgspec.convert(deployment.manifest, EndpointManifest)
        views = []
        for service in manifest.services:
            revision = deployment.revisions.get(service.name, 1)
            views.append(service_view(ServiceEntry(service, deployment.id, revision), engine.schema))
        return views

    @router.post(
        "/deployments",
        status_code=201,
        operation_id="create_deployment",
        responses={200: {"description": "Already registered"}, **errors(400, 404, 405, 409, 415, 422, 500)},
    )
    async def register(request: Request) -> Response:
        value = await json_value(request)
        if is_dapr_registration(value):  # a plain-HTTP Dapr app: no Restate discovery
            return await register_dapr_app(engine, value)
        body = convert(value, RegisterDeployment, shape=_REGISTRATION_SHAPE)
        check_uri(body.uri)
        deployment, created = await engine.schema.register(
            engine.http_client,
            body.uri,
            use_http_11=body.use_http_11,
            additional_headers=body.additional_headers,
            force=body.force,
            breaking=body.breaking,
            dry_run=body.dry_run,
        )
        if body.dry_run:
            services = preview(deployment)
        else:
            services = [
                service_view(entry, engine.schema)
                for entry in engine.schema.services.values()
                if entry.deployment_id == deployment.id
            ]
        payload = {
            "id": deployment.id,
            "services": services,
            "min_protocol_version": deployment.min_protocol_version,
            "max_protocol_version": deployment.max_protocol_version,
            "sdk_version": deployment.sdk_version,
        }
        # Restate's Location is relative, without a leading slash; it comes with the 200 too.
        location = {"location": f"deployments/{deployment.id}"}
        return JSONResponse(payload, status_code=201 if created else 200, headers=location)

    @router.get("/deployments", operation_id="list_deployments")
    async def list_deployments() -> dict[str, Any]:
        return {"deployments": [deployment_view(d, engine.schema) for d in engine.schema.deployments.values()]}

    @router.get("/deployments/{deployment}", operation_id="get_deployment", responses=READ)
    async def get_deployment(deployment: str) -> dict[str, Any]:
        found = engine.schema.deployments.get(deployment)
        if found is None:
            raise NotFound(f"Deployment '{deployment}' not found")
        return deployment_view(found, engine.schema, detailed=True)

    @router.delete(
        "/deployments/{deployment}",
        status_code=202,
        operation_id="delete_deployment",
        responses=errors(400, 404, 405, 409, 500, 501),
    )
    async def delete_deployment(deployment: str, force: bool = False) -> Response:
        if deployment not in engine.schema.deployments:
            raise NotFound(f"Deployment '{deployment}' not found")
        if not force:
            # As Restate 1.7: only the forced removal exists.
            raise NotImplementedYet(
                "Removing a deployment without force is not supported yet. Use force=true to remove it;"
                " in-flight invocations of its services will fail to make progress."
            )
        await engine.schema.remove_deployment(deployment)
        return Response(status_code=202)

    async def update(deployment: str, request: Request) -> dict[str, Any]:
        body = await json_body(request, UpdateDeployment)
        if body.uri is not None:
            check_uri(body.uri)
        updated = await engine.schema.update_deployment(
            engine.http_client,
            deployment,
            uri=body.uri,
            use_http_11=body.use_http_11,
            additional_headers=body.additional_headers,
            dry_run=body.dry_run,
        )
        view = deployment_view(updated, engine.schema, detailed=True)
        if body.dry_run:
            view["services"] = preview(updated)
        return view

    for method, operation_id in (("PATCH", "update_deployment"), ("PUT", "replace_deployment")):
        router.add_api_route(
            "/deployments/{deployment}",
            update,
            methods=[method],
            operation_id=operation_id,
            responses=errors(400, 404, 405, 409, 415, 422, 500),
        )
    return router
