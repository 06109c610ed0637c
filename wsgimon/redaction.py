"""Redaction of sensitive query values before a request path is stored.

A query key is sensitive when it contains one of the configured words
(case-insensitive), so ``api_key``, ``access_token`` and ``sessionid`` are all
caught by the defaults. Over-redacting a harmless key is the safe failure.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

__all__ = ["REDACTED", "redact_query", "with_redacted_query"]

REDACTED = "[REDACTED]"


def redact_query(query: str, sensitive: tuple[str, ...]) -> str:
    """Return ``query`` with the value of every sensitive key replaced by ``[REDACTED]``."""
    if not query:
        return ""
    words = tuple(word.lower() for word in sensitive)
    lowered = query.lower()
    if "%" not in query and not any(word in lowered for word in words):
        return query  # nothing that could be sensitive: the common case, kept cheap
    parts = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        decoded = unquote_plus(name).lower()
        if any(word in decoded for word in words):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(pair if sep or not name else name)
    return "&".join(parts)


def with_redacted_query(path: str, query: str, sensitive: tuple[str, ...]) -> str:
    """The path as a user would type it, with its query string redacted."""
    if not query:
        return path
    return f"{path}?{redact_query(query, sensitive)}"
