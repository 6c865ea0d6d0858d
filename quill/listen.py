"""Binding the listening sockets, first thing at start-up.

Before the data dir is opened and before the heavy imports (FastAPI, the engine), so a taken port
is one line and a non-zero exit within milliseconds, not a server that holds its data-dir lock.
Kept free of third-party imports for that reason.
"""

from __future__ import annotations

import errno
import socket

from engine.config import Listener
from engine.errors import StartupError


def bind(listener: Listener, *, shared: bool = False) -> socket.socket:
    """The listening socket of ``listener``; StartupError with one clear line when impossible.
    ``shared``: workers of one quill each bind it (SO_REUSEPORT), and the kernel spreads the
    connections over them."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    try:
        return socket.create_server((listener.host, listener.port), family=family, backlog=2048, reuse_port=shared)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise StartupError(f"cannot listen on {listener.url} ({listener.face}): {reason}") from exc


def bind_all(listeners: list[Listener], *, shared: bool = False) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            sockets.append(bind(listener, shared=shared))
    except StartupError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
