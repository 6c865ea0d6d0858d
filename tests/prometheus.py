"""A real Prometheus server for tests: Debian's ``prometheus`` binary on a free loopback port,
scraping the given targets every second, with its TSDB in a temp dir; queried over its HTTP API."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support import Process, free_port

BINARY = shutil.which("prometheus")


def require_prometheus() -> str:
    if BINARY is None:
        pytest.skip(
            "the 'prometheus' binary is missing: `make test` installs Debian's prometheus package"
            " with apt-get, which could not run on this machine"
        )
    return BINARY


class Prometheus(Process):
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        binary = require_prometheus()
        self.port = free_port()
        config = workdir / "prometheus.yml"
        listed = ", ".join(f'"{target}"' for target in targets)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: quill\n    static_configs:\n      - targets: [{listed}]\n"
        )
        super().__init__(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            ready_marker="Server is ready to receive web requests",
        )

    def query(self, expression: str) -> list[dict[str, object]]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expression}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        """The single value of an instant query, None while it has no result."""
        result = self.query(expression)
        if not result:
            return None
        sample = result[0]["value"]
        assert isinstance(sample, list)
        return float(sample[1])

    def wait_for(self, expression: str, accept: Callable[[float], bool], timeout: float = 60.0) -> float:
        """Polls the query API until a scrape makes ``expression`` acceptable."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.value(expression)
            if last is not None and accept(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"{expression} was {last} after {timeout}s")
