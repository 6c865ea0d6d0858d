"""Test-only side channel of the SDK service process.

Handlers record events (a ctx.run side effect, a gate entered) here, and tests read them or open
gates through ``/test/...`` routes served next to the Restate endpoint. Waiting is event-driven:
``/test/wait`` returns as soon as a counter reaches the requested value.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]

counters: Counter[str] = Counter()
published: dict[str, str] = {}
_changed: asyncio.Condition | None = None
_gates: dict[str, asyncio.Event] = {}


def _condition() -> asyncio.Condition:
    global _changed
    if _changed is None:
        _changed = asyncio.Condition()
    return _changed


async def record(name: str) -> int:
    """Count one occurrence of ``name``; returns the new count."""
    async with _condition():
        counters[name] += 1
        _condition().notify_all()
        return counters[name]


async def publish(key: str, value: str) -> None:
    """Hand a value (e.g. an awakeable id) to the test."""
    async with _condition():
        published[key] = value
        _condition().notify_all()


def gate(name: str) -> asyncio.Event:
    return _gates.setdefault(name, asyncio.Event())


async def _wait(prefix: str, total: int, timeout: float) -> int:
    def reached() -> bool:
        return sum(v for k, v in counters.items() if k.startswith(prefix)) >= total

    async with _condition():
        await asyncio.wait_for(_condition().wait_for(reached), timeout)
    return sum(v for k, v in counters.items() if k.startswith(prefix))


def with_control_routes(app: ASGIApp) -> ASGIApp:
    async def combined(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/test/"):
            await app(scope, receive, send)
            return
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        action = scope["path"][len("/test/") :]
        if action == "counters":
            prefix = query.get("prefix", "")
            body: Any = {k: v for k, v in counters.items() if k.startswith(prefix)}
        elif action == "wait":
            body = await _wait(query.get("prefix", ""), int(query["total"]), float(query.get("timeout", "30")))
        elif action == "published":
            key = query["key"]
            async with _condition():
                await asyncio.wait_for(
                    _condition().wait_for(lambda: key in published), float(query.get("timeout", "30"))
                )
            body = published[key]
        elif action == "open":
            gate(query["name"]).set()
            body = "opened"
        else:
            body = None
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if body is not None else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return combined
