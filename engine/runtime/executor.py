"""Executes what the partitions ask for, once it is durable (see ``engine.partition.effects``).

In the embedded mode every partition shares one store, so delivering a message to another
partition stages the target's command and the outbox delete in the same group commit: the
hand-over is atomic and a message is applied exactly once. A message for a partition that
stopped stays in the outbox and is delivered again when the process restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.partition.commands import TimerFired, recipient
from engine.partition.effects import ArmTimer, Complete, Deliver, Effect, Push, StartAttempt
from engine.runtime.timers import TimerService
from engine.storage import keys
from engine.storage.store import Store

if TYPE_CHECKING:
    from engine.invoker.invoker import Invoker
    from engine.partition.processor import Partition


class EffectExecutor:
    def __init__(self, store: Store, timers: TimerService, invoker: Invoker, route: Callable[[str], Partition]) -> None:
        self._store = store
        self._timers = timers
        self._invoker = invoker
        self._route = route  # the partition owning an invocation id

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Push):
                partition.push(effect.invocation_id, effect.attempt, effect.message_type, effect.payload)
            elif isinstance(effect, StartAttempt):
                self._invoker.start(partition, effect.invocation_id, effect.attempt)
            elif isinstance(effect, Complete):
                partition.waiters.complete(effect.invocation_id, effect.outcome)
            elif isinstance(effect, Deliver):
                self._deliver(effect)
            elif isinstance(effect, ArmTimer):
                self._arm(partition, effect)

    def _deliver(self, effect: Deliver) -> None:
        target = self._route(recipient(effect.message))
        if target.failure is not None:
            return  # kept in the outbox: redelivered after a restart recovers the target
        accepted = target.submit(effect.message)
        accepted.add_done_callback(_retrieve)
        if not (accepted.done() and accepted.exception() is not None):
            self._store.delete(keys.OUTBOX, effect.outbox_key)

    def _arm(self, partition: Partition, effect: ArmTimer) -> None:
        timer = effect.timer
        self._timers.schedule(timer.fire_at, lambda: partition.submit_detached(TimerFired(timer)))


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Nobody awaits a delivery's answer; a failure there already stopped the target, loudly."""
    if not done.cancelled():
        done.exception()
