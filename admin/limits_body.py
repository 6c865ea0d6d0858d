"""Bodies of ``PUT /limits/rules`` and ``POST /limits/rules/bulk-delete``, read as Restate reads
them (``UpsertRuleRequest``, ``DeleteRuleRequest``): unknown fields ignored, and every refusal
worded and placed as serde words and places it (see ``admin.serde_reader``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin.serde_reader import JsonBodyError, Reader
from engine.limits.book import Delete, Precondition, PreconditionKind, Upsert
from engine.limits.rules import PatternError, parse_pattern

_U32_MAX = 2**32 - 1
_PRECONDITION_KINDS = ", ".join(f"`{kind.value}`" for kind in PreconditionKind)
_VARIANTS = {PreconditionKind.NONE: "None", PreconditionKind.DOES_NOT_EXIST: "DoesNotExist"}


def _read_list(raw: bytes, read_one: Callable[[Reader], Any]) -> list[Any]:
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"invalid unicode in the body at byte {exc.start}", syntax=True) from exc
    reader = Reader(text)
    char = reader.skip_ws()
    if not char:
        raise reader.syntax("EOF while parsing a value", peeked=False)
    if char != "[":
        raise reader.unexpected("a sequence")
    found: list[Any] = []
    reader.each_element(lambda: found.append(read_one(reader)))
    reader.end()
    return found


def read_upserts(raw: bytes) -> list[Upsert]:
    return _read_list(raw, _upsert)


def read_deletes(raw: bytes) -> list[Delete]:
    return _read_list(raw, _delete)


def _struct(reader: Reader, expected: str, fields: dict[str, Callable[[], None]], required: tuple[str, ...]) -> None:
    """An object with known ``fields`` (each consumes its value), others skipped."""
    if reader.skip_ws() != "{":
        raise reader.unexpected(expected)
    seen: set[str] = set()

    def key(name: str) -> None:
        if name in fields:
            if name in seen:
                raise reader.fail(f"duplicate field `{name}`")
            seen.add(name)

    reader.each_field(lambda name: fields.get(name, reader.skip)(), on_key=key)
    for name in required:
        if name not in seen:
            raise reader.fail(f"missing field `{name}`")


def _upsert(reader: Reader) -> Upsert:
    values: dict[str, Any] = {}
    _struct(
        reader,
        "struct UpsertRuleRequest",
        {
            "pattern": lambda: values.__setitem__("pattern", _pattern(reader)),
            "limits": lambda: values.__setitem__("concurrency", _limits(reader)),
            "description": lambda: values.__setitem__("description", _optional(reader, _string)),
            "disabled": lambda: values.__setitem__("disabled", _boolean(reader)),
            "precondition": lambda: values.__setitem__("precondition", _precondition(reader)),
        },
        ("pattern",),
    )
    return Upsert(**values)


def _delete(reader: Reader) -> Delete:
    values: dict[str, Any] = {}

    def expected_version() -> None:
        version = _optional(reader, lambda r: _unsigned(r, "u32", minimum=0))
        if version is not None:
            values["precondition"] = Precondition(PreconditionKind.MATCHES, version)

    _struct(
        reader,
        "struct DeleteRuleRequest",
        {"pattern": lambda: values.__setitem__("pattern", _pattern(reader)), "expected_version": expected_version},
        ("pattern",),
    )
    return Delete(**values)


def _pattern(reader: Reader) -> str:
    text = _string(reader)
    try:
        return parse_pattern(text)
    except PatternError as exc:
        raise reader.fail(str(exc)) from exc


def _limits(reader: Reader) -> int | None:
    concurrency: list[int | None] = [None]

    def read() -> None:
        concurrency[0] = _optional(reader, lambda r: _unsigned(r, "a nonzero u32", minimum=1))

    _struct(reader, "struct UserLimits", {"concurrency": read}, ())
    return concurrency[0]


def _precondition(reader: Reader) -> Precondition:
    values: dict[str, Any] = {}

    def kind() -> None:
        text = _string(reader)
        if text not in PreconditionKind.__members__.values():
            raise reader.fail(f"unknown variant `{text}`, expected one of {_PRECONDITION_KINDS}")
        values["kind"] = PreconditionKind(text)

    def version() -> None:
        kind = values.get("kind", PreconditionKind.MATCHES)
        if kind is PreconditionKind.MATCHES:
            values["version"] = _unsigned(reader, "u32", minimum=0)
        elif reader.skip_ws() != "n":
            raise reader.unexpected(f"unit variant Precondition::{_VARIANTS[kind]}")
        else:
            reader.scalar()

    _struct(reader, "adjacently tagged enum Precondition", {"type": kind, "version": version}, ("type",))
    if values["kind"] is PreconditionKind.MATCHES and "version" not in values:
        raise reader.fail("missing field `version`")
    return Precondition(values["kind"], values.get("version"))


def _optional(reader: Reader, read: Callable[[Reader], Any]) -> Any:
    if reader.skip_ws() == "n":
        reader.scalar()
        return None
    return read(reader)


def _string(reader: Reader) -> str:
    if reader.skip_ws() != '"':
        raise reader.unexpected("a string")
    value: str = reader.scalar()
    return value


def _boolean(reader: Reader) -> bool:
    if reader.skip_ws() not in ("t", "f"):
        raise reader.unexpected("a boolean")
    value: bool = reader.scalar()
    return value


def _unsigned(reader: Reader, expected: str, *, minimum: int) -> int:
    char = reader.skip_ws()
    if not char or char not in "-0123456789":
        raise reader.unexpected(expected)
    value = reader.scalar()
    if isinstance(value, float):
        raise reader.fail(f"invalid type: floating point `{value!r}`, expected {expected}")
    if not minimum <= value <= _U32_MAX:
        raise reader.fail(f"invalid value: integer `{value}`, expected {expected}")
    return int(value)
