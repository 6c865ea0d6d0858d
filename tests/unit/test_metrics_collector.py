"""The collector: quill's plain counters and a real engine's live state as Prometheus families."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine import Engine, load_config
from engine.telemetry.collector import build_registry
from engine.telemetry.metrics import LATENCY_BUCKETS, AttemptStatus, Histogram, IngressStatus, RpcType


def test_buckets_count_values_up_to_and_including_their_bound() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.counts == [2, 2, 1]  # le=0.1: 0.05, 0.1; le=1: 0.5, 1.0; +Inf: 7.0
    assert histogram.total == 8.65


async def test_families_carry_the_constant_labels_and_cumulative_buckets(tmp_path: Path) -> None:
    engine = Engine(load_config(env={}, overrides={"data_dir": str(tmp_path / "data"), "partitions": 2}))
    await engine.start()
    try:
        metrics = engine.metrics
        metrics.ingress_admitted()
        metrics.ingress_finished(IngressStatus.COMPLETED, "Greeter", RpcType.CALL, 0.003)
        metrics.ingress_finished(IngressStatus.COMPLETED, "Greeter", RpcType.CALL, 30.0)
        metrics.attempt_finished(1, AttemptStatus.FAILED, True, 0.2)
        text = generate_latest(build_registry(metrics, engine, {"worker": "3"})).decode()
    finally:
        await engine.stop()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith(("restate_", "quill_"))
        for sample in family.samples
    }
    assert all(dict(labels).get("worker") == "3" for _, labels in samples)
    assert samples["restate_ingress_requests_total", (("status", "admitted"), ("worker", "3"))] == 1
    greeter = (("rpc_service", "Greeter"), ("rpc_type", "call"))
    buckets = [
        samples[
            "restate_ingress_request_duration_seconds_bucket", tuple(sorted((*greeter, ("le", le), ("worker", "3"))))
        ]
        for le in [*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
    ]
    # 3 ms first counts at le=0.005 (the sixth bound), 30 s at le=60.
    assert buckets[:6] == [0, 0, 0, 0, 0, 1] and buckets[-3:] == [1, 2, 2]
    failed = (("partition_id", "1"), ("status", "failed"), ("transient", "true"), ("worker", "3"))
    assert samples["restate_invoker_invocation_tasks_total", failed] == 1
    assert samples["restate_num_partitions", (("worker", "3"),)] == 2
