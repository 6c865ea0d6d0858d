"""Deployments and the services they serve: registration (discovery) and lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from engine.config import Config
from engine.errors import BadRequest, BreakingChange, DeploymentError, NotFound
from engine.ids import new_deployment_id
from engine.invoker import http2
from engine.invoker.http2 import Http2Pool
from engine.invoker.identity import DISCOVER_PATH, RequestSigner
from engine.protocol.codec import DEFAULT_MAX_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from engine.records import Deployment, now_ms
from engine.schema.manifest import MANIFEST_ACCEPT, EndpointManifest, HandlerManifest, ServiceManifest, decode_manifest
from engine.schema.settings import ServiceOverrides, Settings, effective
from engine.storage import keys
from engine.storage.metadata import Metadata

if TYPE_CHECKING:
    import httpx

_encode = msgspec.msgpack.Encoder().encode
_decode_deployment = msgspec.msgpack.Decoder(Deployment).decode


_decode_overrides = msgspec.msgpack.Decoder(ServiceOverrides).decode


@dataclass(frozen=True)
class ServiceEntry:
    manifest: ServiceManifest
    deployment_id: str
    revision: int


class Schema:
    def __init__(
        self, meta: Metadata, config: Config, http2: Http2Pool | None = None, signer: RequestSigner | None = None
    ) -> None:
        self._meta = meta
        self._store = meta.store
        self._http2 = http2
        self._signer = signer
        self._config = config
        self._cluster_name = config.cluster_name
        self._max_version = MAX_PROTOCOL_VERSION if config.enable_protocol_v7 else DEFAULT_MAX_PROTOCOL_VERSION
        self.deployments: dict[str, Deployment] = {}
        self.services: dict[str, ServiceEntry] = {}
        self.overrides: dict[str, ServiceOverrides] = {}
        # Effective settings by (service, handler); handler None: the service's own.
        self._settings: dict[tuple[str, str | None], Settings] = {}

    def load(self) -> None:
        """(Re)build the registry from the stored metadata."""
        self.deployments.clear()
        self.services.clear()
        self.overrides.clear()
        found = [_decode_deployment(v) for _, v in self._store.scan(keys.META, keys.DEPLOYMENT_PREFIX)]
        for deployment in sorted(found, key=lambda d: d.created_at):
            self._index(deployment)
        for key, value in self._store.scan(keys.META, keys.SERVICE_CONFIG_PREFIX):
            self.overrides[key[len(keys.SERVICE_CONFIG_PREFIX) :].decode()] = _decode_overrides(value)
        self._resettle()

    def settings(self, service: str, handler: str | None = None) -> Settings | None:
        """The effective settings of a handler (or, without one, of the service); None if unknown."""
        return self._settings.get((service, handler))

    def effective(self, manifest: ServiceManifest, handler: HandlerManifest | None = None) -> Settings:
        """Settings ``manifest`` has (or would have, if registered) with today's overrides."""
        return effective(manifest, handler, self.overrides.get(manifest.name), self._config)

    def _resettle(self) -> None:
        """Recompute every effective setting: after any change to deployments or overrides."""
        settings: dict[tuple[str, str | None], Settings] = {}
        for name, entry in self.services.items():
            override = self.overrides.get(name)
            settings[(name, None)] = effective(entry.manifest, None, override, self._config)
            for handler in entry.manifest.handlers:
                settings[(name, handler.name)] = effective(entry.manifest, handler, override, self._config)
        self._settings = settings

    # -- lookup ------------------------------------------------------------------------------
    def resolve(self, service: str, handler: str) -> tuple[ServiceEntry, HandlerManifest]:
        entry = self.services.get(service)
        if entry is None:
            raise NotFound(f"service '{service}' not found, make sure to register the service before calling it.")
        found = entry.manifest.handler(handler)
        if found is None:
            raise NotFound(
                f"the service '{service}' exists, but the handler '{handler}' was not found,"
                " check that the handler exists in the latest registered service version."
            )
        if not self.is_public(service, handler):
            # Restate's ingress refuses private services (and private handlers) with 400.
            raise BadRequest("the invoked service is not public")
        return entry, found

    def is_public(self, service: str, handler: str | None = None) -> bool:
        """Callable from the ingress: the operator's ``public`` wins over the manifest's
        ``ingressPrivate``; a private handler stays private in a public service."""
        found = self._settings.get((service, handler))
        return found is not None and found.public

    def deployment_for(self, service: str, pinned: str | None) -> Deployment | None:
        if pinned is not None and pinned in self.deployments:
            return self.deployments[pinned]
        entry = self.services.get(service)
        return None if entry is None else self.deployments.get(entry.deployment_id)

    # -- registration ------------------------------------------------------------------------
    async def register(
        self,
        client: httpx.AsyncClient,
        uri: str,
        *,
        use_http_11: bool = False,
        additional_headers: dict[str, str] | None = None,
        force: bool = False,
        breaking: bool = False,
        dry_run: bool = False,
    ) -> tuple[Deployment, bool]:
        """Discover ``uri`` and store it; returns the deployment and whether it is new.

        As Restate: the same URI again answers the stored deployment unchanged unless ``force``
        replaces it in place (same id, every service a new revision); a service may not change its
        type (Service, VirtualObject, Workflow) across revisions unless ``force`` or ``breaking``.
        """
        uri = normalized_uri(uri)
        headers = dict(additional_headers or {})
        manifest, raw, sdk_version = await self._discover(client, uri, headers, use_http_11)
        version = _negotiate(manifest, self._max_version)
        existing = next((d for d in self.deployments.values() if normalized_uri(d.uri) == uri), None)
        if existing is not None and not force:
            return existing, False
        if not (force or breaking):
            for service in manifest.services:
                current = self.services.get(service.name)
                if current is not None and current.manifest.ty != service.ty:
                    raise BreakingChange(service.name)
        deployment = Deployment(
            id=existing.id if existing is not None else new_deployment_id(),
            created_at=existing.created_at if existing is not None else now_ms(),
            revisions={s.name: self._next_revision(s.name) for s in manifest.services},
            **_discovered(uri, use_http_11, headers, manifest, raw, version, sdk_version),
        )
        if dry_run:
            return deployment, existing is None
        self._meta.put(keys.deployment_key(deployment.id), _encode(deployment))
        await self._meta.commit()
        if existing is None:
            self._index(deployment)
        else:
            self._reindex([deployment if d.id == deployment.id else d for d in self.deployments.values()])
        self._resettle()
        return deployment, existing is None

    def _next_revision(self, service: str) -> int:
        current = self.services.get(service)
        return 1 if current is None else current.revision + 1

    async def _discover(
        self, client: httpx.AsyncClient, uri: str, headers: dict[str, str], use_http_11: bool
    ) -> tuple[EndpointManifest, dict, str | None]:  # type: ignore[type-arg]
        url = uri.rstrip("/") + "/discover"
        request_headers = {"accept": MANIFEST_ACCEPT, "x-restate-cluster-name": self._cluster_name, **headers}
        if self._signer is not None:
            request_headers.update(self._signer.headers(DISCOVER_PATH))
        problem = f"Error when trying to discover the service endpoint '{uri}'"
        if use_http_11 or self._http2 is None:
            import httpx  # the discovery client's errors; httpx is imported with the client

            try:
                response = await client.get(url, headers=request_headers)
            except httpx.HTTPError as exc:
                raise DeploymentError(f"{problem}: {exc!r}") from exc
            status, content = response.status_code, response.content
            response_headers: dict[str, str] = dict(response.headers)
        else:
            # Like Restate, deployments speak HTTP/2 (h2c, prior knowledge) unless registered with use_http_11.
            try:
                status, response_headers, content = await http2.request(
                    self._http2, url, list(request_headers.items()), b"", method="GET"
                )
            except http2.Http2Error as exc:
                raise DeploymentError(
                    f"{problem}: {exc}. The server possibly supports only HTTP1.1, register it with use_http_11: true"
                ) from exc
        if status == 401:
            # What an SDK checking request identity answers to a request it cannot verify.
            hint = (
                "check that its identity_keys include this server's key"
                if self._signer is not None
                else "if it checks request identity, configure request_identity_private_key_pem_file"
            )
            raise DeploymentError(f"{problem}: the deployment answered 401 Unauthorized to {url}; {hint}")
        if status != 200:
            raise DeploymentError(f"{problem}: bad status code {status} from {url}: {content[:200]!r}")
        try:
            manifest = decode_manifest(content)
            raw = msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise DeploymentError(f"Cannot decode the discovery manifest of '{uri}': {exc}") from exc
        return manifest, raw, response_headers.get("x-restate-server")

    def _index(self, deployment: Deployment) -> None:
        self.deployments[deployment.id] = deployment
        manifest = msgspec.convert(deployment.manifest, EndpointManifest)
        for service in manifest.services:
            previous = self.services.get(service.name)
            revision = deployment.revisions.get(service.name) or (
                1 if previous is None else previous.revision + (previous.deployment_id != deployment.id)
            )
            if previous is None or revision >= previous.revision:
                # The latest revision serves; a forced re-registration in place can make an
                # earlier deployment the latest.
                self.services[service.name] = ServiceEntry(service, deployment.id, revision)

    # -- operator changes (admin API) --------------------------------------------------------
    async def set_overrides(self, service: str, overrides: ServiceOverrides) -> None:
        """Merge ``overrides`` (None fields keep the current value) into the stored ones."""
        current = self.overrides.get(service, ServiceOverrides())
        merged = msgspec.structs.replace(
            current, **{f: v for f in ServiceOverrides.__struct_fields__ if (v := getattr(overrides, f)) is not None}
        )
        self._meta.put(keys.service_config_key(service), _encode(merged))
        await self._meta.commit()
        self.overrides[service] = merged
        self._resettle()

    async def remove_deployment(self, deployment_id: str) -> None:
        """Forget a deployment; its services go too, unless an older deployment still serves them
        (then that one serves them again, exactly as a restart would rebuild the registry)."""
        if deployment_id not in self.deployments:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        self._meta.delete(keys.deployment_key(deployment_id))
        remaining = [d for d in self.deployments.values() if d.id != deployment_id]
        self._reindex(remaining)
        for service in [s for s in self.overrides if s not in self.services]:
            self._meta.delete(keys.service_config_key(service))
            del self.overrides[service]
        self._resettle()
        await self._meta.commit()

    async def update_deployment(
        self,
        client: httpx.AsyncClient,
        deployment_id: str,
        *,
        uri: str | None = None,
        use_http_11: bool | None = None,
        additional_headers: dict[str, str] | None = None,
        dry_run: bool = False,
    ) -> Deployment:
        """Re-discover a deployment (at a new ``uri``, with new headers) and replace it in place:
        same id, so invocations pinned to it continue against the new address."""
        existing = self.deployments.get(deployment_id)
        if existing is None:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        target = normalized_uri(uri) if uri is not None else existing.uri
        headers = dict(additional_headers) if additional_headers is not None else dict(existing.additional_headers)
        http_11 = existing.use_http_11 if use_http_11 is None else use_http_11
        manifest, raw, sdk_version = await self._discover(client, target, headers, http_11)
        version = _negotiate(manifest, self._max_version)
        old = {s.name for s in msgspec.convert(existing.manifest, EndpointManifest).services}
        new = {s.name for s in manifest.services}
        if old - new:
            raise BadRequest(
                f"The deployment at '{target}' does not serve {sorted(old - new)} any more;"
                " an update must keep the services of the deployment."
            )
        deployment = msgspec.structs.replace(
            existing, **_discovered(target, http_11, headers, manifest, raw, version, sdk_version)
        )
        if dry_run:
            return deployment
        self._meta.put(keys.deployment_key(deployment.id), _encode(deployment))
        await self._meta.commit()
        self._reindex([deployment if d.id == deployment.id else d for d in self.deployments.values()])
        self._resettle()
        return deployment

    def _reindex(self, deployments: list[Deployment]) -> None:
        # In place: the invoker and the ingress hold these dicts through the Schema only, but
        # clearing keeps any other holder consistent too.
        self.deployments.clear()
        self.services.clear()
        for deployment in sorted(deployments, key=lambda d: d.created_at):
            self._index(deployment)


def normalized_uri(uri: str) -> str:
    """A deployment URI as Restate keeps it: with a trailing slash, so both spellings are one."""
    return uri if uri.endswith("/") else uri + "/"


def _discovered(
    uri: str,
    use_http_11: bool,
    headers: dict[str, str],
    manifest: EndpointManifest,
    raw: dict,  # type: ignore[type-arg]
    version: int,
    sdk_version: str | None,
) -> dict[str, Any]:
    """The fields of a deployment that discovery determines."""
    return {
        "uri": uri,
        "use_http_11": use_http_11,
        "additional_headers": headers,
        "protocol_mode": manifest.protocol_mode or "BIDI_STREAM",
        "min_protocol_version": manifest.min_protocol_version,
        "max_protocol_version": manifest.max_protocol_version,
        "protocol_version": version,
        "manifest": raw,
        "sdk_version": sdk_version,
    }


def _negotiate(manifest: EndpointManifest, max_version: int) -> int:
    low, high = manifest.min_protocol_version, manifest.max_protocol_version
    if low > high:
        raise DeploymentError(f"Bad manifest: minProtocolVersion {low} is greater than maxProtocolVersion {high}")
    if high < MIN_PROTOCOL_VERSION or low > max_version:
        raise DeploymentError(
            f"The deployment supports service protocol versions [{low}, {high}], quill supports"
            f" [{MIN_PROTOCOL_VERSION}, {max_version}]. Use an SDK that supports them."
        )
    return min(high, max_version)
