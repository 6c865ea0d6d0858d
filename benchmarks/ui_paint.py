"""First paint of every web UI page, and the latency of each ``/query`` it sends, with many
retained invocations in the data dir; a screenshot of each page for the README.

    python -m benchmarks.fill_retained --data-dir /tmp/q100k --count 100000
    python -m benchmarks.ui_paint --data-dir /tmp/q100k [--screenshots docs/ui]

Starts quill on the data dir and the benchmark SDK service, registers it, and opens each page in
Debian's Chromium (headless, through Playwright). "paint" is the browser's first contentful
paint; "ready" is when the page's data is on screen; "queries" are the slowest ``/query`` the page
sent, as the browser timed it (Resource Timing: request start to response end). Each figure is the
median of ``--runs`` fresh page loads.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright

from tests.support import CHROMIUM, CHROMIUM_FLAGS, Process, Quill, SdkService, free_port


def _pages(invocation_id: str, deep: Any) -> list[tuple[str, str, str]]:
    """(name, path, what shows that the data is there) of each page measured."""
    return [
        ("services", "/ui/", "table[aria-label=Services] tbody tr"),
        ("service", "/ui/services/Bench", "section[aria-label=Settings] form"),
        ("playground", "/ui/services/Bench/handlers/noop", "#pg-body"),
        ("deployments", "/ui/deployments", "table[aria-label=Deployments] tbody tr"),
        ("invocations", "/ui/invocations", "table[aria-label=Invocations] tbody tr a"),
        ("invocations-filtered", "/ui/invocations?service=Bench&handler=noop&status=succeeded",
         "table[aria-label=Invocations] tbody tr a"),
        ("invocations-older", f"/ui/invocations?before={deep}&skip=1", "table[aria-label=Invocations] tbody tr a"),
        ("invocation", f"/ui/invocations/{invocation_id}", "ol[aria-label=Journal], section[aria-label=Journal] p"),
        ("state", "/ui/state/BenchObject/k1", "textarea#value-last"),
        ("timers", "/ui/timers", "table[aria-label=Timers]"),
        ("limits", "/ui/limits", "table[aria-label=Rules]"),
        ("sql", "/ui/sql", "#sql-text"),
        ("health", "/ui/health", ".chart svg"),
    ]


class Bench(Process):
    def __init__(self) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "hypercorn", "benchmarks.services:app", "--bind", f"127.0.0.1:{self.port}"]
        super().__init__(argv, ready_marker="Running on")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def measure(page: Page, path: str, ready: str, runs: int) -> dict[str, Any]:
    paints, readies, queries = [], [], []
    for _ in range(runs):
        await page.goto(path, wait_until="commit")
        await page.wait_for_selector(ready, state="attached", timeout=60_000)
        ready_at = await page.evaluate("performance.now()")
        await page.wait_for_load_state("load")
        paint = await page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
        )
        slowest = await page.evaluate(
            "Math.max(0, ...performance.getEntriesByType('resource')"
            ".filter((e) => e.name.endsWith('/query')).map((e) => e.duration))"
        )
        paints.append(paint or 0.0)
        readies.append(ready_at)
        queries.append(slowest)
    return {
        "paint": statistics.median(paints),
        "ready": statistics.median(readies),
        "query": statistics.median(queries),
    }


async def run(data_dir: Path, screenshots: Path | None, runs: int) -> None:
    quill = Quill(data_dir, partitions=8, workers=1)
    bench = Bench()
    try:
        http = httpx.Client(timeout=60)
        answer = http.post(f"{quill.admin}/deployments", json={"uri": bench.url, "use_http_11": True})
        answer.raise_for_status()
        for key in ("k1", "k2", "k3"):
            http.post(f"{quill.ingress}/restate/call/BenchObject/{key}/touch", json=f"hello {key}").raise_for_status()
        called = http.post(f"{quill.ingress}/restate/call/Bench/run", json="traced", headers={"idempotency-key": "b1"})
        invocation_id = called.headers["x-restate-id"]
        def sql(query: str) -> list[dict[str, Any]]:
            answer = http.post(f"{quill.admin}/query", json={"query": query}, headers={"accept": "application/json"})
            answer.raise_for_status()
            rows: list[dict[str, Any]] = answer.json()["rows"]
            return rows

        print(f"{sql('SELECT COUNT(*) AS n FROM sys_invocation')[0]['n']} invocations in {data_dir}")
        # A page deep in the past: the Older button's query, the 20 000th newest onwards.
        deep = sql("SELECT created_at FROM sys_invocation ORDER BY created_at DESC LIMIT 1 OFFSET 20000")[0]
        deep = deep["created_at"]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            context = await browser.new_context(base_url=quill.admin, viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            print("| page | first paint | data on screen | slowest /query |")
            print("|---|---:|---:|---:|")
            for name, path, ready in _pages(invocation_id, deep):
                result = await measure(page, path, ready, runs)
                cells = " | ".join(f"{result[k]:.0f} ms" for k in ("paint", "ready", "query"))
                print(f"| {name} (`{path}`) | {cells} |")
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(screenshots / f"{name}.png"), animations="disabled")
            if screenshots is not None:
                await _live_screenshots(page, quill, http, screenshots)
            await browser.close()
    finally:
        bench.stop()
        quill.stop()


async def _live_screenshots(page: Page, quill: Quill, http: httpx.Client, into: Path) -> None:
    """Invocations that wait (a durable sleep, an awakeable), from the test SDK services."""
    services = SdkService()
    try:
        http.post(f"{quill.admin}/deployments", json={"uri": services.url, "use_http_11": True}).raise_for_status()
        waiting = {
            "invocation-sleeping": http.post(f"{quill.ingress}/restate/send/Timers/sleep", json=600_000),
            "invocation-awakeable": http.post(f"{quill.ingress}/restate/send/Caller/wait_for_awakeable", json="doc"),
        }
        for name, sent in waiting.items():
            await page.goto(f"/ui/invocations/{sent.json()['invocationId']}")
            await page.wait_for_selector("text=Why is it waiting?", timeout=30_000)
            await page.screenshot(path=str(into / f"{name}.png"), animations="disabled")
    finally:
        services.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.data_dir, args.screenshots, args.runs))


if __name__ == "__main__":
    main()
