"""Bottle support: route rules from the environ, and the 500s Bottle makes without ``exc_info``.

``application = MonitorMiddleware(bottle_app)`` is all it takes. Bottle leaves
the route it matched in ``environ["bottle.route"]``, so its rule
(``/items/<item_id:int>``) is read when the record is made: two dict reads, one
identity check and one attribute read. A view's exception that Bottle turns
into a 500 (with ``catchall``, the default) reaches ``start_response`` as
``exc_info``, which the middleware records anyway.

Requests Bottle routed nowhere (a 404, a 405, a ``before_request`` hook that
answered first), and requests answered by a Bottle app mounted WSGI-style
(``app.mount("/api", child)`` without the trailing slash, or with route
options: the child's own routing overwrites ``environ["bottle.route"]`` with a
rule that lacks the prefix), are matched against the app's router off the
request thread, cached: a 405 is ``<unmatched>``, a hook's 401 on a real route
is filed under that route, and a mounted child's route is named with its
prefix (``/api/items/<item_id:int>``). A plain WSGI app mounted the same way
is one endpoint, named by the rule Bottle gives the mount (``/raw/<:re:.*>``).

One thing Bottle reports to nobody: a generator view (or a returned iterator)
that raises before its first chunk. Bottle turns it into a 500 in ``_cast`` and
calls ``start_response`` without ``exc_info``; the exception only travels in
the ``HTTPError`` it hands to the app's error handler for 500. So, when it wraps
a ``bottle.Bottle``, the middleware puts :class:`ErrorHandler` in as that
handler (Bottle's public ``app.error_handler``): it hands the ``HTTPError``'s
exception over through ``environ["wsgimon.exception"]`` and then answers
exactly as the handler it replaced (the app's own, or Bottle's default page).
It runs only for 500s. A 500 handler the app registers after wrapping replaces
it; such a handler may call :func:`hand_over` itself.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from threading import Lock
from typing import Any

from ...internal_errors import report_internal_error
from ..captured import EXCEPTION_KEY, CapturedException
from . import UNSET, CachedMatcher, Integration

__all__ = ["BottleRouteMatcher", "ErrorHandler", "detect", "hand_over"]

_EXC_INFO_KEY = "bottle.exc_info"
#: Mounts inside mounts are followed this deep (a child mounted into itself would loop).
_MAX_MOUNT_DEPTH = 8


def detect(app: Any) -> Integration | None:
    """A ``bottle.Bottle`` app: its route's rule at record time, its router off the request thread."""
    bottle = sys.modules.get("bottle")
    if bottle is None or not isinstance(app, bottle.Bottle):
        return None
    release = _install_error_handler(app)

    def route_at_end(environ: dict[str, Any]) -> str | None:
        route = environ.get("bottle.route")
        if route is None or environ.get("bottle.app") is not app:
            # Routed nowhere, or answered by a Bottle app mounted WSGI-style (its own routing
            # wrote its rule, without the mount's prefix): the matcher names it off the thread.
            return None
        rule: str = route.rule
        return rule

    return Integration("bottle", route_at_end=route_at_end, matcher=BottleRouteMatcher(app), close=release)


def hand_over(error: Any) -> None:
    """Record the exception behind a Bottle ``HTTPError`` for this request: call it from a 500 handler of your own."""
    import bottle

    exc = getattr(error, "exception", None)
    if isinstance(exc, BaseException):
        environ = bottle.request.environ
        if environ.get(_EXC_INFO_KEY) is None:
            # Otherwise Bottle passes it to start_response as exc_info, where it is recorded.
            environ[EXCEPTION_KEY] = CapturedException(exc)


class ErrorHandler:
    """The app's error handler for 500: hands the exception over, then answers as the one it replaced.

    Installed by the middleware, once per app however often the app is wrapped; put
    back as it was when the last middleware using it is closed (unless the app has
    another 500 handler by then).
    """

    __slots__ = ("previous", "users", "_app")

    def __init__(self, app: Any, previous: Any) -> None:
        self._app = weakref.ref(app)
        #: the handler this one replaced (None: Bottle's default error page)
        self.previous = previous
        #: how many open middlewares use this handler
        self.users = 0

    def __call__(self, error: Any) -> Any:
        if self.users:
            try:
                hand_over(error)
            except Exception as exc:
                report_internal_error("bottle error handler", exc)
        previous = self.previous
        if previous is not None:
            return previous(error)
        app = self._app()
        if app is None:  # pragma: no cover - the app answering this request is alive
            import bottle

            return bottle.Bottle.default_error_handler(None, error)
        return app.default_error_handler(error)


_lock = Lock()


def _install_error_handler(app: Any) -> Callable[[], None] | None:
    """Make :class:`ErrorHandler` the app's 500 handler (reused if it already is); returns its ``close``."""
    handlers = getattr(app, "error_handler", None)
    if not isinstance(handlers, dict):
        return None
    with _lock:
        current = handlers.get(500)
        handler = current if isinstance(current, ErrorHandler) else ErrorHandler(app, current)
        handlers[500] = handler
        handler.users += 1
    closed = False

    def close() -> None:
        nonlocal closed
        with _lock:
            if closed:
                return
            closed = True
            handler.users -= 1
            if handler.users == 0 and handlers.get(500) is handler:
                if handler.previous is None:
                    del handlers[500]
                else:
                    handlers[500] = handler.previous

    return close


class BottleRouteMatcher(CachedMatcher):
    """Matches (method, path) with ``app.match``, as Bottle does; an LRU cache keeps repeats cheap.

    A request routed to a Bottle app mounted WSGI-style is matched on in that app,
    with the path Bottle hands it, and named with the mount's prefix. Holds the app
    weakly: the recorder may outlive it for its last flush.
    """

    def __init__(self, app: Any, cache_size: int = 4096) -> None:
        self._app = weakref.ref(app)
        super().__init__(cache_size)

    def routes_version(self) -> object:
        """Routes added (``app.route``, ``app.mount``) since the last look change the count."""
        app = self._app()
        return UNSET if app is None else len(app.routes)

    def methods(self) -> set[str]:
        """The methods the app's routes accept (custom ones such as PROPFIND included)."""
        app = self._app()
        return set() if app is None else {str(route.method).upper() for route in app.routes}

    def match(self, method: str, path: str) -> str | None:
        app = self._app()
        if app is None:
            return None
        return _match(app, method, path, "", _MAX_MOUNT_DEPTH)


def _match(app: Any, method: str, path: str, prefix: str, depth: int) -> str | None:
    import bottle

    try:
        route, _args = app.match({"REQUEST_METHOD": method, "PATH_INFO": path})
    except bottle.HTTPError:
        return None
    rule: str = route.rule
    target = route.config.get("mountpoint.target")
    if isinstance(target, bottle.Bottle) and depth > 0:
        # A Bottle app mounted WSGI-style: matched on in the child, with the path it is handed.
        segments = [part for part in str(route.config.get("mountpoint.prefix", "")).split("/") if part]
        try:
            shifted, rest = bottle.path_shift("", path, len(segments))
        except AssertionError:  # pragma: no cover - the mount's rule matched, so the segments are there
            return None
        return _match(target, method, rest, prefix + shifted, depth - 1)
    return prefix + rule
