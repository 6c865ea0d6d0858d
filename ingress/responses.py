"""Reading request bodies and building HTTP responses; the one place errors become HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from engine import QuillError

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


def render_ingress_error(status: int, message: str) -> tuple[Headers, bytes]:
    """A refusal made before the app runs (connection limits), in Restate's ingress shape."""
    error = QuillError(message, status=status)
    return [(b"content-type", JSON), (b"x-restate-error-source", error.source.encode())], error_body(error)


async def respond_error(send: Send, error: QuillError, headers: Headers | None = None) -> None:
    await respond(
        send,
        error.status,
        error_body(error),
        [(b"content-type", JSON), (b"x-restate-error-source", error.source.encode()), *(headers or [])],
    )


class BodyLimitExceeded(Exception):
    """The request body grew past the configured limit."""


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bytes:
    """The whole request body; each face maps the two failures to its own error shape."""
    chunks = await read_chunks(receive, limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_chunks(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> list[bytes]:
    """The request body as the server delivered it. An invocation's body goes into its journaled
    input in one join: joining it here first would keep a second copy alive meanwhile."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyLimitExceeded()
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks
