"""Query parameters of the monitoring API: parsed strictly, refused with a 400 that says why.

Numbers are ASCII digits only (``int()`` would also take ``१`` and ``1_000``),
limits above their maximum are refused rather than silently clamped (the
OpenAPI document states every maximum), and unknown parameters are refused so
that a typo is not mistaken for a filter that matched nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from werkzeug.datastructures import MultiDict

from ..stats.time_windows import Window, parse_window

__all__ = ["BadRequest", "MAX_MS", "Query", "STATUS_PATTERN", "WINDOW_PATTERN"]

#: What ``status=`` accepts: a class (``5xx``) or one code (``404``).
STATUS_PATTERN = r"^[1-5](xx|XX|[0-9]{2})$"
#: What ``window=`` is documented to accept: ``all``, up to 99999m, 7999h or 366d (the server takes up to 366d).
WINDOW_PATTERN = (
    r"^(all|[1-9][0-9]{0,4}m|[1-9][0-9]{0,2}h|[1-7][0-9]{3}h|[1-9][0-9]?d|[12][0-9]{2}d|3[0-5][0-9]d|36[0-6]d)$"
)
#: The largest ``min_ms`` (about 31 years).
MAX_MS = 1e12

_DIGITS = re.compile(r"[0-9]{1,9}")
_NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?")
_STATUS = re.compile(STATUS_PATTERN)


class BadRequest(Exception):
    """A query parameter the API cannot use; becomes a 400 with the message."""

    status = 400


class UnknownRelease(BadRequest):
    """A well-formed ``release=`` that the store does not keep: a 404, like any missing resource."""

    status = 404


class Query:
    """The parameters of one request, read through methods that validate them."""

    def __init__(self, args: MultiDict[str, str], allowed: Collection[str]) -> None:
        unknown = sorted(set(args) - set(allowed))
        if unknown:
            expected = ", ".join(sorted(allowed)) or "none"
            raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; expected: {expected}")
        self._args = args

    def __contains__(self, name: str) -> bool:
        return name in self._args

    def text(self, name: str, *, max_chars: int = 2048) -> str | None:
        value = self._args.get(name)
        if value is not None and len(value) > max_chars:
            raise BadRequest(f"{name} must be at most {max_chars} characters")
        return value

    def integer(self, name: str, *, default: int, maximum: int) -> int:
        raw = self._args.get(name)
        if raw is None:
            return default
        if not _DIGITS.fullmatch(raw) or int(raw) < 1:
            raise BadRequest(f"{name} must be a positive integer (ASCII digits), got {raw!r}")
        value = int(raw)
        if value > maximum:
            raise BadRequest(f"{name} must be at most {maximum}, got {raw!r}")
        return value

    def number(self, name: str) -> float | None:
        raw = self._args.get(name)
        if raw is None:
            return None
        if not _NUMBER.fullmatch(raw) or not float(raw) <= MAX_MS:
            raise BadRequest(f"{name} must be a number from 0 to {MAX_MS:g}, such as 250 or 12.5, got {raw!r}")
        return float(raw)

    def choice(self, name: str, choices: Collection[str], default: str) -> str:
        value = self._args.get(name, default)
        if value not in choices:
            raise BadRequest(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def release(self, known: Collection[str]) -> str | None:
        """``release=``: one of the releases the store keeps."""
        value = self.text("release", max_chars=64)
        if value is not None and value not in known:
            shown = ", ".join(sorted(known)[:20]) or "none yet"
            raise UnknownRelease(f"unknown release {value!r}; the store keeps: {shown}")
        return value

    def window(self) -> Window:
        try:
            return parse_window(self._args.get("window"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def status_filter(self) -> Callable[[int], bool] | None:
        raw = self._args.get("status")
        if raw is None:
            return None
        if not _STATUS.fullmatch(raw):
            raise BadRequest(f"status must be a class such as 5xx or a status code such as 404, got {raw!r}")
        value = raw.lower()
        if value.endswith("xx"):
            hundreds = int(value[0])
            return lambda status: status // 100 == hundreds
        code = int(value)
        return lambda status: status == code
