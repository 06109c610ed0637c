"""A silence as the API and the command line take it: checked, with a clear ValueError when it is not right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..stats.issues import future_instant
from ..stats.time_windows import parse_duration
from .options import ALERT_RULES
from .state import Silence

__all__ = ["RULES", "parse_silence"]

#: what a silence may name in ``rule`` (``slo`` covers both tiers)
RULES = ALERT_RULES
_FIELDS = {"rule", "endpoint", "issue", "severity", "for", "until", "reason", "created_by"}


def parse_silence(asked: dict[str, Any], now: float) -> Callable[[int], Silence]:
    """What to keep for the next free id; ValueError says what is wrong."""
    unknown = sorted(set(asked) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(_FIELDS))}")
    matchers: dict[str, str | None] = {}
    for name, limit in (("rule", 32), ("endpoint", 2048), ("issue", 64), ("severity", 16)):
        value = asked.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            raise ValueError(f"{name} must be a string of 1 to {limit} characters")
        matchers[name] = value
    if matchers["rule"] is not None and matchers["rule"] not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {matchers['rule']!r}")
    if matchers["severity"] is not None and matchers["severity"] not in ("critical", "warning", "info"):
        raise ValueError("severity must be critical, warning or info")
    if not any(matchers.values()):
        raise ValueError("name what to silence: rule, endpoint, issue and/or severity (a silence of all is a mistake)")
    reason = asked.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ValueError("reason is needed: say why, in at most 500 characters")
    created_by = asked.get("created_by", "")
    if not isinstance(created_by, str) or len(created_by) > 100:
        raise ValueError("created_by must be a string of at most 100 characters")
    given_for, given_until = asked.get("for"), asked.get("until")
    if (given_for is None) == (given_until is None):
        raise ValueError("give for (such as 1h) or until (an ISO 8601 time), one of them")
    if given_for is not None:
        if not isinstance(given_for, str):
            raise ValueError("for must be a duration such as 30m, 2h or 1d")
        ends = now + parse_duration(given_for, "for")
    else:
        ends = future_instant(given_until, now, "until")
    reason, who = reason.strip(), created_by.strip()

    def make(number: int) -> Silence:
        return Silence(number, now, ends, reason, created_by=who, **matchers)

    return make
