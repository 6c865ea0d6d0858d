"""One service, ``Thing``, served as a plain service by ``as_service`` and as a virtual object by
``as_object``: registering both is a breaking change (tests/integration/test_registration.py)."""

from __future__ import annotations

import restate

service = restate.Service("Thing")


@service.handler()
async def hello(ctx: restate.Context, name: str) -> str:
    return f"hello {name}"


virtual_object = restate.VirtualObject("Thing")


@virtual_object.handler(name="hello")
async def hello_object(ctx: restate.ObjectContext, name: str) -> str:
    return f"hello {name} from {ctx.key()}"


as_service = restate.app(services=[service])
as_object = restate.app(services=[virtual_object])
