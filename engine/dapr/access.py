"""Dapr access control for service invocation: which caller may call which method of an app.

Dapr's ``accessControl`` policy shape, minus the mTLS identities (every caller of quill is one trust
domain). The method is percent-decoded and ``..``-resolved before matching, so encodings and dot
segments cannot slip past a deny rule; the most specific matching operation wins.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatchcase
from urllib.parse import unquote

import msgspec


class Operation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """One rule of Dapr's ``accessControl.policies[].operations[]``."""

    name: str  # "/add", "/admin/*" (one segment), "/api/**" (any depth)
    action: str  # allow | deny
    http_verb: list[str] = msgspec.field(default_factory=lambda: ["*"])


class AccessControl(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Who may call which method of an app: Dapr's policy shape, minus the mTLS identities (every
    caller of quill is one trust domain). The most specific matching operation wins."""

    default_action: str = "allow"
    operations: list[Operation] = msgspec.field(default_factory=list)


def decide(access: AccessControl, verb: str, method: str) -> tuple[str, str]:
    """(action, the operation as matched) for ``verb /method``."""
    operation = _normalized_operation(method)
    return _decide(access, verb, operation), operation


def _normalized_operation(method: str) -> str:
    """The operation access control sees: decoded and cleaned (``a/../b`` is ``/b``), no query,
    so encodings and dot segments cannot slip past a deny rule."""
    cleaned = posixpath.normpath("/" + unquote(method))
    return "/" + cleaned.lstrip("/") if cleaned != "/" else "/"


def _decide(access: AccessControl, verb: str, operation: str) -> str:
    best: tuple[int, int, int] | None = None
    action = access.default_action
    for rule in access.operations:
        if not any(v == "*" or v.upper() == verb for v in rule.http_verb):
            continue
        if not _matches(rule.name, operation):
            continue
        pattern = rule.name
        # Most specific first: more literal segments, then fewer wildcards, then a longer pattern.
        literal = sum(1 for part in pattern.strip("/").split("/") if part and "*" not in part)
        rank = (literal, -pattern.count("*"), len(pattern))
        if best is None or rank > best:
            best, action = rank, rule.action
    return action


def _matches(pattern: str, operation: str) -> bool:
    """Dapr's operation names: ``*`` matches within one path segment, ``**`` any number of them."""
    wanted = [p for p in pattern.strip("/").split("/") if p]
    parts = [p for p in operation.strip("/").split("/") if p]
    return _match_segments(wanted, parts)


def _match_segments(wanted: list[str], parts: list[str]) -> bool:
    if not wanted:
        return not parts
    head = wanted[0]
    if head == "**":
        return any(_match_segments(wanted[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_segments(wanted[1:], parts[1:])
