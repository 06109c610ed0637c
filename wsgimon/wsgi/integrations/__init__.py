"""Framework integrations, each imported only when its framework is in use.

The middleware asks :func:`find_integration` what it wraps. Each framework's
module has a ``detect(app) -> Integration | None`` that is called only when
that framework is already imported (``import wsgimon`` imports none), and
answers what the framework can tell wsgimon cheaply:

- ``route_at_start(environ, status)``: the route template, read on the request
  thread when the response starts (Flask: its request object is gone after);
- ``route_at_end(environ)``: the route template, read when the record is made
  (Bottle keeps its route in the environ);
- ``matcher(method, path)``: the template for a raw path, called off the
  request thread (cached), for requests the two above do not name;
- ``close()``: undo what ``detect`` connected (signal receivers).

Exceptions that a framework turns into a 500 itself reach wsgimon through the
environ key ``wsgimon.exception`` (see :mod:`wsgimon.wsgi.captured`), route names
through ``wsgimon.endpoint``: any framework hook or user code may write them.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...internal_errors import report_internal_error
from ...recording.naming import CACHED_PATH_CHARS, RouteMatcher

__all__ = ["CachedMatcher", "Integration", "UNSET", "find_integration", "FRAMEWORKS"]

Environ = dict[str, Any]

#: framework module name -> wsgimon integration module
FRAMEWORKS = {"flask": "flask", "django": "django", "bottle": "bottle", "falcon": "falcon", "pyramid": "pyramid"}


@dataclass(frozen=True)
class Integration:
    name: str
    route_at_start: Callable[[Environ, str], str | None] | None = None
    route_at_end: Callable[[Environ], str | None] | None = None
    matcher: RouteMatcher | None = None
    close: Callable[[], None] | None = None


def find_integration(app: Any) -> Integration | None:
    """The integration for the framework behind ``app``, or None for a plain WSGI callable."""
    for framework, module_name in FRAMEWORKS.items():
        if framework not in sys.modules:
            continue
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError:
            continue
        try:
            integration: Integration | None = module.detect(app)
        except Exception as exc:
            # Fail open: the app runs, named by its paths, rather than not at all.
            report_internal_error(f"{framework} integration", exc)
            continue
        if integration is not None:
            return integration
    return None


_UNSET = object()


class CachedMatcher:
    """What every framework's route matcher shares: answers cached per (method, path), for short
    paths only (the cache stays small whatever the paths' length), dropped when the routes change.

    A subclass says what changes with the routes (``routes_version``) and matches one path
    (``match``); both run off the request thread.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._version: object = _UNSET
        self._cached = lru_cache(maxsize=cache_size)(self.match)

    def __call__(self, method: str, path: str) -> str | None:
        if self._version is _UNSET:
            self.refresh()
        if len(path) > CACHED_PATH_CHARS:
            return self.match(method, path)
        return self._cached(method, path)

    def refresh(self) -> None:
        """Called once per fold: routes added since the last one are seen."""
        with self._lock:
            version = self.routes_version()
            if version is not _UNSET and version != self._version:
                self._cached.cache_clear()
                self._version = version

    def routes_version(self) -> object:
        """Anything that changes when the routes change; ``UNSET`` while they cannot be read."""
        raise NotImplementedError

    def match(self, method: str, path: str) -> str | None:
        raise NotImplementedError


UNSET = _UNSET
