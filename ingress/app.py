"""The ingress ASGI application (port 8080).

A plain ASGI callable rather than a framework router: this is the hot path of every invocation,
and the routes are few and fixed. Status codes and messages follow the real Restate server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from engine import (
    SCOPED_VIRTUAL_OBJECT,
    BadRequest,
    Engine,
    Failure,
    InvocationFailure,
    InvocationId,
    InvocationRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    Outcome,
    PayloadTooLarge,
    QuillError,
    Target,
    Unavailable,
    now_ms,
    parse_awakeable_id,
    parse_duration,
    timestamp,
)
from engine.records import timestamp_nanos
from engine.telemetry.metrics import IngressStatus, RpcType
from ingress.dapr import DaprIngress
from ingress.paths import BAD_PATH, Route, metric_labels, parse_invocation_path, split_path
from ingress.responses import (
    BodyLimitExceeded,
    ClientGone,
    Send,
    read_chunks,
    respond,
    respond_error,
    respond_json,
)
from ingress.results import target_from_body, target_from_path
from ingress.scopes import LIMIT_KEY_WITHOUT_SCOPE, limit_key_of, scope_of
from ingress.validation import validate_input

log = logging.getLogger(__name__)
Receive = Callable[[], Awaitable[dict[str, Any]]]

# Headers Restate leaves out of the journaled input: hop-by-hop ones and idempotency controls.
_SKIPPED_HEADERS = frozenset({b"connection", b"host", b"idempotency-key", b"idempotency-expires"})
_WORKFLOW_IDEMPOTENCY = (
    "cannot use the idempotency key with workflow handlers."
    " The handler invocation will already be idempotent by the workflow key itself."
)
_BAD_AWAKEABLE_PATH = "bad path, expected either /restate/awakeables/:id/resolve or /restate/awakeables/:id/reject"


class IngressApp:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._limit = engine.config.request_size_limit
        self._dapr = DaprIngress(engine)  # the Dapr sidecar API under /v1.0/

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except QuillError as error:
            id_header = [(b"x-restate-id", error.invocation_id.encode())] if error.invocation_id else []
            await respond_error(send, error, id_header)
        except Exception:  # noqa: BLE001 - a bug must still answer in Restate's error shape
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            await respond_error(send, QuillError("internal error, see the server log"))

    async def _route(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/v1.0/"):
            await self._dapr(scope, receive, send)
            return
        segments = split_path(scope.get("raw_path") or scope["path"].encode())
        method = scope["method"]
        if segments == ["restate", "health"]:
            if (failure := self._engine.storage_failure) is not None:
                raise Unavailable(f"storage unavailable: {failure}")
            await respond_json(send, 200, {"services": sorted(self._engine.schema.services)})
            return
        if len(segments) >= 2 and segments[0] == "restate" and segments[1] not in ("call", "send"):
            await self._restate_route(method, segments, scope, receive, send)
            return
        if method not in ("GET", "POST"):
            raise MethodNotAllowed("method not allowed")
        await self._invocation(segments, scope, receive, send)

    async def _invocation(
        self, segments: list[str], scope: dict[str, Any], receive: Receive, send: Send, flow_scope: str | None = None
    ) -> None:
        """A call or send (in the scope ``flow_scope`` names, when scoped), counted and timed as
        Restate counts them (restate_ingress_requests_total)."""
        metrics = self._engine.metrics
        metrics.ingress_admitted()
        started = time.perf_counter()
        route: Route | None = None
        status = IngressStatus.REQUEST_ERROR
        try:
            route = parse_invocation_path(segments, self._engine.schema)
            if flow_scope is not None:
                flow_scope = scope_of(flow_scope)
                if self._engine.schema.services[route.target.service].manifest.ty == "VIRTUAL_OBJECT":
                    raise BadRequest(SCOPED_VIRTUAL_OBJECT)
            status = await self._invoke(route, flow_scope, scope, receive, send)
        finally:
            service, is_send = (
                (route.target.service, route.send) if route else metric_labels(segments, self._engine.schema)
            )
            rpc_type = RpcType.SEND if is_send else RpcType.CALL
            metrics.ingress_finished(status, service, rpc_type, time.perf_counter() - started)

    async def _invoke(
        self, route: Route, flow_scope: str | None, scope: dict[str, Any], receive: Receive, send: Send
    ) -> IngressStatus:
        """Call or send ``route`` (in ``flow_scope``, when scoped)."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        limit_key = limit_key_of(scope)
        if limit_key is not None and flow_scope is None:
            raise BadRequest(LIMIT_KEY_WITHOUT_SCOPE)
        execution_time = _execution_time(query, route.send)
        idempotency_key = _header(scope, b"idempotency-key")
        if idempotency_key is not None:
            settings = self._engine.invocation_settings(route.target.service, route.target.handler)
            if settings is not None and settings.workflow_run:
                raise BadRequest(_WORKFLOW_IDEMPOTENCY)
        if (too_large := _declared_length(scope)) is not None and too_large > self._limit:
            await respond(send, 413, b"length limit exceeded", [(b"content-type", b"text/plain; charset=utf-8")])
            return IngressStatus.REQUEST_ERROR
        chunks = await self._read_chunks(receive)
        _, handler = self._engine.schema.resolve(route.target.service, route.target.handler)
        validate_input(handler.input, _header(scope, b"content-type"), bool(chunks))
        request = InvocationRequest(
            target=route.target,
            body=chunks,  # emptied by the engine once journaled
            headers=self._input_headers(scope),
            execution_time=execution_time,
            idempotency_key=idempotency_key,
            scope=flow_scope,
            limit_key=limit_key,
        )
        if route.send:
            invocation_id, created = await self._engine.send(request)
            accepted = {"invocationId": str(invocation_id), "status": "Accepted" if created else "PreviouslyAccepted"}
            if execution_time is not None:
                accepted["executionTime"] = timestamp_nanos(execution_time)
            await respond_json(send, 202, accepted, [(b"x-restate-id", invocation_id.encode())])
            return IngressStatus.COMPLETED
        invocation_id, outcome = await self._engine.call(request)
        await self._respond_outcome(send, invocation_id, outcome)
        return IngressStatus.COMPLETED if outcome.completion.failure is None else IngressStatus.INVOCATION_ERROR

    async def _restate_route(
        self, method: str, segments: list[str], scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        """Everything under /restate/ but call and send: awakeables, attach, output, lookup, scopes."""
        kind = segments[1]
        if kind in ("awakeables", "a"):
            await self._complete_awakeable(method, segments, receive, send)
            return
        if kind == "scope":
            if method not in ("GET", "POST"):
                raise MethodNotAllowed("method not allowed")
            if len(segments) < 4 or segments[3] not in ("call", "send"):
                raise BadRequest(BAD_PATH)
            await self._invocation(["restate", *segments[3:]], scope, receive, send, flow_scope=segments[2])
            return
        if kind in ("attach", "output", "lookup") and len(segments) == 2:
            if method != "POST":
                raise MethodNotAllowed("method not allowed")
            invocation_id, action = target_from_body(await self._read_body(receive)), kind
        elif kind in ("attach", "output", "invocation", "workflow"):
            if method != "GET":
                raise MethodNotAllowed("method not allowed")
            invocation_id, action = target_from_path(segments)
        else:
            raise NotFound("not found")
        if action == "lookup":
            # Targets map to deterministic ids: Restate answers the id whether or not it exists.
            await respond_json(send, 200, {"invocationId": str(invocation_id)})
        elif action == "attach":
            await self._respond_outcome(send, invocation_id, await self._engine.attach(invocation_id))
        else:
            outcome = await self._engine.output(invocation_id)
            if outcome is None:
                raise NotReady("the invocation exists but has not completed yet")
            await self._respond_outcome(send, invocation_id, outcome)

    async def _complete_awakeable(self, method: str, segments: list[str], receive: Receive, send: Send) -> None:
        if len(segments) != 4:
            raise BadRequest(_BAD_AWAKEABLE_PATH)
        awakeable, action = segments[2], segments[3]
        if action not in ("resolve", "reject"):
            raise NotFound("not found")
        if method != "POST":
            raise MethodNotAllowed("method not allowed")
        try:
            invocation_id, index = parse_awakeable_id(awakeable)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        body = await self._read_body(receive)
        if action == "resolve":
            await self._engine.signal(invocation_id, index, value=body)
        else:
            await self._engine.signal(invocation_id, index, failure=Failure(500, body.decode("utf-8", "replace")))
        await respond(send, 202)

    async def _respond_outcome(self, send: Send, invocation_id: InvocationId | str, outcome: Outcome) -> None:
        headers = [(b"x-restate-id", invocation_id.encode())]
        if outcome.expires is not None:
            headers.append((b"idempotency-expires", timestamp(outcome.expires, utc_suffix="+00:00").encode()))
        completion = outcome.completion
        if completion.failure is not None:
            failure = InvocationFailure(completion.failure.code, completion.failure.message)
            await respond_error(send, failure, headers)
            return
        value = completion.value or b""
        output = self._output_spec(outcome.target)
        content_type = output.get("contentType", "application/json")
        if content_type and (value or output.get("setContentTypeIfEmpty", False)):
            headers.append((b"content-type", content_type.encode()))
        await respond(send, 200, value, headers)

    def _output_spec(self, target: Target) -> dict[str, Any]:
        entry = self._engine.schema.services.get(target.service)
        handler = entry.manifest.handler(target.handler) if entry is not None else None
        return (handler.output if handler is not None else None) or {}

    async def _read_body(self, receive: Receive) -> bytes:
        chunks = await self._read_chunks(receive)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _read_chunks(self, receive: Receive) -> list[bytes]:
        try:
            return await read_chunks(receive, self._limit)
        except ClientGone as exc:
            raise BadRequest("client disconnected") from exc
        except BodyLimitExceeded as exc:
            raise PayloadTooLarge("cannot read body: LengthLimitError") from exc

    @staticmethod
    def _input_headers(scope: dict[str, Any]) -> list[tuple[str, str]]:
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        ingress_path = (path + b"?" + query if query else path).decode("latin-1")
        headers = [("x-restate-ingress-path", ingress_path)]
        headers.extend(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name not in _SKIPPED_HEADERS
        )
        return headers


def _execution_time(query: dict[str, list[str]], send: bool) -> int | None:
    """The ``?delay=`` of a send as an absolute time (ms since epoch); calls take no delay."""
    values = query.get("delay")
    if values is None:
        return None
    try:
        seconds = parse_duration(values[-1])
    except ValueError as exc:
        raise BadRequest(f"bad delay query parameter, must be a ISO8601 duration: {exc}") from exc
    if not send:
        raise BadRequest("cannot use the delay query parameter with calls. The delay is supported only with sends")
    return now_ms() + int(seconds * 1000)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _declared_length(scope: dict[str, Any]) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None
