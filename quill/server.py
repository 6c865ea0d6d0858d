"""Runs the engine and the HTTP faces (ingress, admin, optional Dapr port) on one asyncio loop.

Start-up binds every listening socket before the data dir is opened, so a taken port is one line
and a non-zero exit, not a server that holds its data-dir lock and waits forever. Shutdown
(SIGTERM or SIGINT) drains: the listeners close, attempts in flight finish their current step
within ``shutdown_timeout``, callers still waiting on ``/call`` or ``/attach`` get a retryable
503 carrying ``x-restate-id``, and only then does the engine stop. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from admin.errors import render_admin_error
from engine import Config, Engine
from engine.config import Face, Listener
from engine.workers.layout import WorkerPlan
from ingress import IngressApp, render_ingress_error
from ingress.dapr import DaprIngress, render_dapr_error
from quill.connections import ConnectionGuard, GuardedProtocol, Limits, Renderer
from quill.listen import bind_all
from quill.resources import connection_cap, raise_file_limit

log = logging.getLogger("quill")

_RENDERERS: dict[Face, Renderer] = {
    Face.INGRESS: render_ingress_error,
    Face.ADMIN: render_admin_error,
    Face.DAPR: render_dapr_error,
}


class _BuiltOnFirstRequest:
    """The admin API's FastAPI app, imported and built on its first request (a few hundred ms
    once): FastAPI is most of quill's import time, and serving the ingress does not need it."""

    def __init__(self, engine: Engine, ingress: IngressApp) -> None:
        self._engine = engine
        self._ingress = ingress  # also served under /ui/ingress/ for the web UI
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            from admin import create_admin_app

            self._app = create_admin_app(self._engine, self._ingress)
        await self._app(scope, receive, send)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`, which owns all servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: object, listener: Listener, config: Config, guard: ConnectionGuard, limits: Limits) -> _Server:
    protocol = functools.partial(GuardedProtocol, guard=guard, limits=limits, render=_RENDERERS[listener.face])
    return _Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            lifespan="off",
            access_log=False,
            log_config=None,  # uvicorn's records go to quill's one handler (text or JSON)
            log_level="warning",
            http=protocol,  # type: ignore[arg-type]
            ws="none",  # no WebSocket: an Upgrade request is served as plain HTTP, as Restate does
            loop="none",
            # X-Forwarded-* rewriting is for servers behind a proxy; it wrapped every request.
            proxy_headers=False,
            timeout_keep_alive=int(max(1, limits.idle_timeout)),
            # The engine answers waiting callers before this; the margin only bounds a stuck request.
            timeout_graceful_shutdown=int(config.shutdown_timeout) + 5,
        )
    )


async def serve(
    config: Config,
    started: asyncio.Event | None = None,
    sockets: list[socket.socket] | None = None,
    plan: WorkerPlan | None = None,
    ready: Callable[[], None] | None = None,
    shutdown: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, ``shutdown`` or cancellation; ``started`` is set once every port
    listens. ``sockets`` are the listeners' sockets, in ``config.listeners()`` order, if already bound.

    As worker ``plan.index`` of several (``quill.supervisor``), every worker serves the ingress
    (and Dapr) port through its own SO_REUSEPORT socket, so the kernel spreads connections over
    them; only worker 0 serves the admin API. ``ready`` tells the supervisor this worker serves.
    """
    listeners = config.listeners()
    if plan is not None and plan.index != 0:
        listeners = [listener for listener in listeners if listener.face is not Face.ADMIN]
    if sockets is None:
        sockets = bind_all(listeners, shared=plan is not None)
    try:
        await _serve(config, listeners, sockets, started, plan, ready, shutdown)
    finally:
        for sock in sockets:
            sock.close()


async def _serve(
    config: Config,
    listeners: list[Listener],
    sockets: list[socket.socket],
    started: asyncio.Event | None,
    plan: WorkerPlan | None,
    ready: Callable[[], None] | None,
    shutdown: asyncio.Event | None,
) -> None:
    file_limit = raise_file_limit()
    guard = ConnectionGuard(cap=connection_cap(config.max_connections, file_limit))
    limits = Limits(
        max_headers=config.max_request_headers,
        max_header_size=config.max_request_header_size,
        header_read_timeout=config.header_read_timeout,
        idle_timeout=config.connection_idle_timeout,
    )
    engine = Engine(config, plan)
    await engine.start()
    ingress = IngressApp(engine)
    apps = {
        Face.INGRESS: ingress,
        Face.ADMIN: _BuiltOnFirstRequest(engine, ingress),
        Face.DAPR: DaprIngress(engine, sidecar_port=True),
    }
    servers = [_server(apps[listener.face], listener, config, guard, limits) for listener in listeners]
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            log.warning("second signal: stopping now, without waiting for attempts in flight")
            for server in servers:
                server.force_exit = True
            engine.abandon_drain()
        stopping.set()

    # Not in the main thread (quill.testing serves in-process from a thread): ``shutdown`` stops it.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
    tasks = [loop.create_task(server.serve(sockets=[sock])) for server, sock in zip(servers, sockets, strict=True)]
    if shutdown is not None:
        # Done when every server returned; not in ``tasks``, which end the service when one fails.
        watcher = loop.create_task(shutdown.wait())
        watcher.add_done_callback(lambda _: stopping.set())
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.01)
        if all(server.started for server in servers):
            log.info("file descriptors: limit %d; at most %d connections", file_limit, guard.cap)
            if plan is not None:
                log.info("worker %d of %d serving (pid %d)", plan.index, plan.count, os.getpid())
                if ready is not None:
                    ready()
            else:
                log.info("quill serving %s", ", ".join(f"{item.face} on {item.url}" for item in listeners))
            if started is not None:
                started.set()
        stopped = loop.create_task(stopping.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        log.info("shutting down: draining attempts in flight (up to %gs)", config.shutdown_timeout)
        guard.draining = True
        for server in servers:
            server.should_exit = True
        await engine.drain(config.shutdown_timeout)
        await asyncio.gather(*tasks)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if shutdown is not None:
            watcher.cancel()
        await engine.stop()
