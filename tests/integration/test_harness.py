"""quill.testing: a fresh quill per test serving an SDK app in this process, with the options of
the SDK's own (Docker) harness, and the pytest plugin's quill_harness fixture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quill.testing import create_test_harness, harness
from tests.services import control
from tests.services.app import app, greet
from tests.support import REPO

README = REPO / "README.md"
EXAMPLE = REPO / "examples" / "testing"


def _pytest(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_readme_example_passes_and_is_what_the_readme_shows() -> None:
    run = _pytest(str(EXAMPLE))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    readme = README.read_text()
    for example in ("greeter.py", "test_greeter.py"):
        assert (EXAMPLE / example).read_text() in readme, f"README shows another {example}"


def test_by_default_an_attempt_runs_the_whole_handler_on_one_stream() -> None:
    with harness(app) as h, h.ingress_client() as client:
        assert client.post("/Greeter/two_steps", json="streamed").json() == 3
    assert control.counters["attempt:streamed"] == 1


def test_always_replay_suspends_at_every_await_point() -> None:
    with harness(app, always_replay=True) as h, h.ingress_client() as client:
        assert client.post("/Greeter/two_steps", json="replayed").json() == 3
    # Each ctx.run suspends the attempt and the next one replays the journal: three attempts.
    assert control.counters["attempt:replayed"] == 3


def test_disable_retries_answers_the_first_failure() -> None:
    with harness(app, disable_retries=True) as h, h.ingress_client() as client:
        response = client.post("/Greeter/flaky", json="once")
    assert response.status_code == 500
    assert response.json()["message"] == "ValueError('attempt 1 fails')"
    assert control.counters["flaky:once"] == 1


def test_quill_can_run_as_a_child_process_over_http_1_1() -> None:
    with harness(app, in_process=False, http2=False) as h, h.ingress_client() as client:
        assert client.post("/Greeter/greet", json="child").json() == "Hello child!"
        with h.admin_client() as admin:
            (deployment,) = admin.get("/deployments").json()["deployments"]
    assert deployment["http_version"] == "HTTP/1.1"


async def test_create_test_harness_has_the_sdk_harness_shape() -> None:
    async with create_test_harness(app) as env:
        assert await env.client.service_call(greet, arg="client") == "Hello client!"
        assert env.admin_api_url.startswith("http://127.0.0.1:")


def test_the_fixture_says_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "test_missing.py").write_text("def test_it(quill_harness):\n    pass\n")
    run = _pytest("test_missing.py", cwd=tmp_path)
    assert run.returncode == 1
    assert "quill_harness needs a `restate_app` fixture" in run.stdout
