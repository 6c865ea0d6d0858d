"""SDK-side workload for the benchmarks.

Served with ``hypercorn benchmarks.services:app --bind 127.0.0.1:PORT --workers 1``.
Hypercorn speaks HTTP/1.1 here, so the SDK announces REQUEST_RESPONSE mode at
discovery and every invocation is a single request/response exchange.
"""

from __future__ import annotations

import restate

bench = restate.Service("Bench")

# An explicit type hint spares run_typed from inspecting the lambda's (absent)
# return annotation on every call and pins the serde to plain JSON strings.
_STEP_OPTIONS: restate.RunOptions[str] = restate.RunOptions(type_hint=str)


@bench.handler()
async def noop(ctx: restate.Context, req: str) -> str:
    # No context calls: measures pure invoke/complete overhead of the server.
    return req


@bench.handler()
async def run(ctx: restate.Context, req: str) -> str:
    # One journaled side effect: adds one durable journal entry round trip.
    return await ctx.run_typed("step", lambda: req, _STEP_OPTIONS)


bench_object = restate.VirtualObject("BenchObject")


@bench_object.handler()
async def touch(ctx: restate.ObjectContext, req: str) -> str:
    # The key's lock, one state write: the per-key path (partition routing by key).
    ctx.set("last", req)
    return req


app = restate.app(services=[bench, bench_object])
