"""A JSON reader that fails the way Restate's admin API (axum + serde_json + serde_path_to_error)
fails.

Restate answers a body it cannot use with the first error serde meets while streaming through
it, naming where: ``[0].limits.concurrency: invalid value: integer `0`, expected a nonzero u32 at
line 1 column 42``. Tools match on these texts, so the rule-book routes read their bodies with
this reader, driven by the expected shape (``admin.limits_body``): values are checked in document
order, and the category decides the status (a malformed document is 400 "Failed to parse the
request body as JSON", a well-formed one of the wrong shape 422 "Failed to deserialize the JSON
body into the target type"). What was checked against the real server (1.7.12):

* positions: the line and the bytes of it consumed so far, so a value read whole points at its
  last byte, one refused on sight (a map where a list belongs) at the byte before it, and a
  misplaced character at itself;
* paths: ``.field`` while a field's value is read (an ignored field's too, but nothing below it),
  ``[i]`` while an element is; ``.?`` for errors between the keys of a struct (its next key is not
  known yet), none for errors between the elements of a list or before a ``:``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonBodyError(Exception):
    """``syntax``: the body is not JSON (400); else it is JSON of the wrong shape (422)."""

    def __init__(self, message: str, *, syntax: bool) -> None:
        super().__init__(message)
        self.syntax = syntax


class Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.path: list[str] = []

    # -- positions and errors -----------------------------------------------------------------
    def _error(self, message: str, at: int, *, syntax: bool, unknown_key: bool = False) -> JsonBodyError:
        path = "".join([*self.path, ".?"] if unknown_key else self.path).lstrip(".")
        line_start = self.text.rfind("\n", 0, at) + 1
        line = self.text.count("\n", 0, at) + 1
        column = len(self.text[line_start:at].encode())
        return JsonBodyError(f"{path + ': ' if path else ''}{message} at line {line} column {column}", syntax=syntax)

    def fail(self, message: str) -> JsonBodyError:
        """A shape error (422) where the reader stands, under the current path."""
        return self._error(message, self.pos, syntax=False)

    def syntax(self, message: str, *, peeked: bool = True, unknown_key: bool = False) -> JsonBodyError:
        """A syntax error (400): at the offending character (``peeked``) or where the input is."""
        at = self.pos + 1 if peeked and self.pos < len(self.text) else self.pos
        return self._error(message, at, syntax=True, unknown_key=unknown_key)

    def misplaced(self, found: str, inside: str, message: str, *, unknown_key: bool = False) -> JsonBodyError:
        """``found`` (the next character, '' at the end) is not what ``inside`` needs here."""
        text = message if found else f"EOF while parsing {inside}"
        return self.syntax(text, peeked=bool(found), unknown_key=unknown_key)

    # -- lexing -----------------------------------------------------------------------------
    def skip_ws(self) -> str:
        """The next significant character ('' at the end), not consumed."""
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t\n\r":
            pos += 1
        self.pos = pos
        return text[pos] if pos < len(text) else ""

    def scalar(self) -> Any:
        """Consume a string, number or literal; a syntax error on anything else."""
        char = self.skip_ws()
        if not char:
            raise self.syntax("EOF while parsing a value", peeked=False)
        if char == '"':
            return self._string()
        if char in _LITERALS:
            return self._literal(char)
        if char == "-" or char.isdigit():
            return self._number()
        raise self.syntax("expected value")

    def _string(self) -> str:
        try:
            value, end = json.decoder.scanstring(self.text, self.pos + 1)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            if exc.msg.startswith("Unterminated"):
                self.pos = len(self.text)
                raise self.syntax("EOF while parsing a string", peeked=False) from exc
            self.pos = exc.pos
            control = exc.msg.startswith("Invalid control")
            raise self.syntax(
                "control character (\\u0000-\\u001F) found while parsing a string" if control else "invalid escape"
            ) from exc
        if _SURROGATE.search(value):  # Python's scanner takes a lone surrogate escape; serde refuses it
            raise self.syntax("lone leading surrogate in hex escape")
        self.pos = end
        text: str = value
        return text

    def _literal(self, char: str) -> Any:
        word, value = _LITERALS[char]
        for offset, expected in enumerate(word):
            at = self.pos + offset
            if at >= len(self.text):
                self.pos = at
                raise self.syntax("EOF while parsing a value", peeked=False)
            if self.text[at] != expected:
                self.pos = at
                raise self.syntax("expected ident")
        self.pos += len(word)
        return value

    def _number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        end = match.end() if match else self.pos + 1  # past a lone '-'
        following = self.text[end] if end < len(self.text) else ""
        if match is None or (following and following in "0123456789.eE"):
            # serde stops at the first character a number cannot go on with: "01", "1.x", "1e", "-x".
            if match is not None and following in ".eE":
                end += 1 + (following in "eE" and self.text[end + 1 : end + 2] in ("+", "-"))
            self.pos = end
            if end >= len(self.text):
                raise self.syntax("EOF while parsing a value", peeked=False)
            raise self.syntax("invalid number")
        token = match.group()
        self.pos = end
        if match.group(2) or match.group(3) or token == "-0":
            return float(token)
        value = int(token)
        return float(value) if not _I64_MIN <= value <= _U64_MAX else value

    def unexpected(self, expected: str) -> JsonBodyError:
        """Serde's ``invalid type`` for the value at hand: a map or list is refused on sight, a
        scalar after it was read."""
        char = self.skip_ws()
        if char == "{":
            return self.fail(f"invalid type: map, expected {expected}")
        if char == "[":
            return self.fail(f"invalid type: sequence, expected {expected}")
        return self.fail(f"invalid type: {describe(self.scalar())}, expected {expected}")

    # -- structure ------------------------------------------------------------------------------
    def each_element(self, read: Callable[[], None], *, tracked: bool = True) -> None:
        """A list: ``read()`` consumes each element (under ``[i]`` when ``tracked``)."""
        self.skip_ws()
        self.pos += 1  # the caller saw the '['
        char = self.skip_ws()
        if not char:
            raise self.misplaced(char, "a list", "")
        if char == "]":
            self.pos += 1
            return
        index = 0
        while True:
            if tracked:
                self.path.append(f"[{index}]")
            read()
            if tracked:
                self.path.pop()
            index += 1
            char = self.skip_ws()
            if char == "]":
                self.pos += 1
                return
            if char != ",":
                raise self.misplaced(char, "a list", "expected `,` or `]`")
            self.pos += 1
            char = self.skip_ws()
            if char == "]":
                raise self.syntax("trailing comma")
            if not char:
                raise self.syntax("EOF while parsing a value", peeked=False)

    def each_field(
        self, read: Callable[[str], None], *, on_key: Callable[[str], None] | None = None, tracked: bool = True
    ) -> None:
        """An object: ``on_key(key)`` sees each key before its ``:``, ``read(key)`` consumes its
        value (under ``.key``); ``tracked`` is a struct's map, else an ignored one."""
        self.skip_ws()
        self.pos += 1  # the caller saw the '{'
        char = self.skip_ws()
        if char == "}":
            self.pos += 1
            return
        while True:
            if char != '"':
                raise self.misplaced(char, "an object", "key must be a string", unknown_key=tracked)
            if tracked:
                self.path.append(".?")  # an unterminated key is reported under the unknown key
            key: str = self._string()
            if tracked:
                self.path.pop()
            if on_key is not None:
                on_key(key)
            found = self.skip_ws()
            if found != ":":
                raise self.misplaced(found, "an object", "expected `:`")
            self.pos += 1
            if tracked:
                self.path.append(f".{key}")
            read(key)
            if tracked:
                self.path.pop()
            char = self.skip_ws()
            if char == "}":
                self.pos += 1
                return
            if char != ",":
                raise self.misplaced(char, "an object", "expected `,` or `}`", unknown_key=tracked)
            self.pos += 1
            char = self.skip_ws()
            if char == "}":
                raise self.syntax("trailing comma", unknown_key=tracked)

    def skip(self) -> None:
        """Consume any value (checking its syntax only), as serde ignores an unknown field."""
        # Inside an ignored value serde keeps no path: its errors name the ignored field only.
        char = self.skip_ws()
        if char == "{":
            self.each_field(lambda _: self.skip(), tracked=False)
        elif char == "[":
            self.each_element(self.skip, tracked=False)
        else:
            self.scalar()

    def end(self) -> None:
        if self.skip_ws():
            raise self.syntax("trailing characters")


def describe(value: Any) -> str:
    """Serde's ``Unexpected`` wording for a scalar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    return f'string "{value}"'
