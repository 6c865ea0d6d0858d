"""Duration parsing shared by config, ingress (``?delay=``) and admin.

Accepts what Restate accepts: humantime (``10s``, ``1m30s``, ``500ms``, ``1 hour``, ``+1s``, a
bare ``0``) through humanfriendly, and ISO 8601 (``PT1M30S``, ``P1W``) through isodate. Like
Restate's, units above days (years, months) are refused: their length depends on the calendar.
"""

from __future__ import annotations

import math

import isodate
from humanfriendly import InvalidTimespan, parse_timespan
from humanfriendly.text import tokenize


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``; raises ValueError with a readable message when it is not a duration."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"negative duration {text}")
        return float(text)
    value = text.strip()
    if value.startswith("+"):
        value = value[1:]
    if not value:
        raise ValueError("empty duration")
    if value.startswith("-") or value.endswith(" ago"):
        raise ValueError("negative signed durations cannot be converted to an unsigned duration")
    if value == "0":
        return 0.0
    if value[0] in "Pp":
        try:
            parsed = isodate.parse_duration(value.upper())
        except (isodate.ISO8601Error, ValueError, AttributeError) as exc:
            raise ValueError(f"invalid ISO 8601 duration '{text}'") from exc
        if isinstance(parsed, isodate.Duration):  # it has years or months
            raise ValueError(_CALENDAR_UNITS)
        seconds = float(parsed.total_seconds())
    else:
        seconds = _parse_humantime(value)
    if seconds < 0:
        raise ValueError(f"negative duration '{text}'")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration '{text}'")
    return seconds


_CALENDAR_UNITS = "please use units of days or smaller"
_CALENDAR_WORDS = frozenset({"y", "yr", "yrs", "year", "years", "mo", "mos", "month", "months"})


def _parse_humantime(value: str) -> float:
    # humanfriendly parses one "<number><unit>" at a time; humantime allows a sequence ("1m30s").
    tokens = tokenize(value)
    if not isinstance(tokens[-1], str):
        raise ValueError(f"expected a unit (e.g. 's', 'ms', 'min') after the number in '{value}'")
    if any(isinstance(t, str) and t.lower() in _CALENDAR_WORDS for t in tokens):
        raise ValueError(_CALENDAR_UNITS)
    if len(tokens) <= 2:
        pairs = [value]
    elif len(tokens) % 2 == 0:
        pairs = [f"{tokens[i]}{tokens[i + 1]}" for i in range(0, len(tokens), 2)]
    else:
        raise ValueError(f"invalid duration '{value}'")
    try:
        return float(sum(parse_timespan(pair) for pair in pairs))
    except (InvalidTimespan, TypeError) as exc:
        raise ValueError(f"invalid duration '{value}'") from exc


def format_duration(seconds: float) -> str:
    """Humantime rendering in the style of Restate's admin API ("1d", "1m", "500ms")."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
