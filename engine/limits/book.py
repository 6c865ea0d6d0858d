"""The rule book: every concurrency rule with its version, as the admin API changes it.

Restate's ``RuleBook`` semantics: a batch of upserts or deletes is atomic (any failed precondition
or the cap rolls back the whole batch); the book has one version counter, bumped once per batch
that changes anything; a new rule gets the book's new version, an existing rule bumps its own
version only when something the runtime uses changes (limits, disabled), while a description-only
edit keeps the rule's version and ``last_modified``; an identical upsert changes nothing.

The book is metadata (stored under one META key through ``engine.storage.metadata``); what the
partitions enforce is its snapshot of enabled rules (:meth:`RuleBook.enforced`).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from engine.limits.rules import LimitRule

MAX_RULES = 10_000


class PreconditionKind(StrEnum):
    NONE = "none"
    MATCHES = "matches"
    DOES_NOT_EXIST = "does_not_exist"


class Precondition(msgspec.Struct, frozen=True):
    kind: PreconditionKind = PreconditionKind.NONE
    version: int | None = None  # for MATCHES

    def holds(self, actual: int | None) -> bool:
        if self.kind is PreconditionKind.MATCHES:
            return actual == self.version
        if self.kind is PreconditionKind.DOES_NOT_EXIST:
            return actual is None
        return True

    def __str__(self) -> str:
        # Rust's Debug of Precondition, as Restate's messages print it.
        if self.kind is PreconditionKind.MATCHES:
            return f"Matches(v{self.version})"
        return "DoesNotExist" if self.kind is PreconditionKind.DOES_NOT_EXIST else "None"


class Rule(msgspec.Struct, array_like=True):
    version: int
    concurrency: int | None
    description: str | None
    disabled: bool
    last_modified: int  # ms since the epoch


class Upsert(msgspec.Struct, frozen=True):
    pattern: str  # canonical
    concurrency: int | None = None
    description: str | None = None
    disabled: bool = False
    precondition: Precondition = Precondition()


class Delete(msgspec.Struct, frozen=True):
    pattern: str
    precondition: Precondition = Precondition()


class RuleBookError(Exception):
    """A batch the book refuses; ``conflict``: a precondition failed (409), else the cap (422)."""

    def __init__(self, message: str, *, conflict: bool) -> None:
        super().__init__(message)
        self.conflict = conflict


class RuleBook(msgspec.Struct, array_like=True):
    version: int = 0
    rules: dict[str, Rule] = {}

    def apply(self, changes: list[Upsert | Delete], now: int) -> RuleBook:
        """The book after ``changes`` (this one is left as it is); raises RuleBookError."""
        staged: dict[str, Rule | None] = {}
        count = len(self.rules)
        new_version = self.version + 1
        for change in changes:
            pattern = change.pattern
            current = staged[pattern] if pattern in staged else self.rules.get(pattern)
            actual = None if current is None else current.version
            if not change.precondition.holds(actual):
                found = "None" if actual is None else f"Some(v{actual})"
                raise RuleBookError(
                    f"rule precondition {change.precondition} for pattern {pattern} failed (actual version: {found})",
                    conflict=True,
                )
            if isinstance(change, Delete):
                if current is not None:
                    count -= 1
                    staged[pattern] = None
                continue
            if current is None:
                if count >= MAX_RULES:
                    raise RuleBookError(f"rule book is full ({MAX_RULES} rules)", conflict=False)
                count += 1
                staged[pattern] = Rule(new_version, change.concurrency, change.description, change.disabled, now)
                continue
            runtime_changed = current.concurrency != change.concurrency or current.disabled != change.disabled
            if runtime_changed or current.description != change.description:
                version, modified = current.version, current.last_modified
                if runtime_changed:
                    version, modified = version + 1, now
                staged[pattern] = Rule(version, change.concurrency, change.description, change.disabled, modified)
        if not staged:
            return self
        rules = dict(self.rules)
        for pattern, rule in staged.items():
            if rule is None:
                del rules[pattern]
            else:
                rules[pattern] = rule
        return RuleBook(new_version, rules)

    def enforced(self) -> list[LimitRule]:
        """The enabled rules, in pattern order: what every partition applies."""
        return [
            LimitRule(pattern, rule.concurrency)
            for pattern, rule in sorted(self.rules.items())
            if not rule.disabled
        ]
