"""Redaction of secrets before anything about a request is stored.

A query key is sensitive when it contains one of the configured words
(case-insensitive), so ``api_key``, ``access_token`` and ``sessionid`` are all
caught by the defaults. Over-redacting a harmless key is the safe failure.

Secrets also travel outside the query string: a view that raises with
``request.url`` in its message puts them in the message and the traceback,
and a percent-encoded ``?`` puts a query inside the path. So the values of the
request's sensitive keys are scrubbed from messages and tracebacks too, and so
is any ``key=value`` or ``'key': 'value'`` whose key is sensitive; then the one
scrubber (:func:`wsgimon.secret_text.without_secrets`: credentials in URLs,
``Authorization`` values, known key formats, ``password: x`` and the like) runs
over them, and over the request log's paths.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

from ..secret_text import REDACTED, bounded_without_secrets, without_secrets

__all__ = ["REDACTED", "redact_query", "scrub", "with_redacted_query"]

_MAX_DECODED = 256  # of a query key: enough for any real key, and costs little for hostile ones
_VALID_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MIN_SCRUBBED_VALUE = 3  # shorter values are scrubbed only where a sensitive key names them
_MARGIN = 8192  # kept beyond a limit while scrubbing: a value or secret cut in half lies in it, and goes with it


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
    """The path as a user would type it, with its query string redacted and no secret the scrubber knows.

    A ``?`` inside the path (sent as ``%3F``) stays encoded, and what follows it
    is redacted as a query would be.
    """
    if "?" in path:
        inner_path, _, inner_query = path.partition("?")
        path = f"{inner_path}%3F{quote(redact_query(inner_query, sensitive), safe='=&[]')}"
    if query:
        path = f"{path}?{redact_query(query, sensitive)}"
    return without_secrets(path)


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


def scrub(text: str, query: str, sensitive: tuple[str, ...], *, limit: int | None = None, keep: str = "head") -> str:
    """``text`` (a message, a traceback) without the request's secrets, any sensitive ``key=value``, or
    any secret :func:`~wsgimon.secret_text.without_secrets` knows; cut to ``limit`` characters (its end
    kept with ``keep="tail"``), cut before it is scrubbed so that a huge text costs little."""
    if not text:
        return text
    if limit is not None and len(text) > limit + _MARGIN:
        text = text[: limit + _MARGIN] if keep == "head" else text[-(limit + _MARGIN) :]
    for value in sorted(set(sensitive_values(query, sensitive)), key=len, reverse=True):
        if len(value) >= _MIN_SCRUBBED_VALUE:
            text = text.replace(value, REDACTED)
    if limit is None:
        return without_secrets(text, sensitive)
    return bounded_without_secrets(text, limit, keep=keep, extra_keys=sensitive)


def _decode_key(name: str) -> str:
    """A query key decoded for matching: bounded, and only valid %XX escapes (hostile input stays cheap)."""
    name = name[: _MAX_DECODED * 3]
    if "%" in name and _VALID_ESCAPE.search(name) is None:
        return name.replace("+", " ").lower()
    return unquote_plus(name).lower()


def _is_sensitive(key: str, words: tuple[str, ...]) -> bool:
    return any(word in key for word in words)
