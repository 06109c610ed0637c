"""The one rule for wsgimon's own failures: log them, count them, never raise them.

Monitoring must never break the application it watches. Every place where
wsgimon's code runs inside the application's request, or in a background thread,
goes through :func:`report_internal_error`, which logs each distinct failure once
with its traceback (so a broken component cannot flood the logs) and keeps a
count that ``/monitoring/health`` shows.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["internal_error_count", "report_internal_error", "logger"]

logger = logging.getLogger("wsgimon")

_lock = threading.Lock()
_count = 0
_seen: set[tuple[str, str]] = set()


def report_internal_error(where: str, exc: BaseException) -> None:
    """Record a failure inside wsgimon; logs the first of each kind with its traceback."""
    global _count
    key = (where, type(exc).__name__)
    with _lock:
        _count += 1
        first = key not in _seen
        if first and len(_seen) < 1000:
            _seen.add(key)
    try:
        if first:
            logger.error("wsgimon internal error in %s (the application is not affected)", where, exc_info=exc)
        else:
            logger.debug("wsgimon internal error in %s: %r", where, exc)
    except Exception:  # noqa: S110 - logging itself may be broken; nothing else to do
        pass


def internal_error_count() -> int:
    return _count


def reset_seen() -> None:
    """Forget which failures were logged (tests use this to see each log again)."""
    with _lock:
        _seen.clear()
