"""The admin API as a FastAPI application: not a hot path, and FastAPI gives us /openapi.

Routes live in ``admin/routes_*.py``; this module assembles them, maps engine errors to Restate's
error body, and serves every route under the versioned prefixes the CLI uses as well.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.documented import without_parameter_validation
from admin.routes_dapr import dapr_router
from admin.routes_deployments import deployments_router
from admin.routes_invocations import invocations_router
from admin.routes_limits import OPENAPI_COMPONENTS, limits_router
from admin.routes_query import query_router
from admin.routes_services import services_router
from admin.ui_routes import AnyAsgi, IngressMount, ui_router
from admin.version import SERVER_VERSION
from engine import BadRequest, Engine, PayloadTooLarge, QuillError, Unavailable

__version__ = SERVER_VERSION
MIN_ADMIN_API_VERSION = 2
MAX_ADMIN_API_VERSION = 4


class VersionPrefix:
    """Serves ``/v2/...`` to ``/v4/...`` as the unprefixed routes; other versions are refused
    with 400, as Restate refuses ``/v1``. The CLI reads ``/version`` and then prefixes every path
    with the highest version both sides support."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            segment, _, rest = path[1:].partition("/")
            if len(segment) >= 2 and segment[0] == "v" and segment[1:].isdigit():
                version = int(segment[1:])
                if not MIN_ADMIN_API_VERSION <= version <= MAX_ADMIN_API_VERSION:
                    body = {
                        "message": f"Unsupported admin API version {version}; this server supports versions"
                        f" {MIN_ADMIN_API_VERSION} to {MAX_ADMIN_API_VERSION}.",
                        "restate_code": None,
                    }
                    await JSONResponse(body, status_code=400)(scope, receive, send)
                    return
                stripped = "/" + rest
                scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        await self.app(scope, receive, send)


class BodyLimit:
    """Request bodies of at most ``limit`` bytes (Restate's admin API: 2 MB). A larger declared
    content-length is refused before anything is read; a chunked body stops being read as soon as
    it passes the limit. Either way 413, and the connection closes rather than reading the rest."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise PayloadTooLarge(_too_large_message(self.limit))
            return message

        await self.app(scope, limited, send)


def _too_large_message(limit: int) -> str:
    return f"Failed to buffer the request body: length limit of {limit} bytes exceeded"


def _too_large(limit: int) -> Response:
    return _error_response(PayloadTooLarge(_too_large_message(limit)))


def _error_response(error: QuillError) -> Response:
    # Past a too-large body, close: reading (and discarding) the rest would take as long as storing it.
    headers = {"connection": "close"} if error.status == 413 else None
    body = {"message": error.message, "restate_code": error.restate_code}
    return JSONResponse(body, status_code=error.status, headers=headers)


def create_admin_app(engine: Engine, ingress: AnyAsgi | None = None) -> FastAPI:
    """``ingress``: the ingress application, also served under ``/ui/ingress/`` for the web UI."""
    # Restate serves the admin API document at /openapi.
    app = FastAPI(title="Admin API", version=__version__, openapi_url="/openapi")
    app.add_middleware(VersionPrefix)
    app.add_middleware(BodyLimit, limit=engine.config.admin_request_size_limit)
    app.add_middleware(IngressMount, ingress=ingress)

    @app.exception_handler(QuillError)
    async def quill_error(_: Request, error: QuillError) -> Response:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, error: RequestValidationError) -> Response:
        # A query or path parameter of the wrong type (e.g. ?force=maybe): a 400, in Restate's shape.
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
        return _error_response(BadRequest(f"Failed to deserialize query string: {reasons}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> Response:
        # Unknown routes (404) and methods (405), in Restate's shape rather than FastAPI's.
        body = {"message": str(error.detail), "restate_code": None}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(title=app.title, version=app.version, routes=app.routes)
            # Routes that read their own bodies name their schemas here (FastAPI only knows models).
            components = generated.setdefault("components", {})
            for section, entries in OPENAPI_COMPONENTS.items():
                components.setdefault(section, {}).update(entries)
            app.openapi_schema = without_parameter_validation(generated)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]

    @app.get("/health", operation_id="health")
    async def health() -> dict[str, Any]:
        if (failure := await engine.storage_failure()) is not None:
            raise Unavailable(f"storage unavailable: {failure}")
        return {}

    @app.get("/cluster", operation_id="cluster")
    async def cluster() -> dict[str, Any]:
        """The partitions this node serves (and, in cluster mode, leads at which epoch)."""
        return engine.topology()

    @app.get("/version", operation_id="version")
    async def version() -> dict[str, Any]:
        config = engine.config
        return {
            "version": __version__,
            "min_admin_api_version": MIN_ADMIN_API_VERSION,
            "max_admin_api_version": MAX_ADMIN_API_VERSION,
            "ingress_endpoint": config.ingress_url,
            "features": {"protocol_v7": config.enable_protocol_v7, "vqueues": True},
        }

    if engine.metrics.enabled:
        # async: collected on the event loop, the only thread that writes the counters.
        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(await engine.metrics_exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(deployments_router(engine))
    app.include_router(services_router(engine))
    app.include_router(invocations_router(engine))
    app.include_router(query_router(engine))
    app.include_router(dapr_router(engine))

    @app.get("/subscriptions")
    async def subscriptions() -> dict[str, Any]:
        # Kafka subscriptions are not supported: the list is always empty (Restate's shape).
        return {"subscriptions": []}

    app.include_router(ui_router())
    app.include_router(limits_router(engine))
    return app
