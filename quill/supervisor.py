"""``quill serve --workers N``: starts N worker processes and keeps them running.

Each worker is ``quill serve`` again with the same configuration plus its index; it owns the
partitions ``p % N == index``. The supervisor holds no data and no port: it waits for every
worker to say it serves (a line on a pipe), restarts a worker that dies (with backoff), and on
SIGTERM or SIGINT stops them all and waits for them. A worker that dies before it ever served
(a port in use, a bad data dir) stops the whole server instead of being restarted in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from typing import Any

from engine import Config
from engine.workers.layout import settle

log = logging.getLogger("quill")

_BACKOFF_INITIAL, _BACKOFF_MAX = 0.5, 10.0
_STABLE = 30.0  # a worker up this long has its backoff reset
_STOP_GRACE = 10.0  # beyond the workers' own drain (shutdown_timeout)


class Worker:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self._argv = argv
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self.backoff = _BACKOFF_INITIAL

    async def spawn(self) -> None:
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        self.ready.clear()
        self.process = await asyncio.create_subprocess_exec(
            *self._argv,
            "--worker-index",
            str(self.index),
            pass_fds=(write_end,),
            env={**os.environ, "QUILL_READY_FD": str(write_end)},
            preexec_fn=_die_with_parent,
        )
        os.close(write_end)
        self.started_at = time.monotonic()
        loop.add_reader(read_end, self._on_ready, loop, read_end)

    def _on_ready(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        data = os.read(fd, 64)
        loop.remove_reader(fd)
        os.close(fd)
        if data:
            self.ready.set()

    async def exited(self) -> Worker:
        assert self.process is not None
        await self.process.wait()
        return self


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the supervisor dies, even by SIGKILL (no orphans
    holding the ports and the data dir)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def supervise(config: Config, argv: list[str]) -> int:
    """Run ``config.workers`` workers until a signal; the exit status of the server."""
    settle(config.data_path, config.workers)
    loop = asyncio.get_running_loop()
    workers = [Worker(k, argv) for k in range(config.workers)]
    stopping = asyncio.Event()
    for name in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(name, stopping.set)
    for worker in workers:
        await worker.spawn()
    ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(w.ready.wait() for w in workers)))
    exits: dict[asyncio.Future[Any], Worker] = {asyncio.ensure_future(w.exited()): w for w in workers}
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    status = 0
    try:
        done, _ = await asyncio.wait({ready, stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            log.info(
                "quill serving ingress on %s:%d, admin on %s:%d with %d workers",
                config.bind,
                config.ingress_port,
                config.bind,
                config.admin_port,
                config.workers,
            )
            await _keep_running(exits, stop)
        elif not stop.done():
            worker = next(w for task, w in exits.items() if task in done)
            log.error("worker %d exited before it served (status %s): quill stops", worker.index, _code(worker))
            status = 1
    finally:
        for task in (ready, stop, *exits):
            task.cancel()
        await asyncio.gather(ready, stop, *exits, return_exceptions=True)
        # Each worker drains for up to shutdown_timeout before it stops: wait that long, and a bit.
        await _stop_all(workers, config.shutdown_timeout + _STOP_GRACE)
    return status


async def _keep_running(exits: dict[asyncio.Future[Any], Worker], stop: asyncio.Future[Any]) -> None:
    while True:
        done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        if stop in done:
            return
        for task in done:
            worker = exits.pop(task)
            if time.monotonic() - worker.started_at > _STABLE:
                worker.backoff = _BACKOFF_INITIAL
            log.error(
                "worker %d exited (status %s); its partitions are unavailable until it restarts in %.1fs",
                worker.index,
                _code(worker),
                worker.backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), worker.backoff)
            if stop.done():
                return
            worker.backoff = min(worker.backoff * 2, _BACKOFF_MAX)
            await worker.spawn()
            exits[asyncio.ensure_future(worker.exited())] = worker


async def _stop_all(workers: list[Worker], grace: float) -> None:
    running = [w.process for w in workers if w.process is not None and w.process.returncode is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()


def _code(worker: Worker) -> int | None:
    return None if worker.process is None else worker.process.returncode


def worker_argv() -> list[str]:
    """How to start a worker: this same command line."""
    return [sys.executable, "-m", "quill", *sys.argv[1:]]
