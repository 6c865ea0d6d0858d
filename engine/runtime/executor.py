"""Executes what the partitions ask for, once it is durable (see ``engine.partition.effects``).

The partitions of one process share one store, so delivering a message to another of them stages
the target's command and the outbox delete in the same group commit: the hand-over is atomic and
a message is applied exactly once. A message for a partition that stopped stays in the outbox and
is delivered again when the process restarts. A message for another worker's partition goes
through ``engine.workers.delivery`` (deliver, dedup, truncate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.partition.commands import Message, TimerFired, recipient
from engine.partition.effects import ArmTimer, Complete, Deliver, Effect, Push, StartAttempt
from engine.runtime.timers import TimerService
from engine.storage import keys
from engine.storage.store import Store
from engine.telemetry.metrics import NO_METRICS, Metrics

if TYPE_CHECKING:
    from engine.invoker.invoker import Invoker
    from engine.partition.processor import Partition


class EffectExecutor:
    def __init__(
        self,
        store: Store,
        timers: TimerService,
        invoker: Invoker,
        local: Callable[[str], Partition | None],
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._store = store
        self._metrics = metrics  # completions, and the apply latency of deliveries and timer firings
        self._timers = timers
        self._invoker = invoker
        self._local = local  # the partition of an invocation id, when this process owns it
        # Sends a message to another worker's partition (source partition, outbox key, message).
        self.remote: Callable[[int, bytes, Message], None] | None = None

    def execute(self, partition: Partition, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Push):
                partition.push(effect.invocation_id, effect.attempt, effect.message_type, effect.payload)
            elif isinstance(effect, StartAttempt):
                self._invoker.start(partition, effect.invocation_id, effect.attempt)
            elif isinstance(effect, Complete):
                partition.waiters.complete(effect.invocation_id, effect.outcome)
                outcome = effect.outcome
                self._metrics.invocation_completed(
                    partition.id, outcome.target.service, outcome.completion.failure is None
                )
            elif isinstance(effect, Deliver):
                self._deliver(partition, effect)
            elif isinstance(effect, ArmTimer):
                self._arm(partition, effect)

    def _deliver(self, source: Partition, effect: Deliver) -> None:
        target = self._local(recipient(effect.message))
        if target is None:
            assert self.remote is not None, "a partition no process owns"
            self.remote(source.id, effect.outbox_key, effect.message)
            return
        if target.failure is not None:
            return  # kept in the outbox: redelivered after a restart recovers the target
        submit: Callable[[Message], asyncio.Future[Any]] = target.submit
        accepted = self._metrics.timed(submit, effect.message)
        accepted.add_done_callback(_retrieve)
        if not (accepted.done() and accepted.exception() is not None):
            self._store.delete(keys.OUTBOX, effect.outbox_key)

    def _arm(self, partition: Partition, effect: ArmTimer) -> None:
        timer = effect.timer
        self._timers.schedule(timer.fire_at, lambda: self._metrics.timed(partition.submit_detached, TimerFired(timer)))


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Nobody awaits a delivery's answer; a failure there already stopped the target, loudly."""
    if not done.cancelled():
        done.exception()
