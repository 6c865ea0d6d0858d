"""Rule patterns and which rule limits a scope / limit-key level (Restate's ``restate-limiter``).

A pattern has one to three components, each a value or ``*``: ``scope`` limits a whole scope,
``scope/l1`` the invocations whose limit key starts with ``l1``, ``scope/l1/l2`` those with the
two-part key ``l1/l2``. A wildcard gives every matching value its own limit (``tenant/*``: each
limit key of the scope ``tenant`` has one). Per level the most specific matching rule wins, an
exact value outranking a wildcard from the left (``s/*/x`` beats ``*/a/x``), as Restate ranks
them; a rule without a concurrency value is an explicit "unlimited" at its level.

The lookup tries the candidate patterns in rank order in a dict: at most 2, 4 or 8 probes
whatever the number of rules.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import product

import msgspec

from engine.limits.names import component_problem, split_terminator

WILDCARD = "*"
MAX_PATTERN_COMPONENTS = 3


class Level(StrEnum):
    """A level of the limit hierarchy, named as ``sys_user_limits.level`` names it."""

    SCOPE = "Scope"
    LEVEL1 = "Level1"
    LEVEL2 = "Level2"


LEVELS = (Level.SCOPE, Level.LEVEL1, Level.LEVEL2)


class PatternError(ValueError):
    """A pattern Restate refuses; ``str()`` is its message (e.g. ``pattern cannot be empty``)."""


def parse_pattern(text: str) -> str:
    """The canonical form of a rule pattern (components trimmed, a trailing '/' dropped)."""
    text = text.strip()
    if not text:
        raise PatternError("pattern cannot be empty")
    components: list[str] = []
    for part in split_terminator(text):
        if len(components) >= MAX_PATTERN_COMPONENTS:
            raise PatternError(f"too many path components (max {MAX_PATTERN_COMPONENTS})")
        part = part.strip()
        if part != WILDCARD and (problem := component_problem(part)) is not None:
            raise PatternError(f"invalid component: {problem}")
        components.append(part)
    if not components:
        raise PatternError("pattern cannot be empty")
    return "/".join(components)


class LimitRule(msgspec.Struct, frozen=True, array_like=True):
    """An enabled rule as the partitions apply it: ``concurrency`` None means unlimited."""

    pattern: str
    concurrency: int | None


class RuleIndex:
    """The enabled rules, by canonical pattern."""

    def __init__(self, rules: list[LimitRule] | None = None) -> None:
        self.rules: dict[str, int | None] = {rule.pattern: rule.concurrency for rule in rules or ()}

    def lookup(self, path: tuple[str, ...]) -> tuple[str, int | None] | None:
        """The rule (pattern, concurrency) for the level ``path`` names: ``(scope,)``,
        ``(scope, l1)`` or ``(scope, l1, l2)``; None when no rule matches."""
        rules = self.rules
        if not rules:
            return None
        # product() yields exact-before-wildcard from the left: Restate's rank order, highest first.
        for candidate in product(*((value, WILDCARD) for value in path)):
            pattern = "/".join(candidate)
            if pattern in rules:
                return pattern, rules[pattern]
        return None
