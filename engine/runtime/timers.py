"""Wall-clock timers for partitions: one asyncio handle for the earliest deadline.

Timers are not persisted here: what they fire for is durable partition state (a scheduled
invocation's execution time), and partitions re-arm them on recovery. A callback that raises is
logged and never stops later timers from firing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

from engine.records import now_ms

log = logging.getLogger(__name__)


class TimerService:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def schedule(self, fire_at_ms: int, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (fire_at_ms, next(self._sequence), callback))
        if self._armed_for is None or fire_at_ms < self._armed_for:
            self._arm()

    @property
    def pending(self) -> int:
        """Timers waiting to fire."""
        return len(self._heap)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._heap.clear()
        self._handle = self._armed_for = None

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = self._armed_for = None
        if not self._heap:
            return
        loop = asyncio.get_running_loop()
        fire_at = self._heap[0][0]
        delay = max(0.0, (fire_at - self._clock()) / 1000)
        self._armed_for = fire_at
        self._handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed_for = None
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                log.exception("a timer callback failed")
        self._arm()
