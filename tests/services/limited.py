"""A service for the flow-control tests: handlers that hold their attempt, to observe how many run.

``hold`` waits at a gate the test opens (no journal entry: it holds the attempt itself, as the
reference's ``asyncio.sleep`` handler did); ``busy`` holds it for a while; ``nap`` suspends on a
durable sleep. Each records when it entered, in order, so a test can await it and check FIFO.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import restate

from tests.services import control
from tests.services.objects import services as object_services

limited = restate.Service("Limited")


@limited.handler()
async def hold(ctx: restate.Context, gate: str) -> str:
    order = await control.record("entered")
    await control.record(f"entered:{gate}")
    await control.publish(f"order:{gate}", str(order))
    await control.gate(gate).wait()
    return gate


@limited.handler()
async def busy(ctx: restate.Context, millis: int) -> int:
    await control.record("busy")
    await asyncio.sleep(millis / 1000)
    return millis


@limited.handler()
async def nap(ctx: restate.Context, label: str) -> str:
    """Enters, suspends on a durable sleep (request/response mode suspends at once), finishes."""
    await ctx.run_typed("entered", control.record, name=f"napping:{label}")
    await ctx.sleep(timedelta(milliseconds=300))
    return f"rested {label}"


app = control.with_control_routes(restate.app(services=[limited, *object_services]))
