"""The Dapr actor API: ``/v1.0/actors/{type}/{id}/method/{m}`` and ``.../state[/{key}]``.

Method calls are durable, turn-based invocations (see engine/actors.py); state transactions are
applied atomically through the actor's partition; reminders and timers are durable schedules
(engine/reminders.py); idle actors are deactivated; reentrant types let a call chain
(``Dapr-Reentrancy-Id``) re-enter the actor whose turn it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import msgspec

from engine import DaprError, Engine, InvocationRequest, now_ms
from engine.dapr.actors import REENTRANCY_HEADER, TTL_SUFFIX, hosting_app, reentrancy_limit, reentrant
from engine.dapr.reminders import registration, schedule, schedule_name
from engine.dapr.targets import actor_target
from ingress.responses import Send, respond

Receive = Callable[[], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]
ReadBody = Callable[[Receive], Awaitable[bytes]]

_PREFIX = "/v1.0/actors/"
_JSON = [(b"content-type", b"application/json")]


class StateRequest(msgspec.Struct, kw_only=True):
    key: str
    value: Any = None
    metadata: dict[str, str] | None = None


class StateOperation(msgspec.Struct, kw_only=True):
    operation: str
    request: StateRequest


_decode_transaction = msgspec.json.Decoder(list[StateOperation]).decode
_encode = msgspec.json.Encoder().encode


# A value upserted with metadata.ttlInSeconds has its expiry (ms since epoch) stored beside it.


def _expiry(metadata: dict[str, str] | None) -> bytes | None:
    ttl = (metadata or {}).get("ttlInSeconds")
    if ttl is None:
        return None
    try:
        seconds = int(ttl)
    except ValueError as exc:
        raise _actor_error(f"invalid metadata.ttlInSeconds '{ttl}': expected an integer") from exc
    return str(now_ms() + seconds * 1000).encode()


def _expired(expires: bytes | None, now: int) -> bool:
    return expires is not None and int(expires) <= now


def _actor_error(message: str, *, status: int = 400, code: str = "ERR_MALFORMED_REQUEST") -> DaprError:
    return DaprError(message, status=status, error_code=code)


class DaprActors:
    def __init__(self, engine: Engine, read_body: ReadBody) -> None:
        self._engine = engine
        self._read_body = read_body

    async def __call__(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        parts = [unquote(p) for p in path[len(_PREFIX) :].split("/")] if path.startswith(_PREFIX) else []
        if len(parts) < 3 or not parts[0] or not parts[1]:
            raise _actor_error("expected /v1.0/actors/{actorType}/{actorId}/method|state|reminders|timers/...")
        actor_type, actor_id, kind, rest = parts[0], parts[1], parts[2], parts[3:]
        verb = scope["method"]
        if kind == "method" and rest and rest[0]:
            await self._call(scope, actor_type, actor_id, "/".join(rest), receive, send)
        elif kind == "state" and not rest and verb in ("POST", "PUT"):
            await self._transaction(actor_type, actor_id, await self._read_body(receive), send)
        elif kind == "state" and len(rest) == 1 and verb == "GET":
            await self._get_state(actor_type, actor_id, rest[0], send)
        elif kind == "state" and not rest and verb == "GET":
            await self._get_all_state(actor_type, actor_id, send)
        elif kind in ("reminders", "timers") and len(rest) == 1 and rest[0]:
            await self._schedule(verb, kind[:-1], actor_type, actor_id, rest[0], receive, send)
        else:
            raise _actor_error(f"unsupported actor route {verb} {path}", status=404, code="ERR_NOT_FOUND")

    async def _call(
        self, scope: Scope, actor_type: str, actor_id: str, method: str, receive: Receive, send: Send
    ) -> None:
        self._hosted(actor_type)
        body = await self._read_body(receive)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() == b"content-type"
        ]
        chain, limit = None, 0
        apps = self._engine.dapr_apps
        if reentrant(apps, actor_type):
            # The first call of a chain gets an id; nested calls carry it back and skip the lock.
            found = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == REENTRANCY_HEADER.encode()), None
            )
            chain, limit = found or str(uuid.uuid4()), reentrancy_limit(apps, actor_type)
            headers.append(("Dapr-Reentrancy-Id", chain))
        request = InvocationRequest(
            target=actor_target(actor_type, actor_id, method),
            body=body,
            headers=headers,
            exclusive=True,
            reentrancy=chain,
            reentrancy_limit=limit,
        )
        _, outcome = await self._engine.call(request)
        completion = outcome.completion
        if completion.failure is not None:
            # The app's own error body and status pass through, as daprd passes them.
            await respond(send, completion.failure.code, completion.failure.message.encode(), _JSON)
            return
        await respond(send, 200, completion.value or b"", _JSON)

    async def _transaction(self, actor_type: str, actor_id: str, body: bytes, send: Send) -> None:
        self._hosted(actor_type)
        try:
            operations = _decode_transaction(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _actor_error(f"failed to parse the state transaction: {exc}") from exc
        changes: list[tuple[bytes, bytes | None]] = []
        for op in operations:
            # Validate all before applying any: a transaction is all or nothing.
            name = op.request.key.encode()
            if op.operation == "upsert":
                changes.append((name, _encode(op.request.value)))
                changes.append((name + TTL_SUFFIX, _expiry(op.request.metadata)))
            elif op.operation == "delete":
                changes.extend([(name, None), (name + TTL_SUFFIX, None)])
            else:
                raise _actor_error(f"unknown state operation '{op.operation}', expected upsert or delete")
        await self._engine.state_transaction(actor_target(actor_type, "", "").service, actor_id, changes)
        await respond(send, 204)

    async def _get_state(self, actor_type: str, actor_id: str, key: str, send: Send) -> None:
        self._hosted(actor_type)
        service = actor_target(actor_type, "", "").service
        value = await self._engine.read_state(service, actor_id, key.encode())
        expires = await self._engine.read_state(service, actor_id, key.encode() + TTL_SUFFIX)
        if value is None or _expired(expires, now_ms()):
            await respond(send, 204)
        else:
            await respond(send, 200, value, _JSON)

    async def _get_all_state(self, actor_type: str, actor_id: str, send: Send) -> None:
        """All of an actor's state as one JSON object, key to value (the seed's ``getActorState``);
        expired values are left out, as the single-key read treats them as absent."""
        self._hosted(actor_type)
        entries = dict(await self._engine.read_all_state(actor_target(actor_type, "", "").service, actor_id))
        now = now_ms()
        state = {
            name.decode(errors="replace"): msgspec.Raw(value)
            for name, value in entries.items()
            if not name.endswith(TTL_SUFFIX)
            and not _expired(entries.get(name + TTL_SUFFIX), now)
        }
        await respond(send, 200, _encode(state), _JSON)

    async def _schedule(
        self, verb: str, kind: str, actor_type: str, actor_id: str, name: str, receive: Receive, send: Send
    ) -> None:
        """Reminders (durable) and timers (durable in quill too): register, read, delete."""
        self._hosted(actor_type)
        service = actor_target(actor_type, "", "").service
        if verb in ("POST", "PUT"):
            try:
                body = msgspec.json.decode(await self._read_body(receive) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                registered = schedule(kind, actor_type, actor_id, name, body, now_ms())
            except (msgspec.DecodeError, ValueError) as exc:
                raise _actor_error(f"invalid {kind} '{name}': {exc}") from exc
            await self._engine.set_schedule(service, actor_id, schedule_name(kind, name), registered)
            await respond(send, 204)
        elif verb == "DELETE":
            await self._engine.set_schedule(service, actor_id, schedule_name(kind, name), None)
            await respond(send, 204)
        elif verb == "GET" and kind == "reminder":
            found = await self._engine.read_schedule(service, actor_id, schedule_name(kind, name))
            if found is None:
                raise _actor_error(f"reminder '{name}' not found", status=404, code="ERR_ACTOR_REMINDER_NON_EXISTENT")
            await respond(send, 200, _encode(registration(found).view()), _JSON)
        else:
            raise _actor_error(f"method {verb} not allowed on actor {kind}s", status=405, code="ERR_METHOD_NOT_ALLOWED")

    def _hosted(self, actor_type: str) -> None:
        if hosting_app(self._engine.dapr_apps, actor_type) is None:
            raise _actor_error(
                f"the actor type '{actor_type}' is not hosted by any registered app",
                code="ERR_ACTOR_INSTANCE_MISSING",
            )
