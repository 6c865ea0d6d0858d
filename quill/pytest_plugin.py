"""pytest plugin (entry point ``pytest11``): the ``quill_harness`` fixture.

Define a ``restate_app`` fixture returning your Restate SDK app; ``quill_harness`` then is a
started :class:`quill.testing.QuillTestHarness` serving it, fresh for each test. Options go on a
marker: ``@pytest.mark.quill(always_replay=True, disable_retries=True)``. Nothing heavy is
imported until a test asks for the fixture, so installing quill costs other test suites nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from quill.testing import QuillTestHarness


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "quill(**options): options of the quill_harness fixture (always_replay, disable_retries, follow_logs,"
        " in_process, http2, settings)",
    )


@pytest.fixture
def quill_harness(request: pytest.FixtureRequest) -> Iterator[QuillTestHarness]:
    """A fresh quill serving the ``restate_app`` fixture's app, registered and ready to call."""
    from quill.testing import harness

    try:
        app = request.getfixturevalue("restate_app")
    except pytest.FixtureLookupError:
        pytest.fail("quill_harness needs a `restate_app` fixture that returns the Restate app to test", pytrace=False)
    marker = request.node.get_closest_marker("quill")
    with harness(app, **(marker.kwargs if marker else {})) as started:
        yield started
