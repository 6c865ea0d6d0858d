"""Callers waiting for an invocation's result (ingress ``/call`` and ``/attach``), per partition.

Not partition state: futures of connections that exist only in this process. The partition's
``Complete`` effect resolves them once the completion is durable; a partition that fails stop
fails them with a retryable error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.partition.types import Outcome


class Waiters:
    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._closed: Callable[[str], BaseException] | None = None

    def wait(self, invocation_id: str) -> asyncio.Future[Outcome]:
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self._closed is not None:
            waiter.set_exception(self._closed(invocation_id))
            return waiter
        self._waiting.setdefault(invocation_id, []).append(waiter)
        return waiter

    def forget(self, invocation_id: str, waiter: asyncio.Future[Outcome]) -> None:
        waiters = self._waiting.get(invocation_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[invocation_id]

    def complete(self, invocation_id: str, outcome: Outcome) -> None:
        for waiter in self._waiting.pop(invocation_id, ()):
            if not waiter.done():
                waiter.set_result(outcome)

    def close(self, error: Callable[[str], BaseException]) -> None:
        """Fail every waiter, now and from now on, with ``error(invocation_id)`` (a shutdown: the
        invocations go on after the restart, and the error names the one each caller waits for)."""
        self._closed = error
        waiting, self._waiting = self._waiting, {}
        for invocation_id, waiters in waiting.items():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error(invocation_id))

    def fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for waiters in waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
