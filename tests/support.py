"""Real processes for integration tests: quill and an SDK service, on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
# Debian's Chromium, as the UI tests and benchmarks drive it through Playwright (which never
# downloads a browser of its own here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process whose output is drained by a thread that signals a readiness line."""

    def __init__(
        self,
        argv: list[str],
        ready_marker: str,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.output: list[str] = []
        self._ready = threading.Event()
        self._written = threading.Condition()
        self._marker = ready_marker
        self._started = False  # the marker was seen (not merely the output ended)
        self._proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec_fn,
        )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or not self._started or self._proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"{argv[:4]} did not start:\n" + "".join(self.output[-40:]))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def _drain(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._written:
                self.output.append(line)
                self._written.notify_all()
            if self._marker in line:
                self._started = True
                self._ready.set()
        self._ready.set()  # exited: unblock the waiter, which then checks poll()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        """Until ``condition()`` holds, re-checked whenever the process writes a line."""
        with self._written:
            if not self._written.wait_for(condition, timeout):
                raise TimeoutError(f"not within {timeout}s; last output:\n" + "".join(self.output[-20:]))

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing gets to clean up."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._close()

    def _close(self) -> None:
        self._reader.join(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class Quill(Process):
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        partitions: int = 4,
        ports: tuple[int, int] | None = None,
        workers: int | None = None,
        args: list[str] | None = None,
        host: str = "127.0.0.1",
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.ingress_port, self.admin_port = ports or (free_port(), free_port())
        # QUILL_TEST_WORKERS=2 runs the whole suite against two worker processes.
        self.workers = workers if workers is not None else int(os.environ.get("QUILL_TEST_WORKERS", "1"))
        self.data_dir = data_dir
        self.host = host
        argv = self.command(data_dir, (self.ingress_port, self.admin_port), partitions, host, self.workers)
        # A short drain keeps teardown quick when a test leaves attempts parked at a gate.
        env = {"QUILL_SHUTDOWN_TIMEOUT": "3s", **(env or {})}
        super().__init__([*argv, *(args or [])], ready_marker="quill serving", env=env, preexec_fn=preexec_fn)

    @staticmethod
    def command(
        data_dir: Path,
        ports: tuple[int, int] | None = None,
        partitions: int = 4,
        host: str = "127.0.0.1",
        workers: int = 1,
    ) -> list[str]:
        """The command line of ``quill serve`` on free (or the given) loopback ports."""
        ingress, admin = ports or (free_port(), free_port())
        return [
            sys.executable,
            "-m",
            "quill",
            "serve",
            "--bind",
            host,
            "--ingress-port",
            str(ingress),
            "--admin-port",
            str(admin),
            "--data-dir",
            str(data_dir),
            "--partitions",
            str(partitions),
            "--workers",
            str(workers),
        ]

    @property
    def ingress(self) -> str:
        return f"http://{self.host}:{self.ingress_port}"

    def worker_pid(self, index: int) -> int:
        """The pid of worker ``index`` as it last announced itself (workers log their pid)."""
        marker = f"worker {index} of {self.workers} serving (pid "
        line = next(line for line in reversed(self.output) if marker in line)
        return int(line.split(marker, 1)[1].split(")", 1)[0])

    def wait_for_line(self, text: str, occurrences: int = 1, timeout: float = 30) -> None:
        """Until ``text`` appeared ``occurrences`` times in the server's output."""
        self.wait_for(lambda: sum(text in line for line in self.output) >= occurrences, timeout)

    @property
    def admin(self) -> str:
        return f"http://{self.host}:{self.admin_port}"


class SdkService(Process):
    """A real restate-sdk app under hypercorn (HTTP/1.1, so the SDK asks for request/response)."""

    def __init__(self, app: str = "tests.services.app:app", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{self.port}", "--workers", "1"],
            ready_marker="Running on",
            env=env,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait(self, client: httpx.AsyncClient, prefix: str, total: int = 1) -> None:
        """Until the service recorded ``total`` events named ``prefix...`` (its /test/wait)."""
        answer = await client.get(f"{self.url}/test/wait", params={"prefix": prefix, "total": total})
        assert answer.status_code == 200, f"fewer than {total} '{prefix}' events: {answer.text}"

    async def open(self, client: httpx.AsyncClient, gate: str) -> None:
        """Let the handlers waiting at ``gate`` go on (its /test/open)."""
        assert (await client.get(f"{self.url}/test/open", params={"name": gate})).status_code == 200


class TsService(Process):
    """A real @restatedev/restate-sdk (TypeScript SDK) endpoint under Node, over HTTP/1.1."""

    def __init__(self, http2: bool = False, script: str = "tests/ts/services.js") -> None:
        self.port = free_port()
        argv = ["node", script, str(self.port), *(["h2"] if http2 else [])]
        super().__init__(argv, ready_marker="Listening on")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Trace lineage (which trace a callee joins) is kept by the process that ran the caller: with
# --workers a callee on another worker starts its own trace, so those tests run against one process.
one_process = pytest.mark.skipif(
    int(os.environ.get("QUILL_TEST_WORKERS", "1")) > 1,
    reason="trace lineage is per worker process (see README, Tracing)",
)
