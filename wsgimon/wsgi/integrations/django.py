"""Django support: URL patterns and the exceptions Django turns into a 500, with nothing on the request path.

``application = MonitorMiddleware(get_wsgi_application())`` is all it takes.
Django keeps the matched pattern on its request object, which the WSGI handler
never puts in the environ; so the raw path is resolved with Django's own
resolver off the request thread instead (cached): the same answer
``request.resolver_match.route`` gives, ``include()`` prefixes joined. A
view's ``Http404`` is filed under its route, since the path resolves. Django
sends ``got_request_exception`` for the exceptions it turns into a 500; one
module-level receiver hands that exception over through the request's environ
(``request.META`` is the WSGI environ).
"""

from __future__ import annotations

import sys
from threading import Lock
from typing import Any

from ..captured import EXCEPTION_KEY, CapturedException
from . import CachedMatcher, Integration

__all__ = ["DjangoRouteMatcher", "detect"]

#: Longer paths are matched but not cached (as endpoints.CACHED_PATH_CHARS).

_DISPATCH_UID = "wsgimon.wsgi.integrations.django"
_COMMON_MIDDLEWARE = "django.middleware.common.CommonMiddleware"


def detect(app: Any) -> Integration | None:
    """A Django ``WSGIHandler``: URL patterns off the request thread, handled exceptions by signal."""
    handlers = sys.modules.get("django.core.handlers.wsgi")
    if handlers is None or not isinstance(app, handlers.WSGIHandler):
        return None
    _connect()
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            _disconnect()

    return Integration("django", matcher=DjangoRouteMatcher(), close=close)


def _on_exception(sender: Any, request: Any = None, **_: Any) -> None:
    # Sent from inside Django's ``except`` block: the exception is the one being handled.
    exc = sys.exc_info()[1]
    meta = getattr(request, "META", None)
    if exc is not None and isinstance(meta, dict):
        meta[EXCEPTION_KEY] = CapturedException(exc)


# The signal is sent with sender=None for every handler, so one receiver serves every
# wrapped application; it stays connected while any of them is open.
_connections = 0
_connections_lock = Lock()


def _connect() -> None:
    global _connections
    from django.core.signals import got_request_exception

    with _connections_lock:
        _connections += 1
        if _connections == 1:
            got_request_exception.connect(_on_exception, dispatch_uid=_DISPATCH_UID)


def _disconnect() -> None:
    global _connections
    from django.core.signals import got_request_exception

    with _connections_lock:
        _connections -= 1
        if _connections == 0:
            got_request_exception.disconnect(dispatch_uid=_DISPATCH_UID)


class DjangoRouteMatcher(CachedMatcher):
    """Resolves a path with Django's URL resolver, as the request did; an LRU cache keeps repeats cheap.

    The path is ``PATH_INFO``, which is what Django resolves too (``request.path_info``):
    ``SCRIPT_NAME`` and ``FORCE_SCRIPT_NAME`` are not part of it, whatever the server set.
    A path that ``CommonMiddleware`` redirects to its slashed form (``APPEND_SLASH``) is
    named by that form's route. Names are the pattern with a leading slash:
    ``/items/<int:item_id>``, and ``/`` for the root pattern ``""``.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._resolver: Any = None
        self._append_slash = False
        super().__init__(cache_size)

    def routes_version(self) -> object:
        """A new resolver when the URLconf changed (``clear_url_caches()``, a new ``ROOT_URLCONF``)."""
        from django.conf import settings
        from django.urls import get_resolver, get_urlconf

        self._resolver = get_resolver(get_urlconf())
        self._append_slash = bool(settings.APPEND_SLASH) and _COMMON_MIDDLEWARE in (settings.MIDDLEWARE or ())
        return id(self._resolver)

    def match(self, method: str, path: str) -> str | None:
        path = path or "/"
        route = self._route(path)
        if route is None and self._append_slash and not path.endswith("/"):
            route = self._route(path + "/")
        return route

    def _route(self, path: str) -> str | None:
        from django.urls import Resolver404

        try:
            match = self._resolver.resolve(path)
        except Resolver404:
            return None
        route = getattr(match, "route", None)
        if route is None:
            return None
        return "/" + str(route).removeprefix("^")
