"""``POST /query``: the SQL introspection endpoint the CLI reads invocations and state with."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from admin.bodies import Query, json_body
from admin.documented import errors
from engine import Engine

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def query_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.post("/query", operation_id="query", responses=errors(400, 415, 422, 500, 503))
    async def query(request: Request) -> Response:
        # DuckDB and Arrow are imported on the first query: a third of a second at start-up that
        # nothing else needs.
        from admin.sql import arrow_stream, json_rows, run_query

        body = await json_body(request, Query)
        table = await run_query(engine, body.query)
        # JSON only when asked for: the CLI sends `accept: */*` for the queries it decodes as
        # Arrow, and JSON there breaks it.
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"rows": json_rows(table)})
        return Response(arrow_stream(table), media_type=ARROW_STREAM)

    return router
