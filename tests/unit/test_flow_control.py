"""Scope / limit-key values, rule patterns and their precedence, the rule book's versions and
preconditions, and the admin body reader's refusals, against what Restate 1.7.12 answers
(research/compat/NOTES.md section K; restatedev/restate crates/limiter)."""

from __future__ import annotations

import pytest

from admin.limits_body import read_deletes, read_upserts
from admin.serde_reader import JsonBodyError
from engine.limits.book import Delete, Precondition, PreconditionKind, RuleBook, RuleBookError, Upsert
from engine.limits.names import InvalidName, parse_limit_key, parse_scope
from engine.limits.rules import LimitRule, PatternError, RuleIndex, parse_pattern

ALLOWED = "value contains characters outside the allowed set [a-zA-Z0-9_.-]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a/", "a"), ("a/b", "a/b"), ("", None), ("a.b-c_d", "a.b-c_d"), (f"{'x' * 36}/{'y' * 36}", f"{'x' * 36}/{'y' * 36}")],  # noqa: E501
)
def test_limit_keys(text: str, expected: str | None) -> None:
    assert parse_limit_key(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a/b/c", "too many path components in the given limit-key (max 2)"),
        ("*", f"invalid limit-key component: {ALLOWED}"),
        ("a/*", f"invalid limit-key component: {ALLOWED}"),
        ("a b", f"invalid limit-key component: {ALLOWED}"),
        ("a//b", "invalid limit-key component: value cannot be empty"),
        ("/a", "invalid limit-key component: value cannot be empty"),
        ("x" * 37, "invalid limit-key component: value too long: 37 bytes (max 36)"),
    ],
)
def test_bad_limit_keys(text: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=None) as refused:
        parse_limit_key(text)
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "value cannot be empty"),
        ("a b", ALLOWED),
        ("*", ALLOWED),
        ("é", ALLOWED),
        ("x" * 37, "value too long: 37 bytes (max 36)"),
        ("é" * 150, "value too long: 300 bytes (max 36)"),  # length is checked before characters
    ],
)
def test_bad_scopes(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as refused:
        parse_scope(text)
    assert str(refused.value) == reason
    assert parse_scope("x" * 36) == "x" * 36


@pytest.mark.parametrize(
    ("text", "canonical"), [("a/*/b", "a/*/b"), ("*/x", "*/x"), ("*", "*"), ("*/*/*", "*/*/*"), (" s1/*/ ", "s1/*")]
)
def test_patterns(text: str, canonical: str) -> None:
    assert parse_pattern(text) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "pattern cannot be empty"),
        ("a/b/c/d", "too many path components (max 3)"),
        ("a//b", "invalid component: value cannot be empty"),
        ("/", "invalid component: value cannot be empty"),
        ("a*", f"invalid component: {ALLOWED}"),
    ],
)
def test_bad_patterns(text: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_pattern(text)
    assert str(refused.value) == reason


def test_precedence_follows_restates_ranks() -> None:
    index = RuleIndex(
        [
            LimitRule("*/*/*", 1),
            LimitRule("scope1/*/*", 2),
            LimitRule("*/org1/*", 3),
            LimitRule("*/*/tenant1", 4),
            LimitRule("scope1/org1/*", 5),
        ]
    )
    assert index.lookup(("scope1", "org1", "tenant1")) == ("scope1/org1/*", 5)
    assert index.lookup(("scope1", "org2", "tenant1")) == ("scope1/*/*", 2)  # the scope outranks l1 and l2
    assert index.lookup(("other", "org1", "tenant1")) == ("*/org1/*", 3)
    assert index.lookup(("other", "x", "tenant1")) == ("*/*/tenant1", 4)
    assert index.lookup(("other", "x", "y")) == ("*/*/*", 1)
    assert index.lookup(("scope1", "org1")) is None  # no level-1 rule
    scoped = RuleIndex([LimitRule("*", 5), LimitRule("vip", None)])
    assert scoped.lookup(("vip",)) == ("vip", None)  # an explicit "unlimited" beats the default
    assert scoped.lookup(("any",)) == ("*", 5)


def test_rule_book_versions() -> None:
    book = RuleBook().apply([Upsert("a", 1)], now=10)
    book = book.apply([Upsert("b", 1)], now=20)
    assert (book.version, book.rules["a"].version, book.rules["b"].version) == (2, 1, 2)
    same = book.apply([Upsert("a", 1)], now=30)
    assert same is book  # an identical upsert changes nothing, not even the book's version
    described = book.apply([Upsert("a", 1, description="why")], now=40)
    assert (described.version, described.rules["a"].version, described.rules["a"].last_modified) == (3, 1, 10)
    changed = described.apply([Upsert("a", 2, description="why")], now=50)
    assert (changed.rules["a"].version, changed.rules["a"].last_modified) == (2, 50)
    assert [r.pattern for r in changed.apply([Upsert("b", 1, disabled=True)], now=60).enforced()] == ["a"]


def test_rule_book_preconditions_and_atomic_batches() -> None:
    book = RuleBook().apply([Upsert("t3", 1)], now=1)
    with pytest.raises(RuleBookError) as refused:
        book.apply([Upsert("new", 1), Upsert("t3", 2, precondition=Precondition(PreconditionKind.DOES_NOT_EXIST))], 2)
    assert str(refused.value) == "rule precondition DoesNotExist for pattern t3 failed (actual version: Some(v1))"
    assert refused.value.conflict and "new" not in book.rules
    with pytest.raises(RuleBookError) as refused:
        book.apply([Delete("t9", Precondition(PreconditionKind.MATCHES, 1))], 2)
    assert str(refused.value) == "rule precondition Matches(v1) for pattern t9 failed (actual version: None)"
    assert book.apply([Delete("t3"), Delete("absent")], 3).rules == {}


@pytest.mark.parametrize(
    ("body", "syntax", "message"),
    [
        (b'[{"limits":{"concurrency":1}}]', False, "[0]: missing field `pattern` at line 1 column 29"),
        (b'[{"pattern":"","limits":{}}]', False, "[0].pattern: pattern cannot be empty at line 1 column 14"),
        (
            b'[{"pattern":"t1","limits":{"concurrency":1.5}}]',
            False,
            "[0].limits.concurrency: invalid type: floating point `1.5`, expected a nonzero u32 at line 1 column 44",
        ),
        (
            b'[{"pattern":"t1","limits":{"concurrency":1},"precondition":{"type":"bogus"}}]',
            False,
            "[0].precondition.type: unknown variant `bogus`, expected one of `none`, `matches`, `does_not_exist`"
            " at line 1 column 74",
        ),
        (b"{", False, "invalid type: map, expected a sequence at line 1 column 0"),
        (b"", True, "EOF while parsing a value at line 1 column 0"),
        (b'[{"pattern":"x"}', True, "EOF while parsing a list at line 1 column 16"),
        (b'[{"pattern":"x"},]', True, "trailing comma at line 1 column 18"),
        (b'[\n {"pattern": 5}]', False, "[0].pattern: invalid type: integer `5`, expected a string at line 2 column 14"),  # noqa: E501
    ],
)
def test_body_refusals_read_like_serde(body: bytes, syntax: bool, message: str) -> None:
    with pytest.raises(JsonBodyError) as refused:
        read_upserts(body)
    assert (refused.value.syntax, str(refused.value)) == (syntax, message)


def test_bodies_ignore_unknown_fields_and_take_null_limits() -> None:
    upserts = read_upserts(b'[{"pattern":"a/","foo":1,"limits":{"concurrency":null,"rate":5}},{"pattern":"b"}]')
    assert [(u.pattern, u.concurrency) for u in upserts] == [("a", None), ("b", None)]
    deletes = read_deletes(b'[{"pattern":"t9","expected_version":1},{"pattern":"x"}]')
    assert deletes == [Delete("t9", Precondition(PreconditionKind.MATCHES, 1)), Delete("x")]


def test_the_rule_book_holds_at_most_ten_thousand_rules() -> None:
    full = RuleBook().apply([Upsert(f"s{n}", 1) for n in range(10_000)], now=1)
    assert len(full.rules) == 10_000 and full.version == 1
    with pytest.raises(RuleBookError) as refused:
        full.apply([Upsert("s10", 2), Upsert("one-more", 1)], now=2)
    assert (str(refused.value), refused.value.conflict) == ("rule book is full (10000 rules)", False)
    assert full.apply([Delete("s0"), Upsert("one-more", 1)], now=3).rules.keys() >= {"one-more"}
