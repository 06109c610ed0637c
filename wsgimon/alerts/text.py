"""Text as chat services and mail count and show it: cut to a limit, times in UTC, safe links, waits,
and no secret (every channel sends :func:`without_secrets` of its alert)."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from ..secret_text import without_secrets as _scrubbed
from .model import Alert

__all__ = [
    "duration_words",
    "fence_safe",
    "fit",
    "iso_utc",
    "parse_seconds",
    "safe_link",
    "utf16_len",
    "without_secrets",
]

_MAX_WAIT_S = 24 * 3600.0
_FENCE = re.compile(r"`(?=``)")


def fit(text: str, limit: int, *, keep: str = "head") -> str:
    """Cut ``text`` to ``limit`` UTF-16 code units with an ellipsis, never splitting a character.

    UTF-16 units are what JavaScript counts, and never fewer than code points, so a text
    that fits here fits a limit counted either way. ``keep="tail"`` keeps the end instead
    (the end of a traceback is the part that matters).
    """
    if limit <= 0:
        return ""
    if len(text) <= limit // 2 or utf16_len(text) <= limit:
        return text
    budget = limit - 1
    chars = reversed(text) if keep == "tail" else iter(text)
    used = taken = 0
    for char in chars:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            break
        taken += 1
    return "…" + text[len(text) - taken :] if keep == "tail" else text[:taken] + "…"


def utf16_len(text: str) -> int:
    """The length JavaScript (and so Discord) sees: characters beyond the BMP count twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None for a missing or impossible time."""
    if epoch is None or not math.isfinite(epoch):
        return None
    try:
        moment = datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def safe_link(url: str | None) -> str | None:
    """The dashboard URL when it is a plain http(s) link a chat service will accept, else None."""
    if not url or len(url) > 2048 or any(char.isspace() for char in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def parse_seconds(value: object) -> float | None:
    """Seconds to wait from a JSON number or header (``1.5``, or an HTTP date), bounded; None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - datetime.now(timezone.utc).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_WAIT_S)


def fence_safe(text: str) -> str:
    """``text`` that cannot close a ``` fence it is put in (a zero-width space breaks each run of three)."""
    return _FENCE.sub("`\u200b", text.strip("\n"))


def duration_words(seconds: float) -> str:
    """``3 min``, ``2 h 5 min``, ``40 s``: how long an incident lasted."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def without_secrets(alert: Alert) -> Alert:
    """``alert`` with every text a request may have put in it scrubbed of secrets.

    Texts are scrubbed when recorded; this is the sinks' own guard, for a text that came from
    elsewhere (a rule's facts, a row stored before the scrubber knew a form). The dashboard link
    is the operator's and is kept as it is.
    """
    texts: dict[str, object] = {
        name: _scrubbed(value)
        for name in ("title", "summary", "endpoint", "error_type", "message", "traceback", "thread_title")
        if isinstance(value := getattr(alert, name), str)
    }
    texts["fields"] = tuple((_scrubbed(name), _scrubbed(value)) for name, value in alert.fields)
    texts["items"] = tuple(_scrubbed(item) for item in alert.items)
    return dataclasses.replace(alert, **texts)  # type: ignore[arg-type]
