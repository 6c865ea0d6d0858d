"""Dapr actors on the engine: a call is an invocation of an exclusive object key.

An actor ``(type, id)`` is the object key ``("dapr-actor:" + type, id)``: turn-based concurrency is
the virtual-object lock with its durable FIFO inbox, and actor state lives in the object's state.
One attempt is one ``PUT {app}/actors/{type}/{id}/method/{method}`` to the app hosting the type,
the way daprd calls it; its answer is journaled as the invocation's output, so a call that was
accepted survives a crash and runs again on restart until the app answers.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp

from engine.messages import AttemptResult
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType
from engine.records import InvocationStatus, Target

if TYPE_CHECKING:
    from engine.dapr_apps import DaprApps

ACTOR_PREFIX = "dapr-actor:"


def actor_target(actor_type: str, actor_id: str, method: str) -> Target:
    return Target(ACTOR_PREFIX + actor_type, method, actor_id)


def is_actor(target: Target) -> bool:
    return target.service.startswith(ACTOR_PREFIX)


def hosting_app(apps: DaprApps, actor_type: str) -> str | None:
    """The base URL of the registered app whose ``/dapr/config`` lists ``actor_type``."""
    for app in apps.apps.values():
        config = app.config or {}
        hosted = set(config.get("entities") or ())
        hosted.update(e for entry in config.get("entitiesConfig") or () for e in entry.get("entities") or ())
        if actor_type in hosted:
            return app.uri.rstrip("/")
    return None


async def call_actor(apps: DaprApps, status: InvocationStatus, input_entry: bytes) -> AttemptResult:
    """One turn: the app's answer becomes the invocation's output (2xx value, else a failure)."""
    actor_type = status.target.service[len(ACTOR_PREFIX) :]
    base = hosting_app(apps, actor_type)
    if base is None:
        return AttemptResult([], "error", failure=f"no registered app hosts actor type '{actor_type}'")
    request = pb.InputCommandMessage.FromString(input_entry)
    headers = {h.key: h.value for h in request.headers if h.key.lower() in ("content-type", "dapr-reentrancy-id")}
    url = f"{base}/actors/{actor_type}/{status.target.key}/method/{status.target.handler}"
    try:
        async with apps.session.put(url, data=request.value.content, headers=headers) as response:
            body = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return AttemptResult([], "error", failure=f"cannot reach {url}: {exc!r}")
    output = pb.OutputCommandMessage()
    if 200 <= response.status < 300:
        output.value.content = body
    else:
        output.failure.code = response.status
        output.failure.message = body.decode("utf-8", "replace")
    return AttemptResult([(MessageType.OUTPUT_COMMAND, output.SerializeToString())], "end")
