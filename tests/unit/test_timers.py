"""The timer service fires due callbacks in time order; one that raises stops nothing."""

from __future__ import annotations

import asyncio

import pytest

from engine.runtime.timers import TimerService


async def test_a_raising_timer_callback_does_not_stop_later_timers(caplog: pytest.LogCaptureFixture) -> None:
    now = 1_000_000
    timers = TimerService(clock=lambda: now)
    fired: list[int] = []
    last: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def broken() -> None:
        fired.append(2)
        raise RuntimeError("a bug in a timer callback")

    timers.schedule(now - 1, lambda: fired.append(1))
    timers.schedule(now, broken)
    timers.schedule(now, lambda: (fired.append(3), last.set_result(None)))
    await asyncio.wait_for(last, 5)
    assert fired == [1, 2, 3]
    assert "a timer callback failed" in caplog.text
    # Timers scheduled afterwards still get armed.
    again: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    timers.schedule(now, lambda: again.set_result(None))
    await asyncio.wait_for(again, 5)
    timers.close()
