"""The same commands applied to two fresh stores give the same bytes: what lets a replica replay
a partition's log. The two runs are separate processes with different hash seeds, so neither set
nor dict ordering nor ``random`` can leak into what apply writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def _digest(path: Path, hash_seed: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tests.unit.partition.scenario", str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_apply_is_deterministic(tmp_path: Path) -> None:
    first = _digest(tmp_path / "a", "1")
    second = _digest(tmp_path / "b", "2")
    assert len(first) == 64
    assert first == second
