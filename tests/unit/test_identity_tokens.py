"""Request identity tokens, byte for byte against restate-server's and sdk-shared-core's."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.invoker.identity import IdentityKeyError, RequestSigner, invoke_path

# The key of restatedev/restate's request_identity/v1.rs tests, and a token signed with it in
# sdk-shared-core's `bad_key` test.
RESTATE_TEST_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPe++4ZTPQDF81otpoU/mOGHC2vOAVp9WbiCblvn3nXO
-----END PRIVATE KEY-----
"""
RESTATE_TEST_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0FmUXdtd2ZnRVpocldwdnY4TjUyU0hwUnRacUdHYUZy"
    "NEFaTjZxdFlXU2lZIn0.eyJhdWQiOiIvaW52b2tlL2ZvbyIsImV4cCI6MTcyMTY2MjcwOSwiaWF0IjoxNzIxNjYyNjQ5LCJuYmYiOjE3"
    "MjE2NjI1ODl9.UBReG_9cdFQ5VcaJxAV0rM8U_zaNw9kMXJZt691SiI0SWw7Ucmz5Zz3wtmVUc1jrkNsnTDhNEvOFGEZoKXTMCQ"
)
# A key made with `openssl genpkey -algorithm ed25519`, and the token restate-server 1.7.12 sent
# with it for a call to the virtual object Counter, key k1 (captured on the wire).
CAPTURED_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIH5EA2/NbG5wTxNqHlLCU/yWrm7h60r2KJVU0g4EdQVz
-----END PRIVATE KEY-----
"""
CAPTURED_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxXzNEd05RSlNoZkwyZEVqMVh3VmtqcER4OEVuWHpWQkNi"
    "MVNRYU1YcXVLVlU4In0.eyJhdWQiOiIvaW52b2tlL0NvdW50ZXIvYWRkIiwiZXhwIjoxNzk2MTU1MTQyLCJpYXQiOjE3OTYxNTUwODIs"
    "Im5iZiI6MTc5NjE1NTAyMiwic3ViIjoiazEifQ.PH_ajuCKqNAh2bwdLon3_BDq274i1UMMTAIkVDlVXXsmYUrq8eRRgXrByoVi0DX8Mtp"
    "JkIGeeRiETWk9THrtAg"
)


def signer(tmp_path: Path, pem: bytes) -> RequestSigner:
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    return RequestSigner.from_pem_file(path)


def test_tokens_are_restates(tmp_path: Path) -> None:
    restate = signer(tmp_path, RESTATE_TEST_KEY)
    assert restate.public_key == "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"
    assert restate.token("/invoke/foo", now=1721662649) == RESTATE_TEST_TOKEN
    captured = signer(tmp_path, CAPTURED_KEY)
    assert captured.public_key == "publickeyv1_3DwNQJShfL2dEj1XwVkjpDx8EnXzVBCb1SQaMXquKVU8"
    assert captured.token(invoke_path("Counter", "add"), "k1", now=1796155082) == CAPTURED_TOKEN


def test_headers_are_signed_per_request(tmp_path: Path) -> None:
    headers = signer(tmp_path, RESTATE_TEST_KEY).headers("/discover")
    assert [name for name, _ in headers] == ["x-restate-signature-scheme", "x-restate-jwt-v1"]
    assert headers[0][1] == "v1" and headers[1][1].count(".") == 2


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"", "found 0"),
        (RESTATE_TEST_KEY + CAPTURED_KEY, "found 2"),
        (b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
    ],
)
def test_bad_key_files_are_refused_with_a_reason(tmp_path: Path, pem: bytes, reason: str) -> None:
    with pytest.raises(IdentityKeyError, match=reason):
        signer(tmp_path, pem)
    with pytest.raises(IdentityKeyError, match="cannot read"):
        RequestSigner.from_pem_file(tmp_path / "missing.pem")
