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

Requests that match no route are found by traversal: the ``include`` line also
adds a view deriver (Pyramid's ``config.add_view_deriver``) that names them by
the view they reach, ``<traversal:Folder/edit>`` (the view's registered context
class, or the context's class for a view registered for any context, and its
view name; ``<traversal:Folder>`` for the default view). The name is made at
configuration time from what the view was registered with, so it never holds a
path segment, and a traversal that finds no view stays ``<unmatched>``. Views
registered for a route, and exception views, are left as they are: a routed
request costs what it did. Without the ``include`` line, traversal requests
are ``<unmatched>`` in an app with routes and named by path (``/users/<int>``)
in one without: traversal runs the app's resource tree, which the off-thread
matcher does not.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

from ...recording.naming import CACHED_PATH_CHARS, ENDPOINT_KEY
from ..captured import EXCEPTION_KEY, CapturedException
from . import UNSET, CachedMatcher, Integration

__all__ = ["PyramidRouteMatcher", "detect", "includeme", "traversal_name", "tween_factory", "view_deriver"]


def includeme(config: Any) -> None:
    """``config.include("wsgimon.wsgi.integrations.pyramid")``: add the tween and the view deriver."""
    from pyramid.tweens import EXCVIEW
    from pyramid.viewderivers import INGRESS

    config.add_tween("wsgimon.wsgi.integrations.pyramid.tween_factory", over=EXCVIEW)
    # Outermost of the derivers (below only Pyramid's predicate check): a view whose predicates
    # do not match names nothing, and a 403 of the permission check is named by its view.
    config.add_view_deriver(view_deriver, name="wsgimon_traversal_name", under=INGRESS, over="secured_view")


def traversal_name(context_name: str, view_name: str) -> str:
    """The endpoint of a request that traversal brought to the view ``view_name`` of ``context_name``."""
    return f"<traversal:{context_name}/{view_name}>" if view_name else f"<traversal:{context_name}>"


#: names made for views registered for any context, per context class
_ANY_CONTEXT_NAMES = 1024


def view_deriver(view: Callable[[Any, Any], Any], info: Any) -> Callable[[Any, Any], Any]:
    """Wraps the views traversal can reach so that they name their request; returns the others unchanged."""
    options = info.options
    context = options.get("context")
    if options.get("route_name") is not None or info.exception_only:
        return view
    if isinstance(context, type) and issubclass(context, BaseException):
        return view  # an exception view's context
    view_name = str(options.get("name") or "")[:CACHED_PATH_CHARS]

    if context is not None:
        name = traversal_name(str(getattr(context, "__name__", context))[:CACHED_PATH_CHARS], view_name)

        def named_view(context: Any, request: Any) -> Any:
            if request.matched_route is None:
                request.environ.setdefault(ENDPOINT_KEY, name)
            return view(context, request)

        return named_view

    names: dict[type, str] = {}

    def any_context_view(context: Any, request: Any) -> Any:
        if request.matched_route is None:
            kind = type(context)
            name = names.get(kind)
            if name is None:
                name = traversal_name(kind.__name__[:CACHED_PATH_CHARS], view_name)
                if len(names) < _ANY_CONTEXT_NAMES:
                    names[kind] = name
            request.environ.setdefault(ENDPOINT_KEY, name)
        return view(context, request)

    return any_context_view


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
