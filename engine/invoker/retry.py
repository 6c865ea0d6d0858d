"""Retry bookkeeping of failed attempts, kept in memory as Restate's invoker keeps it: after a
restart every running invocation simply starts a fresh attempt.

The count restarts whenever an attempt made progress (journaled something), so a long handler
that keeps moving is never paused for failures spread over its life.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

from engine.config import OnMaxAttempts, RetryPolicy


@dataclass
class RetryState:
    count: int = 0  # failed attempts since the journal last grew
    last_stored_at: float = field(default_factory=time.monotonic)
    last_failure: str | None = None
    paused: bool = False


class Verdict(Enum):
    RETRY = "retry"
    PAUSE = "pause"
    KILL = "kill"


def after_failure(
    retry: RetryState, policy: RetryPolicy, progressed: bool, failure: str | None, retry_after: float | None
) -> tuple[Verdict, float]:
    """Count one failed attempt; what to do next, and after how many seconds (for a retry)."""
    if progressed:
        retry.count, retry.last_stored_at = 0, time.monotonic()
    retry.count += 1
    retry.last_failure = failure
    if policy.max_attempts is not None and retry.count >= policy.max_attempts:
        if policy.on_max_attempts is OnMaxAttempts.KILL:
            return Verdict.KILL, 0.0
        retry.paused = True
        return Verdict.PAUSE, 0.0
    return Verdict.RETRY, retry_after if retry_after is not None else policy.delay(retry.count)
