"""GET /metrics, scraped by a real Prometheus and read back through Prometheus' query API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import QUILL_TEST_ENV
from tests.prometheus import Prometheus
from tests.support import Quill, SdkService, one_process

pytestmark = one_process


@pytest.fixture
def prometheus(tmp_path: Path, registered: Quill) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, [f"127.0.0.1:{registered.admin_port}"])
    yield server
    server.stop()


async def test_prometheus_scrapes_what_was_invoked(
    registered: Quill, sdk_service: SdkService, prometheus: Prometheus, client: httpx.AsyncClient
) -> None:
    quill = registered
    for name in ("a", "b", "c", "d", "e"):
        assert (await client.post(f"{quill.ingress}/Greeter/greet", json=name)).status_code == 200
    assert (await client.post(f"{quill.ingress}/Greeter/fail", json="f")).status_code == 409
    assert (await client.post(f"{quill.ingress}/Greeter/nope", json="g")).status_code == 404
    sends = [await client.post(f"{quill.ingress}/Greeter/greet/send", json=n) for n in ("h", "i")]
    assert all(send.status_code == 202 for send in sends)

    completed = 'sum(quill_invocations_completed_total{service="Greeter"})'
    assert prometheus.wait_for(completed, lambda value: value >= 8) == 8
    assert prometheus.value('sum(quill_invocations_completed_total{service="Greeter",outcome="failure"})') == 1
    requests = 'sum(restate_ingress_requests_total{{rpc_service="Greeter",status="{}",rpc_type="{}"}})'
    assert prometheus.value(requests.format("completed", "call")) == 5
    assert prometheus.value(requests.format("completed", "send")) == 2
    assert prometheus.value(requests.format("invocation_error", "call")) == 1
    assert prometheus.value(requests.format("request_error", "call")) == 1  # the unknown handler
    assert prometheus.value('restate_ingress_requests_total{status="admitted"}') == 9
    assert prometheus.value('sum(restate_invoker_invocation_tasks_total{status="completed"})') == 8
    assert prometheus.value('sum(restate_partition_apply_command_duration_seconds_count{command="Invoke"})') == 8
    assert (prometheus.value("quill_storage_group_commit_writes_count") or 0) > 0
    # Histograms, not Restate's summaries: quantiles come from the buckets.
    p99 = prometheus.value("histogram_quantile(0.99, sum by (le) (quill_storage_fsync_duration_seconds_bucket))")
    assert p99 is not None and 0 < p99 < 60


async def test_inbox_depth_and_retries_are_scraped_while_they_happen(
    registered: Quill, sdk_service: SdkService, prometheus: Prometheus, client: httpx.AsyncClient
) -> None:
    quill = registered
    held = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/depth/hold", json="depth-gate"))
    await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:depth", "total": 1})
    for _ in range(3):
        assert (await client.post(f"{quill.ingress}/restate/send/Counter/depth/add", json=1)).status_code == 202
    assert prometheus.wait_for('quill_inbox_depth{service="Counter"}', lambda value: value == 3) == 3
    running = 'sum(quill_invocations{service="Counter",status="running"})'
    assert prometheus.wait_for(running, lambda value: value == 1) == 1
    await client.get(f"{sdk_service.url}/test/open", params={"name": "depth-gate"})
    assert (await held).json() == "released"
    assert prometheus.wait_for('quill_inbox_depth{service="Counter"}', lambda value: value == 0) == 0

    # Greeter/flaky fails twice before it succeeds: two retries, then success.
    assert (await client.post(f"{quill.ingress}/Greeter/flaky", json="metrics")).status_code == 200
    retries = 'sum(quill_invoker_retries_total{service="Greeter",action="retry"})'
    assert prometheus.wait_for(retries, lambda value: value >= 2) == 2
    failed = 'sum(restate_invoker_invocation_tasks_total{status="failed",transient="true"})'
    assert prometheus.value(failed) == 2


async def test_http2_streams_in_use_are_counted_while_a_bidi_attempt_runs(
    tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    quill = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        registered = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url})
        assert registered.status_code == 201, registered.text
        held = asyncio.create_task(client.post(f"{quill.ingress}/restate/call/Counter/h2/hold", json="h2-gate"))
        await client.get(f"{sdk_service.url}/test/wait", params={"prefix": "holding:h2", "total": 1})
        during = _scrape((await client.get(f"{quill.admin}/metrics")).text)
        await client.get(f"{sdk_service.url}/test/open", params={"name": "h2-gate"})
        assert (await held).json() == "released"
        after = _scrape((await client.get(f"{quill.admin}/metrics")).text)
    finally:
        quill.stop()
    assert during["quill_http2_streams_in_use"] == 1
    assert during["quill_http2_connections"] == 1
    assert after["quill_http2_streams_in_use"] == 0


def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    quill = Quill(tmp_path / "data", env={"QUILL_METRICS": "false"})
    try:
        assert httpx.get(f"{quill.admin}/metrics").status_code == 404
    finally:
        quill.stop()


def _scrape(text: str) -> dict[str, float]:
    """Unlabelled samples of a /metrics page, by name."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
