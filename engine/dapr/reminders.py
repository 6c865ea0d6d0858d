"""Dapr actor reminders and timers: durable schedules that invoke an actor method.

A registration becomes the partition's generic recurring invocation (``engine.records.Schedule``)
of the actor object; each firing is an exclusive invocation of the actor (``remind/{name}`` or
``timer/{name}``), so it takes its turn like any call, and the next firing is armed in the same
atomic write. The Dapr registration itself rides along as the schedule's opaque ``meta``. quill
keeps actor timers durable too (daprd loses them on restart).

Times follow Dapr: Go durations (``1h0m0s0ms0μs``, ``500ms``), ISO 8601 durations (``PT1M``),
``R<n>/<duration>`` repetitions for periods, RFC 3339 instants for due times and TTLs.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import isodate
import msgspec

from engine.dapr.targets import actor_target
from engine.protocol import service_protocol_pb2 as pb
from engine.records import Schedule

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class ActorSchedule(msgspec.Struct, kw_only=True):
    """A reminder or timer as the app registered it: what daprd delivers and ``GET`` answers."""

    kind: str  # reminder | timer
    actor_type: str
    actor_id: str
    name: str
    due_time: str = ""
    period: str = ""
    ttl: str = ""
    data: Any = None
    callback: str | None = None  # timers only

    def delivery(self) -> bytes:
        """The body daprd sends the app: every key present."""
        body: dict[str, Any] = {"data": self.data, "dueTime": self.due_time, "period": self.period}
        if self.kind == "timer":
            body["callback"] = self.callback
        return msgspec.json.encode(body)

    def view(self) -> dict[str, Any]:
        """What ``GET .../reminders/{name}`` answers."""
        view: dict[str, Any] = {
            "actorType": self.actor_type,
            "actorID": self.actor_id,
            "dueTime": self.due_time,
            "period": self.period,
            "data": self.data,
        }
        if self.ttl:
            view["ttl"] = self.ttl
        return view


_decode_registration = msgspec.msgpack.Decoder(ActorSchedule).decode


def schedule_name(kind: str, name: str) -> str:
    """The object's schedule name of a reminder or timer (their names are separate in Dapr)."""
    return f"{kind}/{name}"


def registration(found: Schedule) -> ActorSchedule:
    return _decode_registration(found.meta)


def parse_duration_ms(text: str) -> int:
    """A Go or ISO 8601 duration in milliseconds; ValueError otherwise."""
    value = text.strip()
    if value in ("0", ""):
        return 0
    if value[0] in "Pp":
        try:
            return int(isodate.parse_duration(value.upper()).total_seconds() * 1000)
        except (isodate.ISO8601Error, ValueError) as exc:
            raise ValueError(f"invalid ISO 8601 duration '{text}'") from exc
    parts = _GO_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"invalid duration '{text}'")
    return int(sum(float(n) * _GO_UNITS_MS[u] for n, u in parts))


def schedule(kind: str, actor_type: str, actor_id: str, name: str, body: dict[str, Any], now: int) -> Schedule:
    """Validate a registration body (``dueTime``, ``period``, ``ttl``, ``data``, ``callback``) into
    the recurring invocation of the actor's ``remind/{name}`` or ``timer/{name}`` method."""
    due, period, ttl = (str(body.get(k) or "") for k in ("dueTime", "period", "ttl"))
    first = _instant(due, now) if due else now
    period_ms, repetitions = _period(period)
    expires_at = _instant(ttl, now) if ttl else None
    if kind == "timer" and not body.get("callback"):
        raise ValueError("a timer needs a callback method")
    registered = ActorSchedule(
        kind=kind,
        actor_type=actor_type,
        actor_id=actor_id,
        name=name,
        due_time=due,
        period=period,
        ttl=ttl,
        data=body.get("data"),
        callback=body.get("callback"),
    )
    entry = pb.InputCommandMessage(
        headers=[pb.Header(key="content-type", value="application/json")], value=pb.Value(content=registered.delivery())
    )
    method = f"{'remind' if kind == 'reminder' else 'timer'}/{name}"
    return Schedule(
        target=actor_target(actor_type, actor_id, method),
        input_entry=entry.SerializeToString(),
        next_fire=first,
        period_ms=period_ms,
        repetitions=repetitions,
        expires_at=expires_at,
        exclusive=True,
        meta=msgspec.msgpack.encode(registered),
    )


def _instant(text: str, now: int) -> int:
    """A due time / TTL: a duration from now, or an RFC 3339 instant."""
    try:
        return now + parse_duration_ms(text)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise ValueError(f"invalid time '{text}': expected a duration or an RFC 3339 time") from exc


def _period(text: str) -> tuple[int | None, int | None]:
    """(period ms, repetitions): empty = fire once; ``R5/PT1S`` = five times."""
    if not text:
        return None, 1
    if text[:1] in "Rr" and "/" in text:
        count, _, duration = text[1:].partition("/")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"invalid repetitions in period '{text}'")
        return parse_duration_ms(duration), int(count)
    period_ms = parse_duration_ms(text)
    if period_ms <= 0:
        raise ValueError(f"a period must be positive, got '{text}'")
    return period_ms, None
