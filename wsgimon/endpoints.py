"""Naming requests by endpoint, with a hard cap on how many names exist.

Grouping by raw path explodes into one series per id; grouping by route alone
lumps every 404 scan together with nothing to show. wsgimon names a request by
its route template when the framework knows it (see ``integrations``), by a
user's ``endpoint(environ)`` callable, or by a normalised path; requests that
match no route go to ``<unmatched>``, and names beyond ``max_endpoints`` go to
``<other>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "CACHED_PATH_CHARS",
    "MAX_PATH_CHARS",
    "ENDPOINT_KEY",
    "OTHER_METHOD",
    "STANDARD_METHODS",
    "OTHER",
    "UNMATCHED",
    "EndpointNamer",
    "RouteMatcher",
    "normalise_path",
]

#: The environ key through which any code may name the request's endpoint (a route template).
ENDPOINT_KEY = "wsgimon.endpoint"
UNMATCHED = "<unmatched>"
OTHER = "<other>"
#: Requests with a method outside the standard set (and the app's own routes' methods).
OTHER_METHOD = "OTHER"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
#: Stored and named paths (and query strings) are cut to this many characters, marked with "…".
MAX_PATH_CHARS = 2048
#: Paths longer than this are not cached (each cache stays small whatever the paths' length).
CACHED_PATH_CHARS = 256

# A route matcher answers the template of (method, path), or None when no route matches.
RouteMatcher = Callable[[str, str], "str | None"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=.*[0-9])(?=.*[a-fA-F])[0-9a-fA-F]{8,}$")
_INT = re.compile(r"^-?[0-9]+$")


def normalise_path(path: str) -> str:
    """Replace the id-like segments of a path so that ``/users/42`` becomes ``/users/<int>``."""
    return _normalise_short(path) if len(path) <= CACHED_PATH_CHARS else _normalise(path)


def _normalise(path: str) -> str:
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if not segment:
            continue
        if _INT.match(segment):
            segments[i] = "<int>"
        elif _UUID.match(segment):
            segments[i] = "<uuid>"
        elif _HEX.match(segment):
            segments[i] = "<hex>"
    return "/".join(segments)


_normalise_short = lru_cache(maxsize=4096)(_normalise)


class EndpointNamer:
    """Turns (method, path, status, hint) into an endpoint name under the cardinality cap."""

    def __init__(self, max_endpoints: int, matcher: RouteMatcher | None = None) -> None:
        self.max_endpoints = max_endpoints
        self.matcher = matcher
        self._known: set[str] = set()
        self._methods: frozenset[str] = STANDARD_METHODS

    def refresh(self) -> None:
        """Called once per fold: lets the matcher notice routes (and their methods) added since the last one."""
        refresh = getattr(self.matcher, "refresh", None)
        if refresh is not None:
            refresh()
        methods = getattr(self.matcher, "methods", None)
        if methods is not None:
            self._methods = STANDARD_METHODS | frozenset(list(methods())[:100])

    def method(self, method: str) -> str:
        """The method as recorded: anything a client may make up is one ``OTHER``, so keys stay bounded."""
        return method if method in self._methods else OTHER_METHOD

    def name(self, method: str, path: str, status: int, hint: str | None) -> str:
        if hint:
            return hint if hint == UNMATCHED else self._capped(hint)
        if self.matcher is not None:
            template = self.matcher(method, path)
            if template is not None:
                return self._capped(template)
            if status in (404, 405):
                return UNMATCHED
            return self._capped(normalise_path(path))
        if status == 404:
            return UNMATCHED
        return self._capped(normalise_path(path))

    def _capped(self, name: str) -> str:
        known = self._known
        if name in known:
            return name
        if len(known) >= self.max_endpoints:
            return OTHER
        known.add(name)
        return name
