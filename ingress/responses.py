"""Building HTTP responses, and the one place errors become HTTP."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

import msgspec

from engine.errors import QuillError

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_json = msgspec.json.Encoder()
JSON = b"application/json"


async def respond(send: Send, status: int, body: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any, headers: Headers | None = None) -> None:
    await respond(send, status, _json.encode(payload), [(b"content-type", JSON), *(headers or [])])


def error_body(error: QuillError) -> bytes:
    return _json.encode({"code": error.code, "message": error.message, "source": error.source})


async def respond_error(send: Send, error: QuillError, headers: Headers | None = None) -> None:
    await respond(
        send,
        error.status,
        error_body(error),
        [(b"content-type", JSON), (b"x-restate-error-source", error.source.encode()), *(headers or [])],
    )
