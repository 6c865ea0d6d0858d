"""Restate SDK services used by the integration tests (served with hypercorn)."""

from __future__ import annotations

import restate
from restate.exceptions import TerminalError

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def counted(ctx: restate.Context, name: str) -> str:
    count = await ctx.run_typed("count", lambda: 1)
    return f"Hello {name} #{count}"


@greeter.handler()
async def fail(ctx: restate.Context, name: str) -> str:
    raise TerminalError(f"no greeting for {name}", status_code=409)


app = restate.app(services=[greeter])
