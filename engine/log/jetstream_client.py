"""The NATS connection of a cluster node: settings, the version gate, and the retry policy.

A node connects once to any of the cluster's servers and reconnects forever (a node outlives any
one server); every server it lands on is checked (:mod:`engine.log.version`), and a refused one
closes the connection rather than let a write reach it. Requests whose answer is lost are retried
with backoff within one deadline, long enough to ride out a JetStream leader election (4-9 s).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX

from engine.errors import LogUnavailable, UnsupportedServer
from engine.log.version import check_max_payload, check_version, without_jetstream

log = logging.getLogger(__name__)

T = TypeVar("T")

WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF
MESSAGE_NOT_FOUND = 10037
JETSTREAM_DISABLED = (10039, 10076)  # JSNotEnabledForAccountErr, JSNotEnabledErr
HEADROOM = 4096  # headers and protocol framing around a record of max_record_bytes

# Errors after which the outcome of a request is unknown but a retry may succeed: a lost answer,
# a server that went away, a stream without a leader while NATS re-elects one.
TRANSIENT: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)


@dataclass(frozen=True, slots=True)
class JetStreamSettings:
    urls: tuple[str, ...]
    node: str
    replicas: int = 3
    max_record_bytes: int = 8 * 1024 * 1024 - HEADROOM  # fits servers with `max_payload: 8MB` (NATS' ceiling)
    duplicate_window: float = 120.0  # seconds a msg id is remembered: far above any retry
    attempt_timeout: float = 1.0  # one request (p99 ~10 ms): how long the death of our server stalls us
    deadline: float = 30.0  # one operation, all attempts: then LogUnavailable
    lease_ttl: float = 5.0
    snapshots_kept: int = 2


async def retrying(what: str, operation: Callable[[], Awaitable[T]], deadline: float) -> T:
    """Run ``operation`` until it stops failing transiently, backing off, for at most ``deadline`` s."""
    give_up = time.monotonic() + deadline
    delay = 0.05
    while True:
        try:
            return await operation()
        except TRANSIENT as exc:
            if time.monotonic() + delay > give_up:
                raise LogUnavailable(f"{what}: no NATS answer within {deadline:g}s ({exc!r})") from exc
            log.debug("%s: %r, retrying in %.2fs", what, exc, delay)
        except nats.errors.ConnectionClosedError as exc:
            raise LogUnavailable(f"{what}: the NATS connection is closed") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def connect(settings: JetStreamSettings) -> tuple[Client, JetStreamContext]:
    """Connect, refusing a server that cannot carry cluster mode (:class:`UnsupportedServer`).

    Every configured server that answers is checked, not only the one connected to: any of them may
    come to lead a partition's stream. One that does not answer now is checked when reached later.
    """
    events = _ConnectionEvents(settings)
    client = events.client
    try:
        await asyncio.wait_for(
            client.connect(
                servers=list(settings.urls),
                name=settings.node,
                connect_timeout=2,
                reconnect_time_wait=0.25,  # type: ignore[arg-type]  # annotated int, used as seconds
                max_reconnect_attempts=-1,  # once up, a node outlives any one server (and all, for a while)
                ping_interval=2,
                max_outstanding_pings=2,
                pending_size=4 * settings.max_record_bytes,  # buffered while reconnecting
                error_cb=events.on_error,
                disconnected_cb=events.on_disconnected,
                reconnected_cb=events.on_reconnected,
            ),
            settings.deadline,  # but a node that never reached any server says so
        )
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        await client.close()
        raise LogUnavailable(f"cannot reach a NATS server at {', '.join(settings.urls)}: {exc!r}") from exc
    try:
        check_announced_version(client)
        await check_jetstream(client, settings)
        check_limits(client, settings)
        for url in settings.urls:
            if url != _url(client):
                await check_peer(url, settings)
    except BaseException:
        await client.close()
        raise
    return client, client.jetstream(timeout=settings.attempt_timeout)


class _ConnectionEvents:
    """The connection's callbacks: quiet logging while reconnecting, and the check of each new server."""

    def __init__(self, settings: JetStreamSettings) -> None:
        self.client = Client()
        self._settings = settings
        self._last_error = ""
        self._closing: asyncio.Task[None] | None = None

    async def on_error(self, exc: Exception) -> None:
        if repr(exc) != self._last_error:  # once per kind of failure, not once per reconnect attempt
            self._last_error = repr(exc)
            log.warning("NATS connection: %s", self._last_error)

    async def on_disconnected(self) -> None:
        if not self.client.is_closed:
            log.warning("NATS connection lost; reconnecting")

    async def on_reconnected(self) -> None:
        self._last_error = ""
        try:
            check_limits(self.client, self._settings)
        except UnsupportedServer as exc:
            log.error("%s; closing the NATS connection: cluster mode stops here", exc)
            # Not awaited here: this runs inside the client's reconnect task, which close() cancels.
            self._closing = asyncio.get_running_loop().create_task(self.client.close())
            return
        log.info("NATS connection back, to %s", _url(self.client))


def check_announced_version(client: Client) -> None:
    version = client.connected_server_version
    check_version(_url(client), f"{version.major}.{version.minor}.{version.patch}")


def check_limits(client: Client, settings: JetStreamSettings) -> None:
    """What the connected server announced: a version new enough and a max_payload that fits a record."""
    check_announced_version(client)
    check_max_payload(_url(client), client.max_payload, settings.max_record_bytes + HEADROOM)


async def check_jetstream(client: Client, settings: JetStreamSettings) -> None:
    url = _url(client)

    async def probe() -> bool:
        try:
            reply = await client.request(f"{DEFAULT_PREFIX}.INFO", b"", timeout=settings.attempt_timeout)
        except nats.errors.NoRespondersError:
            return False  # nobody serves the JetStream API: it is off on this server
        error = json.loads(reply.data).get("error")
        if error is None:
            return True
        if error.get("err_code") in JETSTREAM_DISABLED:
            return False
        raise nats.js.errors.APIError.from_error(error)  # a 503 while a meta leader is elected is retried

    if not await retrying(f"JetStream at {url}", probe, settings.deadline):
        raise without_jetstream(url)


async def check_peer(url: str, settings: JetStreamSettings) -> None:
    """Check another configured server over a short-lived connection of its own."""
    peer = Client()
    try:
        await peer.connect(servers=[url], allow_reconnect=False, connect_timeout=2, name=f"{settings.node}-check")
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        log.warning("NATS server %s does not answer (%r): it is checked when the connection reaches it", url, exc)
        return
    try:
        check_limits(peer, settings)
    finally:
        await peer.close()


def _url(client: Client) -> str:
    url = client.connected_url
    return url.geturl() if url is not None else "(not connected)"
