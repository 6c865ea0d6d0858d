"""CORS on the Restate ingress, as the reference answers it (tower-http's mirroring ``CorsLayer``).

Every response carries ``access-control-allow-credentials: true`` and the ``vary`` line; a request
with an ``Origin`` gets that origin back in ``access-control-allow-origin``. A preflight
``OPTIONS``, on any path, is answered at once with the requested method and headers mirrored.

One addition (a deliberate deviation): responses to cross-origin requests also expose
``x-restate-id`` and ``idempotency-expires``. Browsers hide every response header that is not
exposed, and the invocation id is what a browser app needs to attach to, fetch the output of, or
cancel the invocation it just started; clients that are not browsers ignore the header.
"""

from __future__ import annotations

from typing import Any

from ingress.responses import Headers, Send

_VARY = (b"vary", b"origin, access-control-request-method, access-control-request-headers")
_CREDENTIALS = (b"access-control-allow-credentials", b"true")
_EXPOSE = (b"access-control-expose-headers", b"x-restate-id, idempotency-expires")
_MIRRORED = {
    b"access-control-request-method": b"access-control-allow-methods",
    b"access-control-request-headers": b"access-control-allow-headers",
}


def cors_headers(scope: dict[str, Any]) -> tuple[Headers, bool]:
    """The CORS headers of the response to this request, and whether it is a preflight."""
    headers: Headers = [_VARY, _CREDENTIALS]
    preflight = scope["method"] == "OPTIONS"
    origin = False
    for name, value in scope["headers"]:
        if name == b"origin":
            headers.append((b"access-control-allow-origin", value))
            origin = True
        elif preflight and name in _MIRRORED:
            headers.append((_MIRRORED[name], value))
    if origin and not preflight:
        headers.append(_EXPOSE)
    return headers, preflight


def with_headers(send: Send, extra: Headers) -> Send:
    """``send``, adding ``extra`` to the response's headers."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], *extra]}
        await send(message)

    return sending
