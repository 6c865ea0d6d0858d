"""Runs the engine and the two HTTP faces (ingress, admin) on one asyncio event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from admin import create_admin_app
from engine import Config, Engine
from engine.workers.layout import WorkerPlan
from ingress import IngressApp
from ingress.dapr import DaprIngress

log = logging.getLogger("quill")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`, which owns both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _shared(server: uvicorn.Server, plan: WorkerPlan | None) -> list[socket.socket] | None:
    """A listening socket the workers share by SO_REUSEPORT; None: uvicorn binds it alone."""
    if plan is None:
        return None
    config = server.config
    shared = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    shared.bind((config.host, config.port))
    shared.listen(config.backlog)
    shared.set_inheritable(False)
    return [shared]


def _uvicorn(app: object, config: Config, port: int) -> _Server:
    return _Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=config.bind,
            port=port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            http="httptools",
            loop="none",
            # X-Forwarded-* rewriting is for servers behind a proxy; it wrapped every request.
            proxy_headers=False,
            timeout_keep_alive=30,
            # Callers blocked on /call or /attach must not hold up shutdown: their invocations
            # are durable and a retry (same idempotency key) or an attach picks them up again.
            timeout_graceful_shutdown=3,
        )
    )


async def serve(
    config: Config,
    started: asyncio.Event | None = None,
    plan: WorkerPlan | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation); ``started`` is set once both ports listen.

    As worker ``plan.index`` of several (``quill.supervisor``), every worker serves the ingress
    (and Dapr) port through its own SO_REUSEPORT socket, so the kernel spreads connections over
    them; only worker 0 serves the admin API. ``ready`` tells the supervisor this worker serves.
    """
    engine = Engine(config, plan)
    await engine.start()
    servers = [_uvicorn(IngressApp(engine), config, config.ingress_port)]
    if plan is None or plan.index == 0:
        servers.append(_uvicorn(create_admin_app(engine), config, config.admin_port))
    if config.dapr_port is not None:
        servers.append(_uvicorn(DaprIngress(engine, sidecar_port=True), config, config.dapr_port))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop)
        loop.add_signal_handler(signal.SIGTERM, stop)
    tasks = [loop.create_task(server.serve(sockets=_shared(server, plan))) for server in servers]
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.01)
        if all(server.started for server in servers) and plan is not None:
            log.info("worker %d of %d serving (pid %d)", plan.index, plan.count, os.getpid())
            if ready is not None:
                ready()
        elif all(server.started for server in servers):
            log.info(
                "quill serving ingress on %s:%d, admin on %s:%d",
                config.bind,
                config.ingress_port,
                config.bind,
                config.admin_port,
            )
            if config.dapr_port is not None:
                log.info("quill serving the Dapr API on %s:%d", config.bind, config.dapr_port)
            if started is not None:
                started.set()
        await asyncio.gather(*tasks)
    finally:
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop()
