"""Logs: text by default, ``--log-format json`` one object a line; the invocation on every record
an attempt logs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


def _flaky_logs(tmp_path: Path, sdk_service: SdkService, log_format: str, name: str) -> tuple[list[str], list[str]]:
    """quill's whole output and its lines about a Greeter/flaky invocation (two failed attempts,
    then success), once they were logged."""
    quill = Quill(tmp_path / log_format, env={**QUILL_TEST_ENV, "QUILL_LOG_FORMAT": log_format})
    try:
        registered = httpx.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201, registered.text
        response = httpx.post(f"{quill.ingress}/Greeter/flaky", json=name, timeout=30)
        assert response.status_code == 200
        invocation_id = response.headers["x-restate-id"]
        deadline = time.monotonic() + 10
        while len(about := [line for line in list(quill.output) if invocation_id in line]) < 2:
            assert time.monotonic() < deadline, "".join(quill.output[-20:])
            time.sleep(0.05)
    finally:
        quill.stop()
    return quill.output, about


def test_json_logs_carry_the_invocation(tmp_path: Path, sdk_service: SdkService) -> None:
    output, retries = _flaky_logs(tmp_path, sdk_service, "json", "json-logs")
    records = [json.loads(line) for line in output if line.startswith("{")]
    assert any(r["message"].startswith("quill serving") and r["logger"] == "quill" for r in records)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    invocation_ids = set()
    for line in retries:
        record = json.loads(line)
        assert record["level"] == "INFO" and record["logger"] == "engine.invoker.invoker"
        assert (record["service"], record["handler"]) == ("Greeter", "flaky")
        assert isinstance(record["partition"], int)
        assert "retrying" in record["message"]
        invocation_ids.add(record["invocation_id"])
    assert len(invocation_ids) == 1 and invocation_ids.pop() in retries[0]
    # Nothing but JSON: uvicorn's records too go through quill's handler.
    assert all(line.startswith("{") for line in output if line.strip())


def test_text_logs_name_the_invocation(tmp_path: Path, sdk_service: SdkService) -> None:
    _, retries = _flaky_logs(tmp_path, sdk_service, "text", "text-logs")
    # The bracket names the invocation the message is about.
    assert all(re.search(r" engine\.invoker\.invoker \[(inv_\w+) Greeter/flaky\]: invocation \1 ", r) for r in retries)


def test_a_bad_log_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="invalid choice: 'xml'|log format"):
        Quill(tmp_path / "data", env={"QUILL_LOG_FORMAT": "xml"})
