"""Forwarding a Dapr service invocation the way ``daprd`` does.

The caller's method, headers, query and body go to ``{base}/{method}``, and the app's status,
headers and body come back unchanged. Not journaled: ``daprd`` proxies synchronously, and so do we.
Transport failures are retried by the app's policy; an answer from the app, whatever its status,
is never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yarl import URL

from engine.dapr.apps import Target, describe
from engine.errors import InvokeFailed

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded; host and
# content-length are rewritten for the next hop; dapr-app-id only routes the request to us.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {"dapr-app-id", "dapr-api-token"}
# uvicorn writes its own date and server headers: passing the app's too would duplicate them.
_NOT_RETURNED = _HOP_BY_HOP | {"date", "server"}


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def invoke(
    session: aiohttp.ClientSession,
    target: Target,
    verb: str,
    raw_method: str,
    query: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
) -> UpstreamResponse:
    """Forward one call; transport failures are retried by the app's policy."""
    import aiohttp  # the session made it: only the name is bound here

    url = f"{target.base_url}/{raw_method}" + (f"?{query.decode('latin-1')}" if query else "")
    forwarded = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.decode("latin-1").lower() not in _NOT_FORWARDED
    ]
    if target.app is not None:
        forwarded.extend(target.app.additional_headers.items())
    forwarded.append(("dapr-callee-app-id", target.app_id))
    retries, interval = (target.app.max_retries, target.app.retry_interval) if target.app is not None else (3, 0.1)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _send(session, verb, url, forwarded, body)
        except aiohttp.ClientConnectionError as exc:
            if attempt > retries:
                suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise InvokeFailed(target.app_id, f"{verb} {url}: {describe(exc)}{suffix}") from exc
            log.debug("Dapr invoke %s %s failed (%s), retry %d/%d", verb, url, exc, attempt, retries)
            await asyncio.sleep(interval)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise InvokeFailed(target.app_id, f"{verb} {url}: {describe(exc)}") from exc


async def _send(
    session: aiohttp.ClientSession, verb: str, url: str, headers: list[tuple[str, str]], body: bytes
) -> UpstreamResponse:
    # encoded=True: the path and query go out byte for byte as the caller wrote them.
    async with session.request(
        verb,
        URL(url, encoded=True),
        headers=headers,
        data=body if body or verb not in ("GET", "HEAD") else None,
        allow_redirects=False,
    ) as response:
        content = await response.read()
        returned = [
            (name, value) for name, value in response.raw_headers if name.decode("latin-1").lower() not in _NOT_RETURNED
        ]
        return UpstreamResponse(response.status, returned, content)
