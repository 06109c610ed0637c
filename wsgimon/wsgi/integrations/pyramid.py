"""Pyramid support: route patterns, and the exceptions an exception view turned into a 500.

``application = MonitorMiddleware(config.make_wsgi_app())`` names requests by
route pattern on its own: the raw path is matched against the app's routes
mapper off the request thread, cached. Pyramid keeps what it knows on its
request object, which is gone once the app returns, so for the rest add one
line before ``make_wsgi_app()``::

    config.include("wsgimon.wsgi.integrations.pyramid")

It adds a tween (above Pyramid's exception view tween) that writes
``request.matched_route.pattern`` to ``environ["wsgimon.endpoint"]`` (exact,
route predicates included; a pattern without its leading slash gets one) and, when an exception view produced a 5xx
response from an exception (not from a raised ``HTTPException``, which is a
response), hands ``request.exception`` over through ``environ["wsgimon.exception"]``.
An exception no exception view handles leaves the app and is recorded by the
middleware anyway.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

from ...recording.naming import ENDPOINT_KEY
from ..captured import EXCEPTION_KEY, CapturedException
from . import UNSET, CachedMatcher, Integration

__all__ = ["PyramidRouteMatcher", "detect", "includeme", "tween_factory"]

#: Longer paths are matched but not cached (as endpoints.CACHED_PATH_CHARS).


def includeme(config: Any) -> None:
    """``config.include("wsgimon.wsgi.integrations.pyramid")``: add the tween."""
    from pyramid.tweens import EXCVIEW

    config.add_tween("wsgimon.wsgi.integrations.pyramid.tween_factory", over=EXCVIEW)


def tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    from pyramid.httpexceptions import HTTPException

    def wsgimon_tween(request: Any) -> Any:
        try:
            response = handler(request)
        finally:
            route = request.matched_route
            if route is not None:
                pattern = route.pattern
                request.environ.setdefault(ENDPOINT_KEY, pattern if pattern[:1] == "/" else "/" + pattern)
        exc = request.exception
        if exc is not None and response.status_code >= 500 and not isinstance(exc, HTTPException):
            request.environ[EXCEPTION_KEY] = CapturedException(exc)
        return response

    return wsgimon_tween


def detect(app: Any) -> Integration | None:
    """A Pyramid ``Router``: its routes matched off the request thread (the tween does the rest)."""
    router = sys.modules.get("pyramid.router")
    if router is None or not isinstance(app, router.Router):
        return None
    from pyramid.interfaces import IRoutesMapper

    mapper = app.registry.queryUtility(IRoutesMapper)
    if mapper is None:
        # Traversal only: no route patterns to name requests by.
        return Integration("pyramid")
    return Integration("pyramid", matcher=PyramidRouteMatcher(mapper))


class PyramidRouteMatcher(CachedMatcher):
    """The pattern of the first route whose pattern matches the path; an LRU cache keeps repeats cheap.

    Route predicates (``request_method``, headers, ...) need the request and are not
    evaluated here: two routes told apart only by them are both named by the first
    one's pattern. The tween names them exactly. Holds the mapper weakly.
    """

    def __init__(self, mapper: Any, cache_size: int = 4096) -> None:
        self._mapper = weakref.ref(mapper)
        super().__init__(cache_size)

    def routes_version(self) -> object:
        mapper = self._mapper()
        return UNSET if mapper is None else len(mapper.get_routes())

    def match(self, method: str, path: str) -> str | None:
        path = path or "/"
        mapper = self._mapper()
        if mapper is None:
            return None
        for route in mapper.get_routes():
            if route.match(path) is not None:
                pattern: str = route.pattern
                return pattern if pattern[:1] == "/" else "/" + pattern
        return None
