"""Dapr actors on the engine: a call is an invocation of an exclusive object key.

An actor ``(type, id)`` is the object key ``("dapr-actor:" + type, id)``: turn-based concurrency is
the virtual-object lock with its durable FIFO inbox, and actor state lives in the object's state.
One attempt is one ``PUT {app}/actors/{type}/{id}/method/{method}`` to the app hosting the type,
the way daprd calls it; its answer is journaled as the invocation's output, so a call that was
accepted survives a crash and runs again on restart until the app answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.dapr.reminders import parse_duration_ms
from engine.dapr.targets import ACTOR_PREFIX, DEACTIVATE
from engine.errors import QuillError
from engine.invoker.attempt import AttemptResult
from engine.partition.commands import AttemptEnding
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import InvocationStatus

if TYPE_CHECKING:
    from engine.dapr.apps import DaprApps

log = logging.getLogger(__name__)

_DEFAULT_IDLE_MS = 60 * 60 * 1000  # daprd: actorIdleTimeout 60m
_DEFAULT_SCAN_MS = 30 * 1000  # daprd: actorScanInterval 30s


def hosting_app(apps: DaprApps, actor_type: str) -> str | None:
    """The base URL of the registered app whose ``/dapr/config`` lists ``actor_type``."""
    app = _host(apps, actor_type)
    return None if app is None else app.uri.rstrip("/")


def dapr_state_key(apps: DaprApps, service: str, actor_id: str, name: str) -> str:
    """Dapr's name for an actor's state entry, ``appId||actorType||actorId||key``, for operators."""
    actor_type = service[len(ACTOR_PREFIX) :]
    app = _host(apps, actor_type)
    return f"{app.app_id if app else ''}||{actor_type}||{actor_id}||{name}"


def _host(apps: DaprApps, actor_type: str) -> Any:
    for app in apps.apps.values():
        config = app.config or {}
        hosted = set(config.get("entities") or ())
        hosted.update(e for entry in config.get("entitiesConfig") or () for e in entry.get("entities") or ())
        if actor_type in hosted:
            return app
    return None


REENTRANCY_HEADER = "dapr-reentrancy-id"
# Beside an actor state entry with a TTL, its expiry (ms since epoch): "<name>\0ttl".
TTL_SUFFIX = b"\x00ttl"


def reentrant(apps: DaprApps, actor_type: str) -> bool:
    config = _type_config(apps, actor_type).get("reentrancy") or {}
    return bool(config.get("enabled"))


def reentrancy_limit(apps: DaprApps, actor_type: str) -> int:
    """How deep a reentrant call chain may go on one actor (Dapr's maxStackDepth, default 32)."""
    config = _type_config(apps, actor_type).get("reentrancy") or {}
    return int(config.get("maxStackDepth") or 32)


def _type_config(apps: DaprApps, actor_type: str) -> dict[str, Any]:
    """The app's ``/dapr/config`` for ``actor_type``: its ``entitiesConfig`` entry over the defaults."""
    for app in apps.apps.values():
        config = app.config or {}
        for entry in config.get("entitiesConfig") or ():
            if actor_type in (entry.get("entities") or ()):
                return {**config, **entry}
        if actor_type in (config.get("entities") or ()):
            return config
    return {}


def _config_ms(config: dict[str, Any], name: str, default: int) -> int:
    try:
        return parse_duration_ms(str(config[name])) if config.get(name) else default
    except ValueError:
        return default


class IdleActors:
    """Deactivates actors idle for their ``actorIdleTimeout`` (``DELETE /actors/{type}/{id}``).

    Activity is tracked in memory, as daprd does: after a restart an actor counts as inactive
    until it is called again. The deactivation itself is an exclusive invocation, so it waits for
    the actor's turn like any call.
    """

    def __init__(self, apps: DaprApps, deactivate: Callable[[str, str], Awaitable[None]]) -> None:
        self._apps = apps
        self._deactivate = deactivate
        self._last_used: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, actor_type: str, actor_id: str) -> None:
        self._last_used[(actor_type, actor_id)] = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._scan(), name="quill-actor-idle-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _scan(self) -> None:
        while True:
            intervals = [
                _config_ms(app.config or {}, "actorScanInterval", _DEFAULT_SCAN_MS) for app in self._apps.apps.values()
            ]
            # At most a second between looks, so an app registered later gets its own interval.
            await asyncio.sleep(min([*intervals, 1000]) / 1000)
            now = time.monotonic()
            for (actor_type, actor_id), used in list(self._last_used.items()):
                idle_ms = _config_ms(_type_config(self._apps, actor_type), "actorIdleTimeout", _DEFAULT_IDLE_MS)
                if (now - used) * 1000 >= idle_ms:
                    del self._last_used[(actor_type, actor_id)]
                    try:
                        await self._deactivate(actor_type, actor_id)
                    except QuillError as exc:  # e.g. storage refusing writes: keep scanning
                        log.warning("cannot deactivate actor %s/%s: %s", actor_type, actor_id, exc)


async def call_actor(apps: DaprApps, status: InvocationStatus, input_entry: bytes) -> AttemptResult:
    """One turn: the app's answer becomes the invocation's output (2xx value, else a failure)."""
    import aiohttp  # the apps' session imports it on first use: only the name is bound here

    actor_type = status.target.service[len(ACTOR_PREFIX) :]
    base = hosting_app(apps, actor_type)
    if base is None:
        return AttemptResult([], AttemptEnding.ERROR, failure=f"no registered app hosts actor type '{actor_type}'")
    if status.target.handler == DEACTIVATE:
        url = f"{base}/actors/{actor_type}/{status.target.key}"
        try:
            async with apps.session.delete(url) as response:
                await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc!r}")
        # An app that no longer holds the actor answers 500 "not activated": nothing to retry.
        return AttemptResult(
            [(MessageType.OUTPUT_COMMAND, pb.OutputCommandMessage(value=pb.Value()).SerializeToString())],
            AttemptEnding.END,
        )
    request = pb.InputCommandMessage.FromString(input_entry)
    headers = {h.key: h.value for h in request.headers if h.key.lower() in ("content-type", "dapr-reentrancy-id")}
    url = f"{base}/actors/{actor_type}/{status.target.key}/method/{status.target.handler}"
    try:
        async with apps.session.put(url, data=request.value.content, headers=headers) as response:
            body = await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc!r}")
    output = pb.OutputCommandMessage()
    if 200 <= response.status < 300:
        output.value.content = body
    else:
        output.failure.code = response.status
        output.failure.message = body.decode("utf-8", "replace")
    return AttemptResult([(MessageType.OUTPUT_COMMAND, output.SerializeToString())], AttemptEnding.END)
