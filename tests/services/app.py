"""Restate SDK services for the integration tests, served with hypercorn as a real deployment."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate.exceptions import TerminalError

from tests.services import control
from tests.services.objects import services as object_services

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def counted(ctx: restate.Context, name: str) -> str:
    count = await ctx.run_typed("count", control.record, name=f"counted:{name}")
    return f"Hello {name} #{count}"


@greeter.handler()
async def fail(ctx: restate.Context, name: str) -> str:
    raise TerminalError(f"no greeting for {name}", status_code=409)


@greeter.handler()
async def flaky(ctx: restate.Context, name: str) -> str:
    """Fails with a retryable error until the third attempt."""
    attempt = await control.record(f"flaky:{name}")
    if attempt < 3:
        raise ValueError(f"attempt {attempt} fails")
    return f"{name} after {attempt} attempts"


@greeter.handler()
async def stubborn(ctx: restate.Context, name: str) -> str:
    """Fails with a retryable error until the fourth attempt."""
    attempt = await control.record(f"stubborn:{name}")
    if attempt < 4:
        raise ValueError(f"attempt {attempt} fails")
    return f"{name} after {attempt} attempts"


@greeter.handler()
async def two_steps(ctx: restate.Context, name: str) -> int:
    """Two runs; the plain record counts attempts (one in bidi mode, three in request/response)."""
    await control.record(f"attempt:{name}")
    first = await ctx.run_typed("first", lambda: 1)
    second = await ctx.run_typed("second", lambda: 2)
    return first + second


@greeter.handler()
async def nap(ctx: restate.Context, millis: int) -> str:
    """A sleep; the plain record counts attempts (a suspension makes it two)."""
    await control.record(f"nap-attempt:{ctx.request().id}")
    await ctx.sleep(timedelta(milliseconds=millis))
    return "rested"


@greeter.handler()
async def headers(ctx: restate.Context) -> dict[str, str]:
    return dict(ctx.request().headers)


durable = restate.Service("Durable")


@durable.handler()
async def process(ctx: restate.Context, name: str) -> int:
    """A side effect, then a gate the test opens, then a second side effect."""
    count = await ctx.run_typed("count", control.record, name=f"count:{name}")

    async def wait_at_gate() -> None:
        await control.record(f"entered:{name}")
        await control.gate(name.split("-")[0]).wait()

    await ctx.run_typed("gate", wait_at_gate)  # gate named by the prefix: "crash-3" waits at "crash"
    await ctx.run_typed("done", control.record, name=f"done:{name}")
    return count


@durable.handler()
async def slow_step(ctx: restate.Context, name: str) -> str:
    """One side effect that is still running at shutdown: quill must let it finish, not run it twice."""

    async def step() -> int:
        count = await control.record(f"slow-run:{name}")
        await control.gate(name.split("-")[0]).wait()  # "drain-3" waits until the test opens "drain"
        return count

    count = await ctx.run_typed("slow", step)
    # A second step the attempt cannot finish at once: callers are still waiting at shutdown.
    await ctx.sleep(timedelta(milliseconds=300))
    return f"{name} ran {count}"


app = control.with_control_routes(restate.app(services=[greeter, durable, *object_services]))
