"""Test Restate services against a real quill, in pytest, without Docker.

``with harness(app) as h:`` starts a fresh quill (a temporary data directory, free loopback
ports), serves ``app`` — any Restate SDK ASGI application — with hypercorn on a thread, registers
it, and hands out ``h.ingress_client()`` / ``h.admin_client()`` (httpx clients). The shape and
options are those of the Python SDK's ``restate.harness`` (``RestateTestHarness``,
``TestConfiguration``, ``create_test_harness``), which needs Docker and an image pull:

- ``always_replay``: suspend at every await point, so every step is replayed from the journal and
  non-determinism shows up in tests (an inactivity timeout of 0, as the SDK's harness sets
  Restate's ``worker.invoker.inactivity-timeout``; quill then runs attempts request/response);
- ``disable_retries``: one attempt; a failure ends the invocation with that failure
  (``max_attempts = 1``, ``on_max_attempts = kill``);
- ``follow_logs``: quill's log lines on stderr.

quill runs in this process on an event loop of its own thread (``in_process=False``: a
``python -m quill serve`` child process instead). The pytest plugin (``quill.pytest_plugin``)
exposes the harness as the ``quill_harness`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from restate.types import HarnessEnvironment

_START_TIMEOUT = 30.0


@dataclass
class TestConfiguration:
    """The options of ``restate.harness.TestConfiguration`` that apply to quill, and quill's own."""

    __test__ = False  # not a pytest test class, despite its name

    follow_logs: bool = False
    always_replay: bool = False
    disable_retries: bool = False
    in_process: bool = True
    http2: bool = True  # register over h2c, as Restate's harness does; False: HTTP/1.1 (use_http_11)
    partitions: int = 1  # as the SDK's harness configures Restate
    settings: dict[str, Any] = field(default_factory=dict)  # more quill settings (engine/config.py names)

    def quill_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "partitions": self.partitions,
            # Restate's harness: 10 minutes unless replaying, so a debugger breakpoint never suspends.
            "inactivity_timeout": "0s" if self.always_replay else "10m",
            "abort_timeout": "10m",
        }
        if self.disable_retries:
            settings["retry_policy"] = {"max_attempts": 1, "on_max_attempts": "kill"}
        return {**settings, **self.settings}


class QuillTestHarness:
    """A fresh quill serving one app; ``start``/``stop`` or use it as a context manager."""

    __test__ = False

    def __init__(self, app: Any, config: TestConfiguration | None = None) -> None:
        self._app = app
        self.config = config or TestConfiguration()
        self._data: Path | None = None
        self._server: _AppServer | None = None
        self._quill: _InProcessQuill | _QuillProcess | None = None
        self.ingress_url = ""
        self.admin_url = ""

    def start(self) -> None:
        self._data = Path(tempfile.mkdtemp(prefix="quill-harness-"))
        try:
            self._server = _AppServer(self._app)
            ingress, admin = _free_port(), _free_port()
            self.ingress_url, self.admin_url = f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{admin}"
            settings = {
                **self.config.quill_settings(),
                "bind": "127.0.0.1",
                "ingress_port": ingress,
                "admin_port": admin,
                "data_dir": str(self._data / "data"),
            }
            if self.config.in_process:
                self._quill = _InProcessQuill(settings, self.config.follow_logs)
            else:
                self._quill = _QuillProcess(settings, self.config.follow_logs)
            self._register()
        except BaseException:
            self.stop()
            raise

    def _register(self) -> None:
        assert self._server is not None
        body: dict[str, Any] = {"uri": self._server.url}
        if not self.config.http2:
            body["use_http_11"] = True
        with self.admin_client() as admin:
            response = admin.post("/deployments", json=body)
        if not response.is_success:
            raise AssertionError(f"unable to register the services at {self._server.url}: {response.text}")

    def stop(self) -> None:
        if self._quill is not None:
            self._quill.stop()
            self._quill = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None

    def ingress_client(self, **options: Any) -> httpx.Client:
        """An httpx client for the ingress (``/Service/handler``, ``/restate/...``)."""
        self._require_started()
        return httpx.Client(base_url=self.ingress_url, **{"timeout": 60.0, **options})

    def admin_client(self, **options: Any) -> httpx.Client:
        """An httpx client for the admin API (``/deployments``, ``/invocations/...``, ``/query``)."""
        self._require_started()
        return httpx.Client(base_url=self.admin_url, **{"timeout": 60.0, **options})

    def _require_started(self) -> None:
        if not self.ingress_url:
            raise AssertionError("the quill harness has not been started: use start() or `with`")

    def __enter__(self) -> QuillTestHarness:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def harness(
    app: Any,
    *,
    follow_logs: bool = False,
    always_replay: bool = False,
    disable_retries: bool = False,
    in_process: bool = True,
    http2: bool = True,
    settings: dict[str, Any] | None = None,
) -> QuillTestHarness:
    """``with harness(app) as h: h.ingress_client().post("/Greeter/greet", json="Ann")``"""
    config = TestConfiguration(
        follow_logs=follow_logs,
        always_replay=always_replay,
        disable_retries=disable_retries,
        in_process=in_process,
        http2=http2,
        settings=dict(settings or {}),
    )
    return QuillTestHarness(app, config)


@contextlib.asynccontextmanager
async def create_test_harness(
    app: Any,
    follow_logs: bool = False,
    always_replay: bool = False,
    disable_retries: bool = False,
    journal_value_codec: Any = None,
) -> AsyncIterator[HarnessEnvironment]:
    """``restate.create_test_harness`` against quill: the same environment (ingress and admin
    URLs, a ``restate`` client), so a test written for the SDK's harness only changes its import."""
    from restate.client import create_client
    from restate.types import HarnessEnvironment

    started = harness(app, follow_logs=follow_logs, always_replay=always_replay, disable_retries=disable_retries)
    await asyncio.to_thread(started.start)
    try:
        async with create_client(started.ingress_url, journal_value_codec=journal_value_codec) as client:
            yield HarnessEnvironment(ingress_url=started.ingress_url, admin_api_url=started.admin_url, client=client)
    finally:
        await asyncio.to_thread(started.stop)


# -- the app under test ------------------------------------------------------------------------
class _AppServer:
    """hypercorn on its own thread and loop, on a socket bound before it starts (no port race)."""

    def __init__(self, app: Any) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        listening = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        config = Config()
        config.bind = [f"fd://{listening.detach()}"]  # hypercorn owns (and closes) it from now on
        # As the SDK's harness: no stream or keep-alive limit ends a long test's connection.
        config.h2_max_concurrent_streams = 2**31 - 1
        config.keep_alive_max_requests = 2**31 - 1
        config.keep_alive_timeout = 2**31 - 1
        config.accesslog = None
        config.errorlog = logging.getLogger("quill.testing.app")  # the app's errors, through logging
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()

        async def run() -> None:
            await serve(app, config, shutdown_trigger=self._stopping.wait, mode="asgi")

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(run(),), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        self._loop.close()


# -- quill -------------------------------------------------------------------------------------
class _InProcessQuill:
    """``quill.server.serve`` on a thread with its own event loop, stopped as SIGTERM stops it."""

    def __init__(self, settings: dict[str, Any], follow_logs: bool) -> None:
        from engine.config import load_config

        config = load_config(env={}, overrides=settings)  # the caller's QUILL_* variables stay out
        self._logs = _LogFollower() if follow_logs else None
        self._loop = _new_loop()
        self._ready = threading.Event()
        self._serving: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(config,), name="quill", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"quill did not start within {_START_TIMEOUT}s")
        if self._failure is not None:
            self.stop()
            raise RuntimeError("quill failed to start") from self._failure

    def _run(self, config: Any) -> None:
        from quill.server import serve

        async def main() -> None:
            started, self._shutdown = asyncio.Event(), asyncio.Event()
            self._serving = asyncio.ensure_future(serve(config, started, shutdown=self._shutdown))
            ready = asyncio.ensure_future(started.wait())
            await asyncio.wait({self._serving, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self._serving.done() and not self._serving.cancelled():
                self._failure = self._serving.exception() or RuntimeError("quill stopped while starting")
            self._ready.set()
            await self._serving

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._failure = exc
            self._ready.set()

    def stop(self) -> None:
        if self._shutdown is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(_START_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
        if self._logs is not None:
            self._logs.close()


class _QuillProcess:
    """``python -m quill serve`` as a child process, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, settings: dict[str, Any], follow_logs: bool) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUILL_")}
        env.update(_environment(settings))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "quill", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._output: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, args=(follow_logs,), daemon=True)
        self._reader.start()
        if not self._ready.wait(_START_TIMEOUT) or self._process.poll() is not None:
            self.stop()
            raise RuntimeError("quill did not start:\n" + "".join(self._output[-30:]))

    def _drain(self, follow_logs: bool) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            if follow_logs:
                sys.stderr.write(line)
            if "quill serving" in line:
                self._ready.set()
        self._process.wait()  # exited: reaped before the starting thread looks at poll()
        self._ready.set()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._reader.join(5)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _environment(settings: dict[str, Any]) -> dict[str, str]:
    """The same settings as ``QUILL_*`` variables (nested ones as ``QUILL_A__B``)."""
    env: dict[str, str] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            env.update({f"QUILL_{key.upper()}__{k.upper()}": str(v) for k, v in value.items()})
        else:
            env[f"QUILL_{key.upper()}"] = str(value)
    return env


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    return loop


class _LogFollower:
    """quill's own loggers, at INFO, also to stderr while the harness runs (then as they were)."""

    _LOGGERS = ("quill", "engine", "ingress", "admin")

    def __init__(self) -> None:
        from engine.telemetry.logs import TEXT_FORMAT, InvocationFilter

        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.addFilter(InvocationFilter())
        self._handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        self._levels = {}
        for name in self._LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.INFO)
            logger.addHandler(self._handler)

    def close(self) -> None:
        for name, level in self._levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self._handler)
            logger.setLevel(level)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


__all__ = ["QuillTestHarness", "TestConfiguration", "create_test_harness", "harness"]
