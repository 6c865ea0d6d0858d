"""A Dapr actor host written with the official SDK (``dapr.ext.fastapi.DaprActor``).

quill calls it the way daprd does; its actors save state through quill's actor state API
(``DAPR_HTTP_ENDPOINT`` points the SDK at quill).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from dapr.actor import Actor, ActorId, ActorInterface, ActorProxy, Remindable, actormethod
from dapr.actor.runtime.config import ActorReentrancyConfig, ActorRuntimeConfig, ActorTypeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI


class CounterInterface(ActorInterface):
    @actormethod(name="Add")
    async def add(self, delta: int) -> int: ...

    @actormethod(name="Get")
    async def get(self) -> int: ...

    @actormethod(name="SlowAppend")
    async def slow_append(self, item: str) -> list[str]: ...

    @actormethod(name="Fail")
    async def fail(self) -> None: ...


class CounterActor(Actor, CounterInterface, Remindable):
    async def add(self, delta: int) -> int:
        _, value = await self._state_manager.try_get_state("count")
        value = (value or 0) + delta
        await self._state_manager.set_state("count", value)
        await self._state_manager.save_state()
        return value

    async def get(self) -> int:
        _, value = await self._state_manager.try_get_state("count")
        return value or 0

    async def slow_append(self, item: str) -> list[str]:
        """Read, yield, write: overlapping turns on one actor would lose items."""
        _, items = await self._state_manager.try_get_state("items")
        await asyncio.sleep(0.05)
        items = [*(items or []), item]
        await self._state_manager.set_state("items", items)
        await self._state_manager.save_state()
        return items

    async def fail(self) -> None:
        raise ValueError("counter refused")

    async def _bump(self, name: str) -> None:
        _, value = await self._state_manager.try_get_state(name)
        await self._state_manager.set_state(name, (value or 0) + 1)
        await self._state_manager.save_state()

    async def receive_reminder(
        self, name: str, state: bytes, due_time: timedelta, period: timedelta, ttl: timedelta | None = None
    ) -> None:
        await self._bump(f"reminded-{name}-{state.decode()}")

    async def tick(self, data: object) -> None:
        """A timer callback."""
        await self._bump(f"ticked-{data}")


deactivated: list[str] = []


class IdleInterface(ActorInterface):
    @actormethod(name="Get")
    async def get(self) -> int: ...


class IdleActor(Actor, IdleInterface):
    """Deactivated after 1 s idle (its per-type config); records deactivations for the test."""

    async def get(self) -> int:
        return 0

    async def _on_deactivate(self) -> None:
        deactivated.append(self.id.id)


class ReentrantInterface(ActorInterface):
    @actormethod(name="Outer")
    async def outer(self, depth: int) -> int: ...  # noqa: E704

    @actormethod(name="Inner")
    async def inner(self) -> int: ...


class ReentrantActor(Actor, ReentrantInterface):
    """Outer calls Inner on the same actor while holding its turn: deadlock unless reentrant."""

    async def outer(self, depth: int) -> int:
        """Recurses ``depth`` times into itself, then asks Inner."""
        proxy = ActorProxy.create("ReentrantActor", ActorId(self.id.id), ReentrantInterface)
        if depth > 0:
            return await proxy.Outer(depth - 1) + 1
        return await proxy.Inner()

    async def inner(self) -> int:
        return 40


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(
            actor_scan_interval=timedelta(milliseconds=200),
            actor_type_configs=[
                ActorTypeConfig("IdleActor", actor_idle_timeout=timedelta(seconds=1)),
                ActorTypeConfig("ReentrantActor", reentrancy=ActorReentrancyConfig(enabled=True, maxStackDepth=8)),
            ],
        )
    )
    await actors.register_actor(CounterActor)
    await actors.register_actor(IdleActor)
    await actors.register_actor(ReentrantActor)
    yield


app = FastAPI(lifespan=lifespan)
actors = DaprActor(app)


@app.get("/test/deactivated")
async def list_deactivated() -> list[str]:
    return deactivated
