"""Disk: a full disk is reported (503 health, 503 to callers, never a 500) and survived (writes
resume by themselves once there is room), start-up on a full disk is one line, and the data dir
stays within a small multiple of the live data under sustained load (the WAL is bounded)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs, mounted for the test (root only) and always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 65536, 4096, 1):
            block = b"\0" * size
            try:
                while os.write(fd, block):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_is_reported_and_survived(
    small_disk: Path, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    quill = Quill(small_disk / "data", env=QUILL_TEST_ENV)
    filler: Path | None = None
    try:
        registered = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201
        before = await client.post(f"{quill.ingress}/restate/send/Greeter/greet", json="before")
        assert before.status_code == 202
        filler = fill(small_disk)
        # Writes fail now: callers get a clear 503 in Restate's shape, never a raw 500.
        big = "x" * 200_000
        answers = [await client.post(f"{quill.ingress}/restate/send/Greeter/greet", json=big) for _ in range(3)]
        assert [a.status_code for a in answers] == [503] * 3, [a.text for a in answers]
        for answer in answers:
            error = answer.json()
            assert error["code"] == 503 and "storage" in error["message"]
        # ... and the health endpoints say so.
        health = await client.get(f"{quill.ingress}/restate/health")
        assert health.status_code == 503 and "storage unavailable" in health.json()["message"]
        admin_health = await client.get(f"{quill.admin}/health")
        assert admin_health.status_code == 503 and admin_health.json()["restate_code"] is None
        quill.wait_for(lambda: any("storage write failed" in line for line in quill.output), 30)

        filler.unlink()
        filler = None
        # Space is back: writes resume by themselves (no restart).
        for _ in range(200):
            if (await client.get(f"{quill.admin}/health")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(f"{quill.ingress}/restate/health")).status_code == 200
        after = await client.post(f"{quill.ingress}/restate/call/Greeter/greet", json="after")
        assert (after.status_code, after.json()) == (200, "Hello after!")
        first = before.json()["invocationId"]
        # The invocation accepted before the disk filled completed, once.
        for _ in range(100):
            status = (await client.get(f"{quill.admin}/invocations/{first}")).json()
            if status["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert status["status"] == "completed", status
        quill.wait_for(lambda: any("storage writes succeed again" in line for line in quill.output), 30)
    finally:
        if filler is not None:
            filler.unlink()
        quill.stop()


def test_start_up_on_a_full_disk_is_one_line(small_disk: Path) -> None:
    fill(small_disk)
    result = subprocess.run(Quill.command(small_disk / "data"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("quill: ") and "no space left on device" in lines[0], lines


async def test_the_data_dir_stays_a_small_multiple_of_live_data(
    tmp_path: Path, sdk_service: SdkService, client: httpx.AsyncClient
) -> None:
    # A small WAL bound and log tail make the effect visible within seconds; the defaults bound
    # the same way at a larger scale (128 MiB of WAL).
    env = {
        **QUILL_TEST_ENV,
        "QUILL_ROCKSDB_MAX_TOTAL_WAL_SIZE": str(8 << 20),
        "QUILL_ROCKSDB_MEMORY_BUDGET": str(32 << 20),
        "QUILL_LOG_RETAINED_ENTRIES": "200",
    }
    data = tmp_path / "data"
    quill = Quill(data, env=env)
    try:
        registered = await client.post(f"{quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
        assert registered.status_code == 201
        body = "b" * 20_000
        url = f"{quill.ingress}/restate/call/Greeter/greet"
        written = 0
        for _ in range(30):  # 30 × 50 invocations of 20 KB, each retained for its idempotency key
            keys = [uuid.uuid4().hex for _ in range(50)]
            answers = await asyncio.gather(
                *(client.post(url, json=body, headers={"idempotency-key": key}) for key in keys)
            )
            assert all(a.status_code == 200 for a in answers)
            written += 50
        live = written * 2 * 20_000  # retained input and output of every invocation
        on_disk = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        wal = sum(f.stat().st_size for f in data.glob("*.log"))
        assert on_disk <= 4 * live, (on_disk, live, wal)
        assert wal <= 3 * (8 << 20), wal  # about the bound, not the whole history
    finally:
        quill.stop()
    assert shutil.disk_usage(tmp_path).free > 0
