"""Scopes and limit keys as Restate spells them: what a value may contain, and the messages of
its refusals (``RestrictedValue`` and ``LimitKey`` in restatedev/restate).

A component is 1 to 36 bytes of ``[a-zA-Z0-9_.-]``. A scope is one component; a limit key is at
most two, separated by ``/``, where a trailing ``/`` is dropped and the empty string means "no
limit key". Checks run in Restate's order (empty, then length, then characters), so the same
bad value gets the same message.
"""

from __future__ import annotations

MAX_COMPONENT_BYTES = 36
MAX_LIMIT_KEY_COMPONENTS = 2
_ALLOWED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
SCOPED_VIRTUAL_OBJECT = "scope is not supported for Virtual Object targets"


class InvalidName(ValueError):
    """A scope or limit key that Restate would refuse; ``str()`` is the reason, which each face
    prefixes as Restate does (ingress: ``bad scope value: ...``, ``invalid limit-key: ...``)."""


def component_problem(value: str) -> str | None:
    """Why ``value`` is not a valid component, or None when it is."""
    if not value:
        return "value cannot be empty"
    raw = value.encode()
    if len(raw) > MAX_COMPONENT_BYTES:
        return f"value too long: {len(raw)} bytes (max {MAX_COMPONENT_BYTES})"
    if not _ALLOWED.issuperset(raw):
        return "value contains characters outside the allowed set [a-zA-Z0-9_.-]"
    return None


def split_terminator(text: str) -> list[str]:
    """``str::split_terminator('/')``: like split, without the empty piece after a trailing '/'."""
    parts = text.split("/")
    if parts[-1] == "":
        parts.pop()
    return parts


def parse_scope(text: str) -> str:
    """``text`` if it is a valid scope, else InvalidName."""
    problem = component_problem(text)
    if problem is not None:
        raise InvalidName(problem)
    return text


def parse_limit_key(text: str) -> str | None:
    """The canonical limit key (``a`` or ``a/b``; None for the empty key), else InvalidName."""
    parts: list[str] = []
    for part in split_terminator(text):
        if len(parts) >= MAX_LIMIT_KEY_COMPONENTS:
            raise InvalidName("too many path components in the given limit-key (max 2)")
        problem = component_problem(part)
        if problem is not None:
            raise InvalidName(f"invalid limit-key component: {problem}")
        parts.append(part)
    return "/".join(parts) or None
