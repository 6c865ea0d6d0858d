from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Quill, SdkService

# Fast retries keep retry tests short; the policy logic is the same as with the defaults.
QUILL_TEST_ENV = {"QUILL_RETRY_POLICY__INITIAL_INTERVAL": "50ms", "QUILL_RETRY_POLICY__MAX_INTERVAL": "200ms"}


@pytest.fixture(scope="session")
def sdk_service() -> Iterator[SdkService]:
    service = SdkService()
    yield service
    service.stop()


@pytest.fixture
def quill(tmp_path: Path) -> Iterator[Quill]:
    server = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    yield server
    server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, sdk_service: SdkService) -> Iterator[Quill]:
    """A quill with the test SDK service registered, shared by the tests of one module."""
    server = Quill(tmp_path_factory.mktemp("quill") / "data", env=QUILL_TEST_ENV)
    try:
        response = httpx.post(f"{server.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert response.status_code == 201, response.text
        yield server
    finally:
        server.stop()
