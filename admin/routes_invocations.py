"""``/invocations/{id}``: inspect, cancel, kill, purge, pause, resume; and their batch forms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from admin.bodies import BatchInvocations, json_body
from admin.documented import OPERATOR, errors
from admin.introspect import SYS_INVOCATION, TIME, Registry, invocation_row
from admin.version import SERVER_VERSION
from engine import BadRequest, Conflict, Engine, NotFound, OperatorOutcome, QuillError, timestamp

_BATCH_LIMIT = 1000
_TIMES = frozenset(c.name for c in SYS_INVOCATION if c.type == TIME)
_DELETE_MODES = {mode: mode.lower() for mode in ("Cancel", "cancel", "Kill", "kill", "Purge", "purge")}


def invocations_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/invocations/{invocation_id}", operation_id="get_invocation", responses=errors(400, 404))
    async def get_invocation(invocation_id: str) -> dict[str, Any]:
        status, _ = await engine.inspect_invocation(invocation_id)
        row = invocation_row(status, await engine.retry_state(status.id), Registry.of(engine, SERVER_VERSION))
        return {k: timestamp(v) if k in _TIMES and v is not None else v for k, v in row.items()}

    @router.patch(
        "/invocations/{invocation_id}/cancel",
        status_code=202,
        operation_id="cancel_invocation",
        responses={200: {"description": "Cancelled at once: it had not started"}, **OPERATOR},
    )
    async def cancel(invocation_id: str) -> Response:
        """200 when done at once (it had not started: it is gone), 202 when the running handler
        was signalled."""
        outcome = await engine.terminate(invocation_id, kill=False)
        return Response(status_code=200 if outcome is OperatorOutcome.DONE else 202)

    @router.patch("/invocations/{invocation_id}/kill", operation_id="kill_invocation", responses=OPERATOR)
    async def kill(invocation_id: str) -> Response:
        await engine.terminate(invocation_id, kill=True)
        return Response(status_code=200)

    @router.patch("/invocations/{invocation_id}/pause", operation_id="pause_invocation", responses=OPERATOR)
    async def pause(invocation_id: str) -> Response:
        await engine.pause(invocation_id)
        return Response(status_code=200)

    @router.patch(
        "/invocations/{invocation_id}/resume",
        operation_id="resume_invocation",
        responses=errors(400, 404, 409, 425, 503),
    )
    async def resume(invocation_id: str) -> Response:
        await engine.resume(invocation_id)
        return Response(status_code=200)

    @router.delete(
        "/invocations/{invocation_id}",
        status_code=202,
        operation_id="delete_invocation",
        responses=errors(400, 404, 405, 409, 500),
    )
    async def delete_invocation(invocation_id: str, mode: str = "cancel") -> Response:
        """The older form of cancel / kill / purge: always 202, as in Restate, which does not look
        whether the invocation exists or can be purged."""
        run = _DELETE_MODES.get(mode)
        if run is None:
            raise BadRequest(
                f"Failed to deserialize query string: mode: unknown variant `{mode}`,"
                " expected one of `Cancel`, `cancel`, `Kill`, `kill`, `Purge`, `purge`"
            )
        try:
            await operations[run](invocation_id)
        except (NotFound, Conflict):
            pass
        return Response(status_code=202)

    operations: dict[str, Callable[[str], Awaitable[Any]]] = {
        "cancel": lambda i: engine.terminate(i, kill=False),
        "kill": lambda i: engine.terminate(i, kill=True),
        "purge": engine.purge,
        "pause": engine.pause,
        "resume": engine.resume,
    }

    @router.post(
        "/internal/invocations_batch_operations/{operation}",
        operation_id="batch_invocation_operation",
        responses=errors(400, 404, 415, 422),
    )
    async def batch(operation: str, request: Request) -> dict[str, Any]:
        run = operations.get(operation)
        if run is None:
            raise NotFound(f"Unknown batch operation '{operation}'")
        body = await json_body(request, BatchInvocations)
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

    @router.patch(
        "/invocations/{invocation_id}/restart-as-new",
        operation_id="restart_as_new_invocation",
        responses=errors(400, 404, 409, 410, 422, 425, 503),
    )
    async def restart_as_new(invocation_id: str, request: Request) -> dict[str, Any]:
        if request.query_params.get("from", "0") not in ("0", ""):
            raise BadRequest("quill restarts invocations from the start only ('from' must be 0)")
        return {"new_invocation_id": str(await engine.restart_as_new(invocation_id))}

    @router.patch("/invocations/{invocation_id}/purge", operation_id="purge_invocation", responses=OPERATOR)
    async def purge(invocation_id: str) -> Response:
        await engine.purge(invocation_id)
        return Response(status_code=200)

    return router
