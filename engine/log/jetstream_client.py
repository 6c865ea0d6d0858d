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

    last_error = ""

    async def on_error(exc: Exception) -> None:
        nonlocal last_error
        if repr(exc) != last_error:  # once per kind of failure, not once per reconnect attempt
            last_error = repr(exc)
            log.warning("NATS connection: %s", last_error)

    async def on_disconnected() -> None:
        if not client.is_closed:
            log.warning("NATS connection lost; reconnecting")

    async def on_reconnected() -> None:
        try:
            await verify(client, settings)
        except UnsupportedServer as exc:
            log.error("%s; closing the NATS connection", exc)
            await client.close()
            return
        nonlocal last_error
        last_error = ""
        log.info("NATS connection back, to %s", _url(client))

    client = Client()
    connecting = client.connect(
        servers=list(settings.urls),
        name=settings.node,
        connect_timeout=2,
        reconnect_time_wait=0.25,  # type: ignore[arg-type]  # annotated int, used as seconds
        max_reconnect_attempts=-1,  # once up, a node outlives any one server (and all, for a while)
        ping_interval=2,
        max_outstanding_pings=2,
        pending_size=4 * settings.max_record_bytes,  # buffered while reconnecting
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    try:
        await asyncio.wait_for(connecting, settings.deadline)  # but a node that never reached one says so
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        await client.close()
        raise LogUnavailable(f"cannot reach a NATS server at {', '.join(settings.urls)}: {exc!r}") from exc
    js = client.jetstream(timeout=settings.attempt_timeout)
    try:
        await verify(client, settings)
    except BaseException:
        await client.close()
        raise
    return client, js


async def verify(client: Client, settings: JetStreamSettings) -> None:
    """Refuse the connected server unless it is new enough, takes our records and serves JetStream."""
    url = _url(client)
    version = client.connected_server_version
    check_version(url, f"{version.major}.{version.minor}.{version.patch}")

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
    check_max_payload(url, client.max_payload, settings.max_record_bytes + HEADROOM)


def _url(client: Client) -> str:
    url = client.connected_url
    return url.geturl() if url is not None else "(not connected)"
