"""Deployments and the services they serve: registration (discovery) and lookup."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import msgspec

from engine import keys
from engine.errors import Conflict, DeploymentError, NotFound
from engine.ids import new_deployment_id
from engine.manifest import MANIFEST_ACCEPT, EndpointManifest, HandlerManifest, ServiceManifest, decode_manifest
from engine.protocol.codec import DEFAULT_MAX_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from engine.records import Deployment, now_ms
from engine.store import Store

_encode = msgspec.msgpack.Encoder().encode
_decode_deployment = msgspec.msgpack.Decoder(Deployment).decode


@dataclass(frozen=True)
class ServiceEntry:
    manifest: ServiceManifest
    deployment_id: str
    revision: int


class Schema:
    def __init__(self, store: Store, cluster_name: str, enable_protocol_v7: bool = False) -> None:
        self._store = store
        self._cluster_name = cluster_name
        self._max_version = MAX_PROTOCOL_VERSION if enable_protocol_v7 else DEFAULT_MAX_PROTOCOL_VERSION
        self.deployments: dict[str, Deployment] = {}
        self.services: dict[str, ServiceEntry] = {}

    def load(self) -> None:
        found = [_decode_deployment(v) for _, v in self._store.scan(keys.META, keys.DEPLOYMENT_PREFIX)]
        for deployment in sorted(found, key=lambda d: d.created_at):
            self._index(deployment)

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
        return entry, found

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
        dry_run: bool = False,
    ) -> tuple[Deployment, bool]:
        """Discover ``uri`` and store it; returns the deployment and whether it is new."""
        headers = dict(additional_headers or {})
        manifest, raw, sdk_version = await self._discover(client, uri, headers)
        version = _negotiate(manifest, self._max_version)
        existing = next((d for d in self.deployments.values() if d.uri == uri), None)
        if existing is not None and existing.manifest == raw and not force:
            return existing, False
        if existing is not None and not force:
            raise Conflict(
                f"The deployment at '{uri}' is already registered with different services."
                " Register it again with 'force: true' to overwrite it."
            )
        deployment = Deployment(
            id=existing.id if existing is not None else new_deployment_id(),
            uri=uri,
            use_http_11=use_http_11,
            additional_headers=headers,
            protocol_mode=manifest.protocol_mode or "BIDI_STREAM",
            min_protocol_version=manifest.min_protocol_version,
            max_protocol_version=manifest.max_protocol_version,
            protocol_version=version,
            manifest=raw,
            created_at=now_ms(),
            sdk_version=sdk_version,
        )
        if dry_run:
            return deployment, existing is None
        self._store.put(keys.META, keys.deployment_key(deployment.id), _encode(deployment))
        await self._store.flush()
        self._index(deployment)
        return deployment, existing is None

    async def _discover(
        self, client: httpx.AsyncClient, uri: str, headers: dict[str, str]
    ) -> tuple[EndpointManifest, dict, str | None]:  # type: ignore[type-arg]
        url = uri.rstrip("/") + "/discover"
        request_headers = {"accept": MANIFEST_ACCEPT, "x-restate-cluster-name": self._cluster_name, **headers}
        try:
            response = await client.get(url, headers=request_headers)
        except httpx.HTTPError as exc:
            raise DeploymentError(f"Error when trying to discover the service endpoint '{uri}': {exc!r}") from exc
        if response.status_code != 200:
            raise DeploymentError(
                f"Error when trying to discover the service endpoint '{uri}':"
                f" bad status code {response.status_code} from {url}: {response.text[:200]}"
            )
        try:
            manifest = decode_manifest(response.content)
            raw = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise DeploymentError(f"Cannot decode the discovery manifest of '{uri}': {exc}") from exc
        return manifest, raw, response.headers.get("x-restate-server")

    def _index(self, deployment: Deployment) -> None:
        self.deployments[deployment.id] = deployment
        manifest = msgspec.convert(deployment.manifest, EndpointManifest)
        for service in manifest.services:
            previous = self.services.get(service.name)
            revision = 1 if previous is None else previous.revision + (previous.deployment_id != deployment.id)
            self.services[service.name] = ServiceEntry(service, deployment.id, revision)


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
