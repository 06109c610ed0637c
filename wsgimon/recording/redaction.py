"""Redaction of secrets before anything about a request is stored.

A query key is sensitive when it contains one of the configured words
(case-insensitive), so ``api_key``, ``access_token`` and ``sessionid`` are all
caught by the defaults. Over-redacting a harmless key is the safe failure.

Secrets also travel outside the query string: a view that raises with
``request.url`` in its message puts them in the message and the traceback,
and a percent-encoded ``?`` puts a query inside the path. So the values of the
request's sensitive keys are scrubbed from messages and tracebacks too, and so
is any ``key=value`` or ``'key': 'value'`` whose key is sensitive.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote_plus

__all__ = ["REDACTED", "redact_query", "scrub", "with_redacted_query"]

REDACTED = "[REDACTED]"
_MAX_DECODED = 256  # of a query key: enough for any real key, and costs little for hostile ones
_VALID_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MIN_SCRUBBED_VALUE = 3  # shorter values are scrubbed only where a sensitive key names them


def redact_query(query: str, sensitive: tuple[str, ...]) -> str:
    """Return ``query`` with the value of every sensitive key replaced by ``[REDACTED]``."""
    if not query:
        return ""
    words = tuple(word.lower() for word in sensitive)
    lowered = query.lower()
    if "%" not in query and "+" not in query and not any(word in lowered for word in words):
        return query  # nothing that could be sensitive: the common case, kept cheap
    parts = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        if _is_sensitive(_decode_key(name), words):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(pair if sep or not name else name)
    return "&".join(parts)


def with_redacted_query(path: str, query: str, sensitive: tuple[str, ...]) -> str:
    """The path as a user would type it, with its query string redacted.

    A ``?`` inside the path (sent as ``%3F``) stays encoded, and what follows it
    is redacted as a query would be.
    """
    if "?" in path:
        inner_path, _, inner_query = path.partition("?")
        path = f"{inner_path}%3F{quote(redact_query(inner_query, sensitive), safe='=&[]')}"
    if not query:
        return path
    return f"{path}?{redact_query(query, sensitive)}"


def sensitive_values(query: str, sensitive: tuple[str, ...]) -> list[str]:
    """The values of the sensitive keys of ``query``, as sent and decoded."""
    if not query:
        return []
    words = tuple(word.lower() for word in sensitive)
    values: list[str] = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and _is_sensitive(_decode_key(name), words):
            values.append(value)
            decoded = unquote_plus(value[: _MAX_DECODED * 4])
            if decoded != value:
                values.append(decoded)
    return values


def scrub(text: str, query: str, sensitive: tuple[str, ...]) -> str:
    """``text`` (a message, a traceback) without the request's secrets or any sensitive ``key=value``."""
    if not text:
        return text
    for value in sorted(set(sensitive_values(query, sensitive)), key=len, reverse=True):
        if len(value) >= _MIN_SCRUBBED_VALUE:
            text = text.replace(value, REDACTED)
    pattern = _pattern(tuple(word.lower() for word in sensitive))
    if pattern is None:
        return text
    return pattern.sub(lambda match: (match.group(1) or match.group(3)) + REDACTED, text)


@lru_cache(maxsize=8)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in words)
    key = rf"[\w.\-\[\]]*(?:{alternatives})[\w.\-\[\]]*"
    return re.compile(
        rf"""((?<![\w])({key})=)[^&\s'"<>),;]+"""  # key=value (URLs, forms, logs)
        rf"""|((['"])({key})\4\s*:\s*['"])[^'"]*(?=['"])""",  # 'key': 'value' (dict and JSON reprs)
        re.IGNORECASE,
    )


def _decode_key(name: str) -> str:
    """A query key decoded for matching: bounded, and only valid %XX escapes (hostile input stays cheap)."""
    name = name[: _MAX_DECODED * 3]
    if "%" in name and _VALID_ESCAPE.search(name) is None:
        return name.replace("+", " ").lower()
    return unquote_plus(name).lower()


def _is_sensitive(key: str, words: tuple[str, ...]) -> bool:
    return any(word in key for word in words)
