"""Request identity with the Python SDK's ``identity_keys``: quill signs discovery and every attempt
(HTTP/1.1 and HTTP/2) with its key, and a deployment that checks identity refuses a quill without it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.invoker.identity import RequestSigner
from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key made the way the README says: ``openssl genpkey -algorithm ed25519``."""
    path = tmp_path_factory.mktemp("identity") / "quill-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def guarded_service(key_file: Path) -> Iterator[SdkService]:
    public_key = RequestSigner.from_pem_file(key_file).public_key
    service = SdkService("tests.services.identity_app:app", env={"QUILL_TEST_IDENTITY_KEY": public_key})
    yield service
    service.stop()


async def test_signed_registration_and_invocations(
    tmp_path: Path, key_file: Path, guarded_service: SdkService, client: httpx.AsyncClient
) -> None:
    signing = ["--request-identity-private-key-pem-file", str(key_file)]
    quill = Quill(tmp_path / "data", env=QUILL_TEST_ENV, args=signing)
    try:
        public_key = RequestSigner.from_pem_file(key_file).public_key
        # Logged at start, as restate-server does: the string to configure the SDKs with.
        assert any(f"kid: {public_key}" in line for line in quill.output)
        for body in ({"uri": guarded_service.url, "use_http_11": True}, {"uri": guarded_service.url, "force": True}):
            registered = await client.post(f"{quill.admin}/deployments", json=body)
            assert registered.status_code in (200, 201), registered.text
            greeting = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="signed")
            assert (greeting.status_code, greeting.json()) == (200, "Hello signed!")
            # A keyed target: the token carries the key as sub.
            counted = await client.post(f"{quill.ingress}/restate/call/Counter/signed/add", json=2)
            assert counted.status_code == 200, counted.text
        assert counted.json() == 4  # both calls reached the object, over HTTP/1.1 and then HTTP/2
    finally:
        quill.stop()


async def test_unsigned_registration_is_refused_clearly(
    tmp_path: Path, guarded_service: SdkService, client: httpx.AsyncClient
) -> None:
    quill = Quill(tmp_path / "data", env=QUILL_TEST_ENV)
    try:
        for body in ({"uri": guarded_service.url, "use_http_11": True}, {"uri": guarded_service.url}):
            refused = await client.post(f"{quill.admin}/deployments", json=body)
            assert refused.status_code == 400, refused.text
            message = refused.json()["message"]
            assert "401 Unauthorized" in message and "request_identity_private_key_pem_file" in message
        assert (await client.get(f"{quill.admin}/deployments")).json() == {"deployments": []}
    finally:
        quill.stop()


def test_a_bad_key_file_stops_start_up_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    result = subprocess.run(
        [
            *Quill.command(tmp_path / "data"),
            "--request-identity-private-key-pem-file",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"quill: {bad}: only one private key in PEM format is expected, found 0"], result.stderr
