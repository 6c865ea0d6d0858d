"""Limits an exposed server needs: header count and size (431), admin body size (413), connection
caps and timeouts under a low file-descriptor limit, and Upgrade requests served as plain HTTP."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        answer += chunk
    return answer


def request(path: str, extra_headers: int = 0, value_size: int = 10, body: bytes = b"", method: str = "POST") -> bytes:
    headers = b"".join(b"x-extra-%d: %s\r\n" % (i, b"v" * value_size) for i in range(extra_headers))
    return (
        b"%s %s HTTP/1.1\r\nhost: quill\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s\r\n%s" % (method.encode(), path.encode(), len(body), headers, body)
    )


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


@pytest.fixture(scope="module")
def server(registered: Quill) -> Quill:
    return registered


def invocation_count(server: Quill) -> int:
    rows = httpx.post(
        f"{server.admin}/query",
        json={"query": "SELECT count(*) AS n FROM sys_invocation"},
        headers={"accept": "application/json"},
    ).json()["rows"]
    return int(rows[0]["n"])


def test_too_many_or_too_large_headers_are_431_before_anything_is_stored(server: Quill) -> None:
    before = invocation_count(server)
    # Restate's (hyper's) limit: 100 header fields. Four are ours here (host, content type and
    # length, connection): 96 more are fine, 97 are one too many.
    fine = exchange(server.ingress_port, request("/restate/send/Greeter/greet", 96, body=b'"ok"'))
    assert status_of(fine) == 202, fine
    for extra, size in ((97, 10), (2000, 8000), (60, 8000), (1, 500_000)):
        answer = exchange(server.ingress_port, request("/restate/send/Greeter/greet", extra, size, body=b'"no"'))
        assert status_of(answer) == 431, answer[:200]
        error = httpx.Response(200, content=body_of(answer)).json()
        assert error["code"] == 431 and error["source"] == "ingress"
        assert error["message"].startswith("request header fields too large")
        assert b"x-restate-error-source: ingress" in answer
    assert invocation_count(server) == before + 1
    admin = exchange(server.admin_port, request("/deployments", 200, body=b"{}"))
    assert status_of(admin) == 431
    assert httpx.Response(200, content=body_of(admin)).json()["restate_code"] is None


def test_admin_bodies_over_the_limit_are_413_without_reading_the_rest(server: Quill) -> None:
    # A 1 GiB content-length: answered at once, the body is never sent.
    with socket.create_connection(("127.0.0.1", server.admin_port), timeout=10) as sock:
        sock.sendall(b"POST /deployments HTTP/1.1\r\nhost: quill\r\ncontent-type: application/json\r\n")
        sock.sendall(b"content-length: 1073741824\r\n\r\n")
        answer = read_all(sock)
    assert status_of(answer) == 413, answer
    assert b"connection: close" in answer.lower()
    assert "length limit" in httpx.Response(200, content=body_of(answer)).json()["message"]
    # A chunked body: read only until it passes the limit (2 MiB), then 413 and the connection closes.
    with socket.create_connection(("127.0.0.1", server.admin_port), timeout=10) as sock:
        # (With a JSON content type: without one the answer is 415 before any of the body is read.)
        sock.sendall(
            b"POST /deployments HTTP/1.1\r\nhost: quill\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        sent = 0
        try:
            while sent < 1024 * 1024 * 1024:
                sock.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    assert status_of(answer) == 413, answer[:200]
    assert sent < 64 * 1024 * 1024  # the server stopped reading long before the client ran out
    # Under the limit, registration still works as before.
    assert httpx.post(f"{server.admin}/deployments", json={"uri": "nope"}).status_code == 422  # not a URI


def test_upgrade_requests_are_answered_as_plain_http(server: Quill) -> None:
    upgrade = b"connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n"
    upgrade += b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    for port, path, expected in (
        (server.ingress_port, "/restate/call/Greeter/greet", 200),
        (server.admin_port, "/query", 200),
    ):
        body = b'"upgrade"' if port == server.ingress_port else b'{"query": "SELECT 1 AS one"}'
        head = b"POST %s HTTP/1.1\r\nhost: quill\r\ncontent-type: application/json\r\n" % path.encode()
        head += b"accept: application/json\r\ncontent-length: %d\r\n" % len(body)
        answer = exchange(port, head + upgrade + b"\r\n" + body, timeout=10)
        assert answer and status_of(answer) == expected, answer[:300]
    get = exchange(server.ingress_port, b"GET /restate/health HTTP/1.1\r\nhost: quill\r\n" + upgrade + b"\r\n")
    assert status_of(get) == 200


def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    quill = Quill(tmp_path / "data", env={**QUILL_TEST_ENV, "QUILL_HEADER_READ_TIMEOUT": "1s"})
    try:
        with socket.create_connection(("127.0.0.1", quill.ingress_port), timeout=10) as sock:
            sock.sendall(b"GET /restate/health HTTP/1.1\r\nhost: quill\r\n")
            started = time.monotonic()
            answer = b""
            for _ in range(20):  # one header byte every 0.3 s: never a complete head
                try:
                    sock.sendall(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.3)
            answer = read_all(sock)
            assert status_of(answer) == 408, answer
            assert time.monotonic() - started < 5
    finally:
        quill.stop()


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.fixture
def low_fd_quill(tmp_path: Path, sdk_service: SdkService) -> Iterator[Quill]:
    env = {**QUILL_TEST_ENV, "QUILL_CONNECTION_IDLE_TIMEOUT": "2s"}
    quill = Quill(tmp_path / "data", env=env, preexec_fn=_low_file_limit)
    try:
        registered = httpx.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201
        yield quill
    finally:
        quill.stop()


def test_idle_connections_cannot_starve_new_ones(low_fd_quill: Quill) -> None:
    quill = low_fd_quill
    assert any("file descriptors: limit 256; at most 128 connections" in line for line in quill.output)
    idle = []
    try:
        for _ in range(300):  # more idle connections than file descriptors
            idle.append(socket.create_connection(("127.0.0.1", quill.ingress_port), timeout=10))
        # Past the cap, a new connection gets a clear refusal at once (and the log says so once).
        with socket.create_connection(("127.0.0.1", quill.ingress_port), timeout=10) as late:
            refused = read_all(late)  # answered before it even sent a request
        assert status_of(refused) == 503, refused
        assert httpx.Response(200, content=body_of(refused)).json()["code"] == 503
        quill.wait_for(lambda: any("connection limit reached" in line for line in quill.output), 10)
        # Once per episode (per worker process with --workers).
        assert 1 <= sum("connection limit reached" in line for line in quill.output) <= quill.workers
        # The idle ones are closed after the idle timeout (2 s here) ...
        for sock in idle[:100]:
            sock.settimeout(10)
            assert sock.recv(1) == b""
        # ... and new connections are served again.
        answer = httpx.post(f"{quill.ingress}/restate/call/Greeter/greet", json="again", timeout=10)
        assert (answer.status_code, answer.json()) == (200, "Hello again!")
    finally:
        for sock in idle:
            sock.close()
