"""Connection hygiene for the three listeners: limits uvicorn does not enforce by itself.

uvicorn's httptools protocol, with what an exposed server needs on top (measured problems in
issue 17: 1 100 idle connections exhausted a 1 024 file-descriptor limit with nothing logged,
2 000 headers of 8 KB were accepted and journaled, a POST with ``Upgrade: websocket`` got no
answer at all):

- **Header limits** as Restate's HTTP server (hyper) has them: at most 100 header fields and
  about 408 KiB of request head; past either, 431 in the face's error shape and the connection
  closes, before the application (and so the log) sees anything. The raw bytes of an unfinished
  head are counted too, so a huge header cannot be buffered before it is refused.
- **Timeouts**: a connection that sends nothing (fresh, or idle between requests) is closed after
  ``idle_timeout``; a request head that takes longer than ``header_read_timeout`` to arrive
  (slowloris) is answered 408 and closed.
- **A connection cap** shared by all listeners, sized to the file-descriptor limit: past it a new
  connection gets a 503 at once and is closed, and the log says so once per episode. A refused
  connection lingers (half-closed) for a second so its client can read the answer, but only a
  few at a time: a flood of refused connections must not use up the descriptors it protects
  (libuv then accepts and drops connections silently, which is what issue 17 saw).
- **Draining**: once shutdown started, new requests get a 503 with ``connection: close``.
- **Upgrade requests** (``Connection: Upgrade``, ``Upgrade: websocket``) are served as plain HTTP,
  as Restate serves them; quill speaks no WebSocket (uvicorn runs with ``ws="none"``). httptools
  skips the body of a request it takes for an upgrade, so the ``upgrade`` token of the Connection
  header is replaced by ``close`` (same length) before parsing; the connection then closes after
  the answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("quill")

_UPGRADE_TOKEN = re.compile(rb"(?im)^(connection:[^\r\n]*?)\bupgrade\b")

# (status, message) -> (headers, body): each face answers in its own error shape.
Renderer = Callable[[int, str], tuple[list[tuple[bytes, bytes]], bytes]]


@dataclass(frozen=True)
class Limits:
    max_headers: int = 100
    max_header_size: int = 8192 + 4096 * 100  # hyper's default read buffer: 408 KiB
    header_read_timeout: float = 30.0
    idle_timeout: float = 30.0


@dataclass
class ConnectionGuard:
    """What all listeners share: the connection count against the cap, and the drain flag."""

    cap: int
    open: int = 0
    refused: int = 0  # since the cap was last hit
    lingering: int = 0  # refused connections waiting for their client to read the answer
    draining: bool = False
    _at_cap: bool = field(default=False, repr=False)

    def admit(self) -> bool:
        if self.open >= self.cap:
            self.refused += 1
            if not self._at_cap:
                self._at_cap = True
                log.warning(
                    "connection limit reached: %d connections open; refusing new connections with 503"
                    " until some close (raise max_connections or the file-descriptor limit)",
                    self.open,
                )
            return False
        if self._at_cap:
            self._at_cap = False
            log.warning("accepting connections again; %d were refused while at the limit", self.refused)
            self.refused = 0
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def may_linger(self) -> bool:
        return self.lingering < max(8, self.cap // 8)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; one instance per connection."""

    def __init__(self, *args: Any, guard: ConnectionGuard, limits: Limits, render: Renderer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._limits = limits
        self._render = render
        self._admitted = False
        self._lingering = False
        self._refused = False  # answered and closing: ignore whatever else arrives
        self._awaiting_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._header_size = 0
        self._header_timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._guard.admit():
            self._refuse(503, "too many open connections, retry later")
            return
        self._admitted = True
        # uvicorn arms its keep-alive timer only after a response: a connection that never sends
        # a request would otherwise stay open (and hold a file descriptor) forever.
        self.timeout_keep_alive_task = self.loop.call_later(self._limits.idle_timeout, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self._guard.release()
        if self._lingering:
            self._lingering = False
            self._guard.lingering -= 1
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self._limits.header_read_timeout, self._head_too_slow)
            if b"pgrade" in data:
                data = _UPGRADE_TOKEN.sub(rb"\1close  ", data)
        super().data_received(data)
        if not self._refused and self._awaiting_head and self._head_bytes > self._limits.max_header_size:
            self._refuse(431, f"request header fields too large: more than {self._limits.max_header_size} bytes")

    # -- parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = self._header_size = 0

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value) + 4
        if self._header_count <= self._limits.max_headers and self._header_size <= self._limits.max_header_size:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._cancel_header_timer()
        if self._header_count > self._limits.max_headers:
            self._refuse(431, f"request header fields too large: more than {self._limits.max_headers} headers")
            return
        if self._header_size > self._limits.max_header_size:
            self._refuse(431, f"request header fields too large: more than {self._limits.max_header_size} bytes")
            return
        if self._guard.draining:
            self._refuse(503, "quill is shutting down, retry on another instance or after the restart")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_head = True
        super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        pass  # an upgrade request is a plain HTTP request here, nothing to warn about

    # -- refusals --------------------------------------------------------------------------
    def _head_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_head and not self._refused:
            self._refuse(408, f"request headers not received within {self._limits.header_read_timeout:g}s")

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close, whatever the parser is doing; the app never runs."""
        self._refused = True
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        headers, body = self._render(status, message)
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        if self._admitted or self._guard.may_linger():
            # Half-close, then close shortly: closing at once with unread request bytes would
            # reset the connection, and the client might lose the answer.
            if not self._admitted:
                self._lingering = True
                self._guard.lingering += 1
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(1.0, self.transport.close)
        else:
            self.transport.close()
