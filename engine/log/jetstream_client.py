"""The NATS connection of a cluster node: settings, the version gate, and the retry policy.

A node connects once to any of the cluster's servers and reconnects forever (a node outlives any
one server); every server it lands on is checked (:mod:`engine.log.version`), and a refused one
closes the connection rather than let a write reach it. Requests whose answer is lost are retried
with backoff within one deadline, long enough to ride out a JetStream leader election (4-9 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from engine.errors import LogUnavailable, UnsupportedServer
from engine.log.version import check_version, without_jetstream

log = logging.getLogger(__name__)

T = TypeVar("T")

WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF
MESSAGE_NOT_FOUND = 10037

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
    max_record_bytes: int = 8 * 1024 * 1024  # the servers' max_payload must be at least this
    duplicate_window: float = 120.0  # seconds a msg id is remembered: far above any retry
    attempt_timeout: float = 2.0  # one request; an election takes 4-9 s, so several attempts
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
    """Connect, refusing a server that cannot carry cluster mode (:class:`UnsupportedServer`)."""

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection: %r", exc)

    async def on_disconnected() -> None:
        log.warning("NATS connection lost; reconnecting")

    async def on_reconnected() -> None:
        try:
            await verify(client, js, settings.deadline)
        except UnsupportedServer as exc:
            log.error("%s; closing the NATS connection", exc)
            await client.close()
            return
        log.info("NATS connection back, to %s", _url(client))

    try:
        client = await nats.connect(
            servers=list(settings.urls),
            name=settings.node,
            connect_timeout=2,
            reconnect_time_wait=0.25,
            max_reconnect_attempts=-1,  # a cluster node outlives any one server: never give up
            ping_interval=2,
            max_outstanding_pings=2,
            pending_size=4 * settings.max_record_bytes,  # buffered while reconnecting
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
        raise LogUnavailable(f"cannot reach a NATS server at {', '.join(settings.urls)}: {exc}") from exc
    js = client.jetstream(timeout=settings.attempt_timeout)
    try:
        await verify(client, js, settings.deadline)
    except BaseException:
        await client.close()
        raise
    return client, js


async def verify(client: Client, js: JetStreamContext, deadline: float) -> None:
    """Refuse the connected server unless it is new enough and serves JetStream to us."""
    url = _url(client)
    version = client.connected_server_version
    check_version(url, f"{version.major}.{version.minor}.{version.patch}")

    async def probe() -> bool:
        try:
            await js.account_info()
        except (nats.errors.NoRespondersError, nats.js.errors.NotFoundError):
            return False  # nobody serves $JS.API, or the account has no JetStream: definitive
        return True  # (a 503 while the meta leader is being elected is transient: retried)

    if not await retrying(f"JetStream at {url}", probe, deadline):
        raise without_jetstream(url)


def _url(client: Client) -> str:
    url = client.connected_url
    return url.geturl() if url is not None else "(not connected)"
