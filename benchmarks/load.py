"""Bounded closed-loop HTTP load driver.

``concurrency`` workers each keep exactly one request in flight on their own
keep-alive HTTP/1.1 connection. The run is bounded three ways: by wall time
(warm-up + duration), by a hard cap on the number of requests sent, and by a
per-request timeout, so it always stops by itself.

Only requests that *complete* inside the measured window (after warm-up) are
counted; the caller gets window-start/window-end callbacks so it can sample CPU
counters over exactly the same interval.

Two clients are available. ``raw`` (the default) is a minimal HTTP/1.1 client
on asyncio streams: the load driver shares 2 cores with the server and the SDK,
and httpx costs several times more CPU per request, which would be stolen from
the system under test. ``httpx`` is kept as a cross-check of the raw client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx

ClientKind = Literal["raw", "httpx"]
T = TypeVar("T")

BODY = b'"hi"'


class ProtocolError(Exception):
    """The peer sent something the raw client does not understand."""


@dataclass(frozen=True)
class LoadConfig:
    host: str
    port: int
    path: str
    concurrency: int
    duration_s: float
    warmup_s: float
    max_requests: int = 5_000_000
    request_timeout_s: float = 30.0
    client: ClientKind = "raw"


@dataclass
class _Shared:
    """State shared by all workers of one run (single event loop, no locks)."""

    measuring: bool = False
    stopping: bool = False
    sent: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record(self, latency_ns: int, ok: bool, detail: str = "") -> None:
        if not self.measuring:
            return
        if ok:
            self.latencies_ns.append(latency_ns)
            return
        self.errors += 1
        if len(self.error_samples) < 5 and detail:
            self.error_samples.append(detail)

    def may_send(self, cfg: LoadConfig) -> bool:
        if self.stopping or self.sent >= cfg.max_requests:
            return False
        self.sent += 1
        return True


@dataclass(frozen=True)
class LoadResult:
    invocations: int
    errors: int
    window_s: float
    latencies_ns: list[int]
    error_samples: list[str]
    sent_total: int

    @property
    def throughput(self) -> float:
        return self.invocations / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile_ns(self.latencies_ns, q) / 1e6


def percentile_ns(samples: list[int], q: float) -> float:
    """Nearest-rank percentile; q in [0, 100]."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


# --------------------------------------------------------------------------- raw


def _build_request(cfg: LoadConfig, worker: int) -> bytes:
    head = (
        f"POST {cfg.path.format(worker=worker)} HTTP/1.1\r\n"
        f"Host: {cfg.host}:{cfg.port}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: */*\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + BODY


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Skip optional trailers up to the terminating blank line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, connection_must_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_parts = lines[0].split(b" ", 2)
    if len(status_parts) < 2 or not status_parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    status = int(status_parts[1])
    length: int | None = None
    chunked = False
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        await _read_chunked(reader)
    elif length is not None:
        await reader.readexactly(length)
    elif status not in (204, 304) and not 100 <= status < 200:
        # No framing: body runs to EOF, so this connection is spent.
        await reader.read()
        close = True
    return status, close


async def _raw_worker(cfg: LoadConfig, shared: _Shared, worker: int) -> None:
    request = _build_request(cfg, worker)
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while shared.may_send(cfg):
            if writer is None:
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
            assert reader is not None
            started = time.perf_counter_ns()
            try:
                writer.write(request)
                status, close = await asyncio.wait_for(_read_response(reader), cfg.request_timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError, ValueError) as exc:
                shared.record(time.perf_counter_ns() - started, False, f"{type(exc).__name__}: {exc}")
                writer.close()
                writer, reader = None, None
                continue
            shared.record(time.perf_counter_ns() - started, status == 200, f"HTTP {status}")
            if close:
                writer.close()
                writer, reader = None, None
    finally:
        if writer is not None:
            writer.close()


# ------------------------------------------------------------------------- httpx


async def _httpx_worker(cfg: LoadConfig, shared: _Shared, client: httpx.AsyncClient, worker: int) -> None:
    url = f"http://{cfg.host}:{cfg.port}{cfg.path.format(worker=worker)}"
    headers = {"content-type": "application/json"}
    while shared.may_send(cfg):
        started = time.perf_counter_ns()
        try:
            resp = await client.post(url, content=BODY, headers=headers)
        except httpx.HTTPError as exc:
            shared.record(time.perf_counter_ns() - started, False, f"{type(exc).__name__}: {exc}")
            continue
        shared.record(time.perf_counter_ns() - started, resp.status_code == 200, f"HTTP {resp.status_code}")


def _httpx_client(cfg: LoadConfig) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    return httpx.AsyncClient(limits=limits, timeout=cfg.request_timeout_s, http1=True, http2=False)


# ------------------------------------------------------------------------ driver

WindowHook = Callable[[], None]


async def _clock(cfg: LoadConfig, shared: _Shared, on_start: WindowHook, on_end: WindowHook) -> tuple[float, float]:
    await asyncio.sleep(cfg.warmup_s)
    on_start()
    shared.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(cfg.duration_s)
    # Close the window before the hook so nothing completing during the CPU
    # sampling is counted without its CPU.
    shared.measuring = False
    t1 = time.perf_counter()
    on_end()
    shared.stopping = True
    return t0, t1


async def _drain(workers: list[asyncio.Task[None]], timeout_s: float) -> None:
    _, pending = await asyncio.wait(workers, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


async def run_load(
    cfg: LoadConfig,
    on_window_start: WindowHook = lambda: None,
    on_window_end: WindowHook = lambda: None,
) -> LoadResult:
    shared = _Shared()
    client = _httpx_client(cfg) if cfg.client == "httpx" else None
    try:
        if client is not None:
            workers = [asyncio.create_task(_httpx_worker(cfg, shared, client, i)) for i in range(cfg.concurrency)]
        else:
            workers = [asyncio.create_task(_raw_worker(cfg, shared, i)) for i in range(cfg.concurrency)]
        t0, t1 = await _clock(cfg, shared, on_window_start, on_window_end)
        await _drain(workers, cfg.request_timeout_s)
    finally:
        if client is not None:
            await client.aclose()
    return LoadResult(
        invocations=len(shared.latencies_ns),
        errors=shared.errors,
        window_s=t1 - t0,
        latencies_ns=shared.latencies_ns,
        error_samples=shared.error_samples,
        sent_total=shared.sent,
    )


async def wait_until_callable(cfg: LoadConfig, timeout_s: float) -> None:
    """Poll the endpoint until it answers 200: registration propagates asynchronously."""
    deadline = time.monotonic() + timeout_s
    last = ""
    async with httpx.AsyncClient(timeout=5.0) as client:
        url = f"http://{cfg.host}:{cfg.port}{cfg.path.format(worker=0)}"
        while time.monotonic() < deadline:
            try:
                resp = await client.post(url, content=BODY, headers={"content-type": "application/json"})
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not callable after {timeout_s}s (last: {last})")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when available: the driver's CPU competes with the system under test."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
