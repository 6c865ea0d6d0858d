"""The web UI: the hand-written pages in ``admin/ui/`` served at ``/ui/``.

Every ``/ui/...`` path that is not an asset answers ``index.html`` (the pages route in the
browser, so deep links work), ``GET /`` redirects there, and ``/ui/ingress/...`` is the ingress
application itself, mounted same-origin: the playground and the awakeable buttons reach handlers
without CORS, and the UI works through a single forwarded port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine import NotFound

UI_DIR = Path(__file__).parent / "ui"
INGRESS_PREFIX = "/ui/ingress"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
# Assets are small and change with the package: the browser revalidates them (ETag) each load.
_CACHING = {"cache-control": "no-cache"}
AnyAsgi = Callable[[Any, Any, Any], Awaitable[None]]  # an ASGI app, however it types its arguments


def ui_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    assets = {p.name: p for p in UI_DIR.iterdir() if p.suffix in _TYPES and p.name != "index.html"}

    @router.get("/")
    async def root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @router.get("/ui")
    async def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @router.get("/ui/assets/{name}")
    async def asset(name: str) -> Response:
        path = assets.get(name)
        if path is None:
            raise NotFound(f"no UI asset '{name}'")
        return FileResponse(path, media_type=_TYPES[path.suffix], headers=_CACHING)

    @router.get("/ui/{page:path}")
    async def page(page: str) -> Response:
        return FileResponse(UI_DIR / "index.html", media_type="text/html", headers=_CACHING)

    return router


class IngressMount:
    """Passes ``/ui/ingress/...`` to the ingress application (path without the prefix)."""

    def __init__(self, app: ASGIApp, ingress: AnyAsgi | None = None) -> None:
        self.app = app
        self.ingress = ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if self.ingress is not None and scope["type"] == "http" and path.startswith(INGRESS_PREFIX + "/"):
            stripped = path[len(INGRESS_PREFIX) :]
            raw: bytes = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": stripped, "raw_path": raw[len(INGRESS_PREFIX) :]}
            await self.ingress(scope, receive, send)
            return
        await self.app(scope, receive, send)
