"""Dapr apps and HTTP endpoints: the registry behind ``/v1.0/invoke`` and actor hosting.

An app is registered by app id with a plain-HTTP base URL (``POST /deployments`` with
``"kind": "dapr"``); a non-Dapr target is registered by name (``"kind": "http_endpoint"``), as a
Dapr ``HTTPEndpoint`` resource. Registrations are stored in META (``keys.dapr_app_key``) and
reloaded at start, like Restate deployments. The registry owns the outbound HTTP session that
the proxy (``engine.dapr.proxy``) and actor turns use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from engine.dapr.access import AccessControl, decide
from engine.dapr.own_listeners import OwnListeners
from engine.durations import parse_duration
from engine.errors import BadRequest, Conflict, DeploymentError, InvokeFailed, NotFound
from engine.records import now_ms
from engine.storage import keys
from engine.storage.metadata import Metadata

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

KINDS = ("dapr", "http_endpoint")


# -- registration records --------------------------------------------------------------------
class Retry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Dapr's constant retry policy, applied to transport failures only (as daprd)."""

    max_retries: int = 3
    duration: str | float = "100ms"


class Registration(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /deployments`` for a Dapr app or an HTTP endpoint."""

    uri: str
    app_id: str
    kind: str = "dapr"
    access: AccessControl | None = None
    retry: Retry | None = None
    additional_headers: dict[str, str] | None = None
    force: bool = False
    dry_run: bool = False


class DaprApp(msgspec.Struct, kw_only=True):
    """A stored registration (msgpack map: fields may be added with defaults)."""

    app_id: str
    uri: str
    kind: str
    access: AccessControl
    max_retries: int
    retry_interval: float  # seconds
    additional_headers: dict[str, str]
    created_at: int
    config: dict | None = None  # type: ignore[type-arg]  # the app's GET /dapr/config, when it serves one
    healthz: bool = False  # whether the app serves GET /healthz

    def same_settings(self, other: DaprApp) -> bool:
        return (self.uri, self.kind, self.access, self.max_retries, self.retry_interval, self.additional_headers) == (
            other.uri,
            other.kind,
            other.access,
            other.max_retries,
            other.retry_interval,
            other.additional_headers,
        )


_encode = msgspec.msgpack.Encoder().encode
_decode_app = msgspec.msgpack.Decoder(DaprApp).decode


@dataclass(frozen=True)
class Target:
    """Where an invocation goes: a registered app, or a URL given as the app id (no registration)."""

    app_id: str
    base_url: str
    app: DaprApp | None


# -- the registry ----------------------------------------------------------------------------
class DaprApps:
    def __init__(self, meta: Metadata, own_listeners: OwnListeners, *, allow_url_targets: bool = False) -> None:
        self._meta = meta
        self._store = meta.store
        self._own = own_listeners
        self._allow_url_targets = allow_url_targets
        self.apps: dict[str, DaprApp] = {}
        self._session: aiohttp.ClientSession | None = None

    def load(self) -> None:
        """(Re)read the registered apps from the stored metadata."""
        self.apps.clear()
        for _, value in self._store.scan(keys.META, keys.DAPR_APP_PREFIX):
            app = _decode_app(value)
            self.apps[app.app_id] = app

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use (start-up does not import aiohttp). aiohttp rather than httpx, as in
        the invoker (httpx's pool is slow with many connections). No auto-decompression and no
        automatic headers: bytes and headers pass through as the caller and the app wrote them."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    # -- registration ------------------------------------------------------------------------
    async def register(self, registration: Registration) -> tuple[DaprApp, bool]:
        """Probe (Dapr apps only) and store; returns the app and whether it is new. Re-registering
        the same settings answers the stored app (refreshing its ``/dapr/config``); different
        settings need ``force``."""
        app = _validated(registration)
        if (listener := await self._own.reached_by(app.uri)) is not None:
            raise BadRequest(
                f"Invalid uri '{app.uri}': it is quill's own {listener.face} listener ({listener.url}),"
                " which cannot be a Dapr app or HTTP endpoint"
            )
        if app.kind == "dapr":
            app.healthz, app.config = await self._probe(app)
        existing = self.apps.get(app.app_id)
        if existing is not None:
            if not existing.same_settings(app) and not registration.force:
                raise Conflict(
                    f"The Dapr app '{app.app_id}' is already registered with different settings."
                    " Register it again with 'force: true' to overwrite it."
                )
            app.created_at = existing.created_at
        if registration.dry_run:
            return app, existing is None
        self._meta.put(keys.dapr_app_key(app.app_id), _encode(app))
        await self._meta.commit()
        self.apps[app.app_id] = app
        return app, existing is None

    async def remove(self, app_id: str) -> None:
        if app_id not in self.apps:
            raise NotFound(f"Dapr app '{app_id}' not found")
        self._meta.delete(keys.dapr_app_key(app_id))
        await self._meta.commit()
        del self.apps[app_id]

    async def _probe(self, app: DaprApp) -> tuple[bool, dict | None]:  # type: ignore[type-arg]
        """``GET /healthz`` (optional: 404/405 mean the app has none) and ``GET /dapr/config``
        (optional: only apps hosting actors serve it)."""
        import aiohttp

        base = app.uri.rstrip("/")
        problem = f"Error when trying to reach the Dapr app '{app.app_id}' at '{app.uri}'"
        try:
            status, _ = await self._get(f"{base}/healthz", app.additional_headers)
            if status not in (404, 405) and not 200 <= status < 300:
                raise DeploymentError(f"{problem}: GET {base}/healthz answered {status}, the app is not healthy")
            config_status, body = await self._get(f"{base}/dapr/config", app.additional_headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeploymentError(f"{problem}: {describe(exc)}") from exc
        config = None
        if config_status == 200:
            try:
                config = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise DeploymentError(f"{problem}: GET {base}/dapr/config is not JSON: {exc}") from exc
            if not isinstance(config, dict):
                raise DeploymentError(f"{problem}: GET {base}/dapr/config is not a JSON object")
        elif config_status != 404:
            log.warning("Dapr app %s: GET /dapr/config answered %d; no actor configuration", app.app_id, config_status)
        return 200 <= status < 300, config

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=10.0)
        async with self.session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as response:
            return response.status, await response.read()

    # -- invocation --------------------------------------------------------------------------
    async def resolve(self, app_id: str) -> Target:
        """A registered app id or endpoint name (``id.namespace`` tolerated: quill has one
        namespace), or, when the operator allows URL targets, a full ``http(s)://`` URL that is
        not one of quill's own listeners. Refusals are 403, as daprd refuses what its access
        policy forbids: the request is well formed, the target is not allowed."""
        if app_id.startswith(("http://", "https://")):
            if not self._allow_url_targets:
                raise InvokeFailed(
                    app_id,
                    "invoking a URL is disabled: register the app or HTTP endpoint (POST /deployments with"
                    ' "kind": "dapr" or "http_endpoint") and call it by name, or start quill with'
                    " --dapr-allow-url-targets",
                    status=403,
                )
            if (listener := await self._own.reached_by(app_id)) is not None:
                raise InvokeFailed(
                    app_id, f"the target is quill's own {listener.face} listener ({listener.url})", status=403
                )
            return Target(app_id, app_id.rstrip("/"), None)
        app = self.apps.get(app_id)
        if app is None and "." in app_id:
            app = self.apps.get(app_id.split(".", 1)[0])
        if app is None:
            raise InvokeFailed(
                app_id, f'app id \'{app_id}\' is not registered with quill (POST /deployments with "kind": "dapr")'
            )
        return Target(app.app_id, app.uri.rstrip("/"), app)

    def check_access(self, target: Target, verb: str, method: str) -> None:
        """403 when the app's access policy denies ``verb /method``."""
        if target.app is None:
            return
        action, operation = decide(target.app.access, verb, method)
        if action != "allow":
            raise InvokeFailed(
                target.app_id,
                f"access control policy has denied access to id: {target.app_id} operation: {operation} verb: {verb}",
                status=403,
            )


# -- helpers ---------------------------------------------------------------------------------
def _validated(registration: Registration) -> DaprApp:
    app_id, uri = registration.app_id, registration.uri
    if registration.kind not in KINDS:
        raise BadRequest(f"Invalid kind '{registration.kind}': expected one of {', '.join(KINDS)}")
    if not uri.startswith(("http://", "https://")):
        raise BadRequest(f"Invalid uri '{uri}': expected an http:// or https:// URL")
    if not app_id or any(c in app_id for c in "/?# \t") or app_id.startswith(("http:", "https:")):
        raise BadRequest(f"Invalid app_id '{app_id}': expected a name without '/', '?', '#' or spaces")
    if registration.kind == "dapr" and "." in app_id:
        # As daprd: in "a.b" the part after the dot is the namespace.
        raise BadRequest(f"Invalid app_id '{app_id}': a Dapr app id cannot contain dots")
    access = registration.access or AccessControl()
    for action in (access.default_action, *(op.action for op in access.operations)):
        if action not in ("allow", "deny"):
            raise BadRequest(f"Invalid access action '{action}': expected allow or deny")
    retry = registration.retry or Retry()
    if retry.max_retries < 0:
        raise BadRequest("Invalid retry.maxRetries: must be 0 or more")
    try:
        interval = parse_duration(retry.duration)
    except ValueError as exc:
        raise BadRequest(f"Invalid retry.duration: {exc}") from exc
    return DaprApp(
        app_id=app_id,
        uri=uri,
        kind=registration.kind,
        access=access,
        max_retries=retry.max_retries,
        retry_interval=interval,
        additional_headers=dict(registration.additional_headers or {}),
        created_at=now_ms(),
    )


def describe(exc: BaseException) -> str:
    """An exception as one line: its type, and its text when it has one."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
