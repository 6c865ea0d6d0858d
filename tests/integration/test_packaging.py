"""The wheel alone serves: every module imported at run time is a declared dependency.

Builds quill's wheel, installs it into a fresh virtual environment without any extras (so no
test dependency can hide a missing one) and runs ``quill serve`` until ``/health`` answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, Process, free_port


@pytest.mark.timeout(400)  # a fresh venv with every dependency: minutes on a busy machine
def test_the_wheel_installs_and_serves_without_extras(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("quill-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, cwd=tmp_path)
    ingress, admin = free_port(), free_port()
    server = Process(
        [
            str(venv / "bin" / "quill"),
            "serve",
            "--ingress-port",
            str(ingress),
            "--admin-port",
            str(admin),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        ready_marker="quill serving",
        cwd=tmp_path,  # not the repository: only the installed package may be imported
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{admin}/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ingress}/restate/health").status_code == 200
    finally:
        server.stop()
