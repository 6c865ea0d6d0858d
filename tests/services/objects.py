"""Virtual objects, workflows, timers, calls and awakeables: the SDK surface of issue 3."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate.exceptions import TerminalError

from tests.services import control

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int)) or 0
    value += delta
    ctx.set("value", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return (await ctx.get("value", type_hint=int)) or 0


@counter.handler()
async def append(ctx: restate.ObjectContext, item: str) -> list[str]:
    """Read, wait, write: concurrent runs on one key would lose items."""
    items = (await ctx.get("items", type_hint=list[str])) or []
    await ctx.sleep(timedelta(milliseconds=100))
    items.append(item)
    ctx.set("items", items)
    return items


@counter.handler()
async def hold(ctx: restate.ObjectContext, gate: str) -> str:
    """Holds the key's lock until the test opens ``gate``."""

    async def wait() -> None:
        await control.record(f"holding:{ctx.key()}")
        await control.gate(gate).wait()

    await ctx.run_typed("hold", wait)
    return "released"


@counter.handler()
async def describe(ctx: restate.ObjectContext) -> dict[str, object]:
    return {"keys": sorted(await ctx.state_keys()), "value": await ctx.get("value", type_hint=int)}


@counter.handler()
async def clear(ctx: restate.ObjectContext, name: str) -> None:
    if name == "*":
        ctx.clear_all()
    else:
        ctx.clear(name)


@counter.handler()
async def tag(ctx: restate.ObjectContext, label: str) -> None:
    ctx.set("label", label)


timers = restate.Service("Timers")


@timers.handler()
async def sleep(ctx: restate.Context, millis: int) -> str:
    await ctx.run_typed("before", control.record, name=f"sleeping:{ctx.request().id}")
    await ctx.sleep(timedelta(milliseconds=millis))
    await ctx.run_typed("woke", control.record, name=f"woke:{ctx.request().id}")
    return f"slept {millis}ms"


caller = restate.Service("Caller")


@caller.handler()
async def call_counter(ctx: restate.Context, key: str) -> int:
    return await ctx.object_call(add, key, 5)


@caller.handler()
async def send_marks(ctx: restate.Context, label: str) -> str:
    ctx.service_send(mark, f"{label}-later", send_delay=timedelta(milliseconds=300))
    ctx.service_send(mark, f"{label}-now")
    return "sent"


@caller.handler()
async def mark(ctx: restate.Context, label: str) -> None:
    await ctx.run_typed("mark", control.record, name=f"marked:{label}")


@caller.handler()
async def call_failing(ctx: restate.Context) -> str:
    try:
        await ctx.service_call(refuse, None)
    except TerminalError as error:
        return f"callee failed: {error.status_code} {error.message}"
    return "unexpected success"


@caller.handler()
async def refuse(ctx: restate.Context) -> str:
    raise TerminalError("refused", status_code=403)


@caller.handler()
async def wait_for_awakeable(ctx: restate.Context, label: str) -> str:
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    await ctx.run_typed("publish", control.publish, key=label, value=awakeable_id)
    value = await promise
    await ctx.run_typed("awakened", control.record, name=f"awakened:{label}:{value}")
    return f"got {value}"


@caller.handler()
async def resolve_awakeable(ctx: restate.Context, awakeable_id: str) -> None:
    ctx.resolve_awakeable(awakeable_id, "from a handler")


@caller.handler()
async def reject_awakeable(ctx: restate.Context, awakeable_id: str) -> None:
    ctx.reject_awakeable(awakeable_id, "nope", 418)


signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> str:
    await ctx.run_typed("started", control.record, name=f"signup-run:{ctx.key()}")
    ctx.set("email", email)
    code = await ctx.promise("confirm", type_hint=str).value()
    await ctx.run_typed("done", control.record, name=f"signup-done:{ctx.key()}:{code}")
    return f"{email} confirmed with {code}"


@signup.handler()
async def confirm(ctx: restate.WorkflowSharedContext, code: str) -> None:
    await ctx.promise("confirm", type_hint=str).resolve(code)


@signup.handler()
async def peek(ctx: restate.WorkflowSharedContext) -> str:
    value = await ctx.promise("confirm", type_hint=str).peek()
    return value if value is not None else "pending"


@caller.handler()
async def cancellable(ctx: restate.Context, label: str) -> str:
    """Sleeps for a minute unless cancelled; a cancellation runs a compensation step."""
    await ctx.run_typed("publish", control.publish, key=label, value=ctx.request().id)
    try:
        await ctx.sleep(timedelta(minutes=1))
    except TerminalError:
        await ctx.run_typed("compensate", control.record, name=f"compensated:{label}")
        raise
    return "not cancelled"


@caller.handler()
async def send_then_attach(ctx: restate.Context, key: str) -> int:
    """One-way send with an idempotency key, then attach to its result by invocation id."""
    handle = ctx.object_send(add, key, 7, idempotency_key=f"attach-{key}")
    return await ctx.attach_invocation(await handle.invocation_id(), type_hint=int)


@caller.handler()
async def call_twice_idempotently(ctx: restate.Context, key: str) -> list[int]:
    """Two calls with one idempotency key: the second gets the first's result."""
    first = await ctx.object_call(add, key, 1, idempotency_key=f"twice-{key}")
    second = await ctx.object_call(add, key, 1, idempotency_key=f"twice-{key}")
    return [first, second]


@caller.handler()
async def call_cancellable(ctx: restate.Context, label: str) -> str:
    """Awaits a call to ``cancellable``: cancelling this invocation must cancel that one too."""
    return await ctx.service_call(cancellable, label)


services = [counter, timers, caller, signup]
