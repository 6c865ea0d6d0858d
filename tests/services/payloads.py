"""Every input/output shape the Python SDK's manifest can carry, for the ingress validation rules
(tests/integration/test_payload_rules.py); the handler names say what they declare. Served alone
(``tests.services.payloads:app``) so the shared test app keeps its services."""

from __future__ import annotations

from dataclasses import dataclass

import restate
from pydantic import BaseModel
from restate.serde import BytesSerde


class Person(BaseModel):
    name: str
    age: int = 0


@dataclass
class Point:
    x: int
    y: int


payloads = restate.Service("PyPayloads")


@payloads.handler()
async def no_input(ctx: restate.Context) -> str:
    return "no input"


@payloads.handler()
async def optional(ctx: restate.Context, name: str | None = None) -> str:
    return f"opt {name!r}"


@payloads.handler()
async def pydantic_model(ctx: restate.Context, person: Person) -> Person:
    return Person(name=person.name.upper(), age=person.age + 1)


@payloads.handler()
async def dataclass_input(ctx: restate.Context, point: Point) -> int:
    return point["x"] + point["y"] if isinstance(point, dict) else point.x + point.y


@payloads.handler(
    accept="*/*", content_type="application/octet-stream", input_serde=BytesSerde(), output_serde=BytesSerde()
)
async def raw_bytes(ctx: restate.Context, data: bytes) -> bytes:
    return data[::-1]


@payloads.handler()
async def no_output(ctx: restate.Context, name: str) -> None:
    return None


app = restate.app(services=[payloads])
