"""``/invocations/{id}``: inspect, cancel, kill, purge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from admin.introspect import INVOCATION_TIMES, invocation_row
from engine.engine import Engine
from engine.records import timestamp


def invocations_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/invocations/{invocation_id}")
    async def get_invocation(invocation_id: str) -> dict[str, Any]:
        status, _ = engine.inspect_invocation(invocation_id)
        row = invocation_row(engine, status)
        return {k: timestamp(v) if k in INVOCATION_TIMES and v is not None else v for k, v in row.items()}

    @router.patch("/invocations/{invocation_id}/cancel", status_code=202)
    async def cancel(invocation_id: str) -> Response:
        await engine.terminate(invocation_id, kill=False)
        return Response(status_code=202)

    @router.patch("/invocations/{invocation_id}/kill")
    async def kill(invocation_id: str) -> Response:
        await engine.terminate(invocation_id, kill=True)
        return Response(status_code=200)

    @router.patch("/invocations/{invocation_id}/pause")
    async def pause(invocation_id: str) -> Response:
        await engine.pause(invocation_id)
        return Response(status_code=200)

    @router.patch("/invocations/{invocation_id}/resume")
    async def resume(invocation_id: str) -> Response:
        engine.invoker.retries.pop(invocation_id, None)  # a fresh start: the retry budget too
        await engine.pause(invocation_id, resume=True)
        return Response(status_code=200)

    @router.patch("/invocations/{invocation_id}/purge")
    async def purge(invocation_id: str) -> Response:
        await engine.purge(invocation_id)
        return Response(status_code=200)

    return router
