"""``/invocations/{id}``: inspect, cancel, kill, purge, pause, resume; and their batch forms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from admin.bodies import BatchInvocations, decode_body
from admin.introspect import INVOCATION_TIMES, invocation_row
from engine import BadRequest, Engine, NotFound, OperatorOutcome, QuillError, timestamp

_BATCH_LIMIT = 1000


def invocations_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/invocations/{invocation_id}")
    async def get_invocation(invocation_id: str) -> dict[str, Any]:
        status, _ = await engine.inspect_invocation(invocation_id)
        row = invocation_row(engine, status, await engine.retry_state(status.id))
        return {k: timestamp(v) if k in INVOCATION_TIMES and v is not None else v for k, v in row.items()}

    @router.patch("/invocations/{invocation_id}/cancel", status_code=202)
    async def cancel(invocation_id: str) -> Response:
        # As Restate: 202 when the cancellation was delivered to a running handler, 200 when an
        # invocation that had not started (scheduled, inboxed, waiting for a slot) is done with.
        delivered = await engine.terminate(invocation_id, kill=False) is OperatorOutcome.SIGNALLED
        return Response(status_code=202 if delivered else 200)

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
        await engine.resume(invocation_id)
        return Response(status_code=200)

    operations: dict[str, Callable[[str], Awaitable[Any]]] = {
        "cancel": lambda i: engine.terminate(i, kill=False),
        "kill": lambda i: engine.terminate(i, kill=True),
        "purge": engine.purge,
        "pause": engine.pause,
        "resume": engine.resume,
    }

    @router.post("/internal/invocations_batch_operations/{operation}")
    async def batch(operation: str, request: Request) -> dict[str, Any]:
        run = operations.get(operation)
        if run is None:
            raise NotFound(f"Unknown batch operation '{operation}'")
        body = decode_body(await request.body(), BatchInvocations, "batch operation")
        if len(body.invocation_ids) > _BATCH_LIMIT:
            raise BadRequest(f"A batch holds at most {_BATCH_LIMIT} invocations, got {len(body.invocation_ids)}")

        async def one(invocation_id: str) -> str | None:
            try:
                await run(invocation_id)
            except QuillError as error:
                return error.message
            return None

        errors = await asyncio.gather(*(one(i) for i in body.invocation_ids))
        return {
            "succeeded": [i for i, error in zip(body.invocation_ids, errors, strict=True) if error is None],
            "failed": [
                {"invocation_id": i, "error": error}
                for i, error in zip(body.invocation_ids, errors, strict=True)
                if error is not None
            ],
        }

    @router.patch("/invocations/{invocation_id}/restart-as-new")
    async def restart_as_new(invocation_id: str, request: Request) -> dict[str, Any]:
        if request.query_params.get("from", "0") not in ("0", ""):
            raise BadRequest("quill restarts invocations from the start only ('from' must be 0)")
        return {"new_invocation_id": str(await engine.restart_as_new(invocation_id))}

    @router.patch("/invocations/{invocation_id}/purge")
    async def purge(invocation_id: str) -> Response:
        await engine.purge(invocation_id)
        return Response(status_code=200)

    return router
