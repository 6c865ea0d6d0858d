"""A plain FastAPI app as a Dapr app: what ``daprd`` would call, here called by quill.

Served by uvicorn in its own process (``tests/integration/test_dapr_invoke.py``). Every echo
answers what arrived (method, path, raw query, headers, body) so tests see exactly what quill
forwarded.
"""

from __future__ import annotations

import gzip
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

app = FastAPI()
calls: Counter[str] = Counter()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/add")
async def add(request: Request) -> JSONResponse:
    args = await request.json()
    return JSONResponse(args["a"] + args["b"], headers={"x-math": "done"})


async def _echo(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.url.path,
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query": request.scope.get("query_string", b"").decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
        "body": (await request.body()).decode("utf-8", "replace"),
    }


@app.api_route("/api/v1/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await _echo(request), headers={"x-echo": request.query_params.get("x", "")})


@app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def echo_any(request: Request) -> JSONResponse:
    return JSONResponse(await _echo(request))


@app.put("/status/{code}")
async def status(code: int) -> Response:
    return Response(f"status {code}", status_code=code, media_type="text/plain", headers={"x-status": str(code)})


@app.get("/gzip")
async def gzipped() -> Response:
    # Already-encoded bytes: quill must pass them through, not decompress them.
    return Response(gzip.compress(b"hello, gzip"), headers={"content-encoding": "gzip"}, media_type="text/plain")


@app.post("/fail")
async def fail() -> Response:
    calls["fail"] += 1
    return JSONResponse({"error": "unavailable"}, status_code=503)


@app.get("/calls/{name}")
async def count(name: str) -> int:
    return calls[name]


@app.api_route("/admin/{rest:path}", methods=["GET", "POST"])
async def admin(rest: str) -> dict[str, str]:
    return {"admin": rest}


@app.get("/public/{rest:path}")
async def public(rest: str) -> dict[str, str]:
    return {"public": rest}
