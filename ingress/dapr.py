"""The Dapr sidecar HTTP API (``/v1.0/...``): service invocation and the health probes.

Served under ``/v1.0/`` on the ingress port and, with ``--dapr-port``, alone on its own port (where
the ``dapr-app-id`` header form ``GET /{method}`` works too, as on daprd's port 3500). Errors have
daprd's shape, ``{"errorCode": "ERR_...", "message": "..."}``, not Restate's.

Routes are looked up by the segment after ``/v1.0/`` (``ROUTES``), so the actor API can be added
as one more entry.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import msgspec

from engine.dapr import proxy
from engine.dapr.apps import DaprApps
from engine.engine import Engine
from engine.errors import BodyTooLarge, DaprError, InvalidMethod, NoAppId, QuillError
from ingress.dapr_actors import DaprActors
from ingress.responses import BodyLimitExceeded, ClientGone, Send, read_body, respond

log = logging.getLogger(__name__)
Receive = Callable[[], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]

PREFIX = "/v1.0/"
_INVOKE = "/v1.0/invoke/"
_METHOD = "/method/"
_VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_JSON = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode


class DaprIngress:
    """An ASGI app for the Dapr routes; ``sidecar_port`` is True on the dedicated ``--dapr-port``
    listener, where any other path carrying a ``dapr-app-id`` is an invocation."""

    def __init__(self, engine: Engine, *, sidecar_port: bool = False) -> None:
        self._engine = engine
        self._limit = engine.config.request_size_limit
        self._sidecar_port = sidecar_port
        self.routes: dict[str, Callable[[Scope, str, Receive, Send], Awaitable[None]]] = {
            "invoke": self._invoke_route,
            "healthz": self._healthz,
            "actors": DaprActors(engine, self._read_body),
        }

    @property
    def _apps(self) -> DaprApps:
        return self._engine.dapr_apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except DaprError as error:
            await respond_dapr_error(send, error.status, error.error_code, error.message)
        except QuillError as error:
            await respond_dapr_error(send, error.status, "ERR_INTERNAL", error.message)
        except Exception:
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            await respond_dapr_error(send, 500, "ERR_INTERNAL", "internal error, see the server log")

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if path.startswith(PREFIX):
            handler = self.routes.get(path[len(PREFIX) :].split("/", 1)[0])
            if handler is not None:
                await handler(scope, path, receive, send)
                return
        header_app = _header_app_id(scope)
        if header_app is not None and (self._sidecar_port or path.startswith(PREFIX)):
            # daprd: with the app id in a header (or Basic auth), the whole path is the method.
            await self._invoke(scope, header_app, path.lstrip("/"), receive, send)
            return
        # Go's net/http answer for an unknown route, as daprd gives it.
        await respond(send, 404, b"404 page not found", [(b"content-type", b"text/plain; charset=utf-8")])

    async def _healthz(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        # The SDKs gate on GET /v1.0/healthz/outbound before any call; quill has no app to wait for.
        if path.rstrip("/") in ("/v1.0/healthz", "/v1.0/healthz/outbound") and scope["method"] in ("GET", "HEAD"):
            await respond(send, 204)
            return
        await respond(send, 404, b"404 page not found", [(b"content-type", b"text/plain; charset=utf-8")])

    async def _invoke_route(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        """``/v1.0/invoke/{appId}/method/{method...}``: the app id is everything up to the first
        ``/method/`` (so a full URL fits, plain or percent-encoded), the method everything after."""
        rest = path[len(_INVOKE) :] if path.startswith(_INVOKE) else ""
        index = rest.find(_METHOD)
        if index < 0:
            raise NoAppId()
        app_id = unquote(rest[:index]) if index > 0 else (_header_app_id(scope) or "")
        if not app_id:
            raise NoAppId()
        await self._invoke(scope, app_id, rest[index + len(_METHOD) :], receive, send)

    async def _invoke(self, scope: Scope, app_id: str, method: str, receive: Receive, send: Send) -> None:
        if not method:
            raise InvalidMethod()
        verb = scope["method"]
        if verb not in _VERBS:
            await respond(send, 405, b"Method Not Allowed", [(b"content-type", b"text/plain; charset=utf-8")])
            return
        target = await self._apps.resolve(app_id)
        self._apps.check_access(target, verb, method.split("?", 1)[0])
        body = await self._read_body(receive)
        answer = await proxy.invoke(
            self._apps.session, target, verb, method, scope.get("query_string", b""), scope["headers"], body
        )
        await respond(send, answer.status, answer.body, answer.headers)

    async def _read_body(self, receive: Receive) -> bytes:
        try:
            return await read_body(receive, self._limit)
        except ClientGone as exc:
            raise DaprError("client disconnected", status=400, error_code="ERR_MALFORMED_REQUEST") from exc
        except BodyLimitExceeded as exc:
            raise BodyTooLarge(self._limit) from exc


async def respond_dapr_error(send: Send, status: int, error_code: str, message: str) -> None:
    await respond(send, status, _encode({"errorCode": error_code, "message": message}), _JSON)


def render_dapr_error(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A refusal made before the app runs (connection limits), in daprd's shape."""
    code = "ERR_MALFORMED_REQUEST" if status < 500 else "ERR_INTERNAL"
    return _JSON, _encode({"errorCode": code, "message": message})


def _header_app_id(scope: Scope) -> str | None:
    """The ``dapr-app-id`` header, or Basic auth with user ``dapr-app-id`` (as daprd)."""
    for name, value in scope["headers"]:
        if name == b"dapr-app-id" and value:
            return str(value.decode("latin-1"))
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode("latin-1").partition(":")
            except (binascii.Error, ValueError):
                return None
            if user == "dapr-app-id" and password:
                return password
    return None
