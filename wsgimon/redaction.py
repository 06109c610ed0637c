"""Redaction of sensitive query values before a request path is stored.

A query key is sensitive when it contains one of the configured words
(case-insensitive), so ``api_key``, ``access_token`` and ``sessionid`` are all
caught by the defaults. Over-redacting a harmless key is the safe failure.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

__all__ = ["REDACTED", "display_path", "redact_query"]

REDACTED = "[REDACTED]"


def redact_query(query: str, sensitive: tuple[str, ...]) -> str:
    """Return ``query`` with the value of every sensitive key replaced by ``[REDACTED]``."""
    if not query:
        return ""
    words = tuple(word.lower() for word in sensitive)
    parts = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        decoded = unquote_plus(name).lower()
        if any(word in decoded for word in words):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(pair if sep or not name else name)
    return "&".join(parts)


def display_path(path_info: str, query: str, sensitive: tuple[str, ...]) -> str:
    """The path as a user would type it (UTF-8 decoded), with its redacted query string."""
    try:
        path = path_info.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        path = path_info
    if not query:
        return path
    return f"{path}?{redact_query(query, sensitive)}"
