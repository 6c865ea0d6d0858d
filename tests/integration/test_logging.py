"""Logs: text by default, ``--log-format json`` one object a line; the invocation on every record
an attempt logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


def _retried(tmp_path: Path, sdk_service: SdkService, log_format: str, name: str) -> tuple[Quill, str]:
    """A quill that ran Greeter/flaky (two failed attempts, then success); its id."""
    quill = Quill(tmp_path / log_format, env={**QUILL_TEST_ENV, "QUILL_LOG_FORMAT": log_format})
    registered = httpx.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    assert registered.status_code == 201, registered.text
    response = httpx.post(f"{quill.ingress}/Greeter/flaky", json=name, timeout=30)
    assert response.status_code == 200
    return quill, response.headers["x-restate-id"]


def _lines_about(quill: Quill, invocation_id: str, count: int) -> list[str]:
    """Lines naming ``invocation_id``, once the output reader has seen ``count`` of them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in list(quill.output) if invocation_id in line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines about {invocation_id}:\n{''.join(quill.output[-20:])}")


def test_json_logs_carry_the_invocation(tmp_path: Path, sdk_service: SdkService) -> None:
    quill, invocation_id = _retried(tmp_path, sdk_service, "json", "json-logs")
    try:
        retries = _lines_about(quill, invocation_id, 2)
    finally:
        quill.stop()
    records = [json.loads(line) for line in quill.output if line.startswith("{")]
    assert any(r["message"].startswith("quill serving") and r["logger"] == "quill" for r in records)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    for line in retries:
        record = json.loads(line)
        assert record["level"] == "INFO" and record["logger"] == "engine.invoker.invoker"
        assert record["invocation_id"] == invocation_id
        assert (record["service"], record["handler"]) == ("Greeter", "flaky")
        assert isinstance(record["partition"], int)
        assert "retrying" in record["message"]
    # Nothing but JSON: uvicorn's records too go through quill's handler.
    assert all(line.startswith("{") for line in quill.output if line.strip())


def test_text_logs_name_the_invocation(tmp_path: Path, sdk_service: SdkService) -> None:
    quill, invocation_id = _retried(tmp_path, sdk_service, "text", "text-logs")
    try:
        retries = _lines_about(quill, invocation_id, 2)
    finally:
        quill.stop()
    assert all(f"engine.invoker.invoker [{invocation_id} Greeter/flaky]: " in line for line in retries)


def test_a_bad_log_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="invalid choice: 'xml'|log format"):
        Quill(tmp_path / "data", env={"QUILL_LOG_FORMAT": "xml"})
