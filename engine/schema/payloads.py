"""A handler's input and output rules, as Restate derives them from the manifest (restate 1.7,
``input_rules_from_schema`` and ``schema/invocation_target.rs``): what the ingress accepts, which
content type a result is answered with, and how the admin API describes both.

Input: a manifest ``input`` becomes a list of rules, and a request passes when any rule does
(else the failure of the last rule tried is the answer):

* no ``input`` at all: no body and no content type, or any content type;
* ``required`` false (the default): no body and no content type passes;
* a ``contentType``: a matching content-type header passes; with a ``jsonSchema`` the request
  must also carry a body. Bodies are never parsed here (the SDK reports bad JSON).

So ``required`` only matters for requests without a content type. Content types match as Accept
ranges (``*/*``, ``type/*``), parameters ignored, case-sensitively, as the reference does.

Output: no ``output`` means JSON; an ``output`` without ``contentType`` means none; an empty
result carries the content type only with ``setContentTypeIfEmpty``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

from engine.errors import BadRequest

_PREFIX = "input validation error: "


class RuleKind(Enum):
    NO_BODY = "no body and no content type"
    CONTENT_TYPE = "a matching content type"
    JSON_VALUE = "a matching content type and a body"


class InputRule(NamedTuple):
    kind: RuleKind
    content_type: str = ""  # the range a content-type header must match, "t/s", "t/*" or "*/*"
    json_schema: Any = None


_DEFAULT_INPUT = (InputRule(RuleKind.NO_BODY), InputRule(RuleKind.CONTENT_TYPE, "*/*"))


# Rules by the manifest ``input`` they come from: derived once per handler, not per request. A spec
# is a registered manifest's (long-lived); the cache holds it, so its id cannot be reused meanwhile.
_CACHE_SIZE = 4096
_cached: dict[int, tuple[dict[str, Any], tuple[InputRule, ...]]] = {}


def input_rules(spec: dict[str, Any] | None) -> tuple[InputRule, ...]:
    """The rules of a manifest ``input`` (None: the handler declared none)."""
    if spec is None:
        return _DEFAULT_INPUT
    found = _cached.get(id(spec))
    if found is not None and found[0] is spec:
        return found[1]
    if len(_cached) >= _CACHE_SIZE:
        _cached.clear()
    rules = _derive_rules(spec)
    _cached[id(spec)] = (spec, rules)
    return rules


def _derive_rules(spec: dict[str, Any]) -> tuple[InputRule, ...]:
    rules: list[InputRule] = []
    if not spec.get("required", False):
        rules.append(InputRule(RuleKind.NO_BODY))
    content_type = spec.get("contentType")
    if isinstance(content_type, str):
        schema = spec.get("jsonSchema")
        kind = RuleKind.CONTENT_TYPE if schema is None else RuleKind.JSON_VALUE
        rules.append(InputRule(kind, _range(content_type), schema))
    return tuple(rules)


def validate_input(spec: dict[str, Any] | None, content_type: str | None, has_body: bool) -> None:
    """Raise the 400 Restate answers when the request fits none of the handler's input rules."""
    rules = input_rules(spec)
    for rule in rules:
        if _passes(rule, content_type, has_body):
            return
    problem = _problem(rules[-1], content_type) if rules else "Bad configuration of the input validation rules"
    raise BadRequest(_PREFIX + problem)


def _passes(rule: InputRule, content_type: str | None, has_body: bool) -> bool:
    if rule.kind is RuleKind.NO_BODY:
        return not has_body and content_type is None
    return (
        content_type is not None
        and content_type_matches(content_type, rule.content_type)
        and (has_body or rule.kind is not RuleKind.JSON_VALUE)
    )


def _problem(rule: InputRule, content_type: str | None) -> str:
    """Why the request fails ``rule`` (the answer names the last rule tried, as the reference's)."""
    if rule.kind is RuleKind.NO_BODY:
        shown = "None" if content_type is None else f'Some("{_rust_escape(content_type)}")'
        return f"Expected body and content-type to be empty, but wasn't with content-type '{shown}'"
    if content_type is None:
        return "Empty content-type"
    if not content_type_matches(content_type, rule.content_type):
        return f"Content-type '{content_type}' does not match '{rule.content_type}'"
    return "Empty body not allowed"


def content_type_matches(content_type: str, wanted: str) -> bool:
    """A content-type header against a range ``t/s``, ``t/*`` or ``*/*``."""
    if wanted == "*/*":
        return True
    actual_type, slash, actual_sub = content_type.split(";", 1)[0].strip().partition("/")
    wanted_type, _, wanted_sub = wanted.partition("/")
    return bool(slash) and actual_type == wanted_type and wanted_sub in ("*", actual_sub)


def _range(content_type: str) -> str:
    media_type, _, subtype = content_type.strip().partition("/")
    return f"{media_type}/{subtype}"


def _rust_escape(text: str) -> str:
    # The reference prints the header value in Rust's Debug form.
    return text.replace("\\", "\\\\").replace('"', '\\"')


# -- output --------------------------------------------------------------------------------


def output_content_type(spec: dict[str, Any] | None, empty: bool) -> str | None:
    """The content type a handler's result is answered with, None for none."""
    if spec is None:
        return None if empty else "application/json"
    content_type = spec.get("contentType")
    if not isinstance(content_type, str) or (empty and not spec.get("setContentTypeIfEmpty", False)):
        return None
    return content_type


# -- descriptions (admin API) ------------------------------------------------------------------


def describe_input(spec: dict[str, Any] | None) -> str:
    """Restate's ``input_description``: "none", "JSON 'Title'", "JSON string", a content type."""
    rules = input_rules(spec)
    if len(rules) == 2 and rules[0].kind is RuleKind.NO_BODY:
        rules = rules[1:]  # "none or X" is shown as X, as the reference does
    if not rules:
        return "<invalid rules>"
    if len(rules) == 1:
        return _describe_rule(rules[0])
    return "one of [" + ", ".join(f'"{_describe_rule(r)}"' for r in rules) + "]"


def _describe_rule(rule: InputRule) -> str:
    if rule.kind is RuleKind.NO_BODY:
        return "none"
    if rule.kind is RuleKind.JSON_VALUE:
        return _describe_json(rule.json_schema) or rule.content_type
    return rule.content_type


def describe_output(spec: dict[str, Any] | None) -> str:
    schema = (spec or {}).get("jsonSchema")
    described = _describe_json(schema)
    if described:
        return described
    if spec is None:
        return "application/json"
    content_type = spec.get("contentType")
    if not isinstance(content_type, str):
        return "none"
    return f"optional {content_type}" if spec.get("setContentTypeIfEmpty", False) else content_type


def _describe_json(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if isinstance(schema.get("title"), str):
        return f"JSON '{schema['title']}'"
    if isinstance(schema.get("type"), str):
        return f"JSON {schema['type']}"
    return ""


def input_json_schema(spec: dict[str, Any] | None) -> Any:
    """The input's JSON schema, None when no rule has one."""
    return next((r.json_schema for r in input_rules(spec) if r.kind is RuleKind.JSON_VALUE), None)
