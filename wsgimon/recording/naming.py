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
import time
from collections import OrderedDict
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
# The store's admission of a new name under the cap: (name, cap) -> admitted.
NameAdmission = Callable[[str, int], bool]
_FULL_RECHECK_S = 60.0
# Past half of the path budget, new path-derived names come at most this often (per process):
# a burst of made-up paths that the app answers with a success cannot fill the rest at once.
_PATH_NAME_EVERY_S = 30.0
# A path-derived name not seen for this long leaves this process's path budget when it is full.
_PATH_NAME_IDLE_S = 86400.0

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=.*[0-9])(?=.*[a-fA-F])[0-9a-fA-F]{8,}$")
_INT = re.compile(r"^-?[0-9]+$")
# Long mixed-alphabet segments: reset tokens, signed ids, base64 (secrets, and one name each otherwise).
_TOKEN = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_\-=.~+]{20,}$")
_CANDIDATES = 10_000  # path-derived names seen once, waiting to be seen again


def normalise_path(path: str) -> str:
    """Replace the id-like segments of a path so that ``/users/42`` becomes ``/users/<int>``."""
    return _normalise_short(path) if len(path) <= CACHED_PATH_CHARS else _normalise(path)


def _normalise(path: str) -> str:
    # A raw path can never spell a template or a reserved name: < and > stay encoded.
    if "<" in path or ">" in path:
        path = path.replace("<", "%3C").replace(">", "%3E")
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
        elif _TOKEN.match(segment):
            segments[i] = "<token>"
    return "/".join(segments)


_normalise_short = lru_cache(maxsize=4096)(_normalise)


class EndpointNamer:
    """Turns (method, path, status, hint) into an endpoint name under the cardinality cap.

    Two kinds of names share ``max_endpoints``: route templates (from the framework, an
    ``endpoint=`` callable or the environ) and names derived from raw paths. Anyone can
    make up paths, so path-derived names get a fifth of the cap, and a 4xx answer never
    makes a new one: a scan the app answers with 404, 400, 403 or 405 stays ``<unmatched>``
    however often each path is sent (a name already known keeps its name whatever the
    status, except 404). A new name from a 5xx, and any new name once half of the path
    budget is used, comes at most once per ``_PATH_NAME_EVERY_S``; past that half a name
    also needs a second sighting. When the budget is full, a name not seen for a day leaves
    it. The cap stays free for real routes. With a route matcher, a path
    that matches no route is ``<unmatched>`` whatever its status (an SPA fallback answers
    200). A new name is admitted by the store (``admit``), which counts every process's
    names, so the cap holds deployment-wide; when the store cannot answer, this process's
    own count decides.
    """

    def __init__(
        self, max_endpoints: int, matcher: RouteMatcher | None = None, admit: NameAdmission | None = None
    ) -> None:
        self.max_endpoints = max_endpoints
        self._admit = admit
        self._full_until = 0.0
        self.max_path_endpoints = max(1, max_endpoints // 5)
        self.matcher = matcher
        self._known: set[str] = set()  # names this process may use
        self._path_names: dict[str, float] = {}  # path-derived names this process admitted: last seen
        self._next_path_name = 0.0  # past half of the path budget: when the next new one may come
        self._candidates: OrderedDict[str, None] = OrderedDict()
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

    def name(self, method: str, path: str, status: int, hint: str | None, seen: int = 1) -> str:
        """``seen``: how many requests alike this name covers (a fold names each kind once)."""
        if hint:
            return hint if hint == UNMATCHED else self._capped(hint)
        if not path.startswith("/"):
            return UNMATCHED
        if self.matcher is not None:
            template = self.matcher(method, path)
            if template is not None:
                return self._capped(template)
            return UNMATCHED
        if status == 404:
            return UNMATCHED
        return self._path_name(normalise_path(path), status, seen)

    def _capped(self, name: str) -> str:
        known = self._known
        if name in known:
            return name
        if len(known) >= self.max_endpoints or time.monotonic() < self._full_until:
            return OTHER
        if self._admit is not None:
            try:
                admitted = self._admit(name, self.max_endpoints)
            except Exception:  # the store cannot answer now: this process's own count decides
                admitted = True
            if not admitted:
                # Full for the deployment: new names go to <other> without asking for a while.
                self._full_until = time.monotonic() + _FULL_RECHECK_S
                return OTHER
        known.add(name)
        return name

    def _path_name(self, name: str, status: int, seen: int) -> str:
        path_names = self._path_names
        if name in self._known:
            if name in path_names:
                path_names[name] = time.monotonic()
            return name
        if 400 <= status < 500:
            # Anyone can make the app answer 4xx for a path it does not have: never a new name.
            return UNMATCHED
        candidates = self._candidates
        second_half = len(path_names) >= self.max_path_endpoints // 2
        # A 5xx names a new endpoint too (one that fails from its first request deserves its
        # name), but slowly: an app may fail on any path it is sent.
        slow = second_half or status >= 500
        if second_half and seen < 2 and name not in candidates:
            candidates[name] = None
            if len(candidates) > _CANDIDATES:
                candidates.popitem(last=False)
            return UNMATCHED
        now = time.monotonic()
        if len(path_names) >= self.max_path_endpoints and not self._forget_idle_path_name(now):
            return OTHER
        if slow and now < self._next_path_name:
            return UNMATCHED  # named at a later sighting
        candidates.pop(name, None)
        named = self._capped(name)
        if named == name:
            path_names[name] = now
            if slow:
                self._next_path_name = now + _PATH_NAME_EVERY_S
        return named

    def _forget_idle_path_name(self, now: float) -> bool:
        """Free the place of the path-derived name seen least recently, if not seen for a day."""
        name, last_seen = min(self._path_names.items(), key=lambda item: item[1])
        if now - last_seen < _PATH_NAME_IDLE_S:
            return False
        del self._path_names[name]
        self._known.discard(name)
        return True
