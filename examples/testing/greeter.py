"""The services under test: a greeter that counts in a virtual object and journals a side effect."""

import restate

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, amount: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + amount
    ctx.set("total", total)
    return total


greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    visits = await ctx.object_call(add, key=name, arg=1)
    stamp = await ctx.run_typed("stamp", lambda: "✓")  # journaled: replays never run it again
    return f"Hello {name}! visit #{visits} {stamp}"


@greeter.handler()
async def shout(ctx: restate.Context, name: str) -> str:
    if not name:
        raise ValueError("nobody to shout at")  # a retryable error
    return name.upper()


app = restate.app(services=[greeter, counter])
