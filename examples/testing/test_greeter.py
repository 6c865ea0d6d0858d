"""Testing Restate services with quill's harness: a real server per test, no Docker."""

import pytest
from greeter import app

from quill.testing import harness


@pytest.fixture
def restate_app():
    return app  # what the quill_harness fixture serves


def test_greet_counts_visits(quill_harness):
    with quill_harness.ingress_client() as client:
        assert client.post("/Greeter/greet", json="Ann").json() == "Hello Ann! visit #1 ✓"
        assert client.post("/Greeter/greet", json="Ann").json() == "Hello Ann! visit #2 ✓"
        assert client.post("/Counter/Bob/add", json=5).json() == 5


@pytest.mark.quill(always_replay=True)
def test_greet_replays_deterministically(quill_harness):
    # Every await suspends and replays the journal: non-deterministic code would fail here.
    with quill_harness.ingress_client() as client:
        assert client.post("/Greeter/greet", json="Cy").json() == "Hello Cy! visit #1 ✓"


def test_without_retries_a_failure_is_the_answer():
    with harness(app, disable_retries=True) as h, h.ingress_client() as client:
        response = client.post("/Greeter/shout", json="")
        assert response.status_code == 500
        assert "nobody to shout at" in response.json()["message"]
        # One attempt, then the invocation ended with the error (the admin API's SQL says so).
        query = {"query": "SELECT status FROM sys_invocation"}
        with h.admin_client(headers={"accept": "application/json"}) as admin:
            assert admin.post("/query", json=query).json()["rows"] == [{"status": "completed"}]
