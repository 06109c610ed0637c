"""Bottle support: route rules from the environ, nothing added to Bottle.

``application = MonitorMiddleware(bottle_app)`` is all it takes. Bottle leaves
the route it matched in ``environ["bottle.route"]``, so its rule
(``/items/<item_id:int>``) is read when the record is made: one dict read and
one attribute read. A view's exception that Bottle turns into a 500 (with
``catchall``, the default) reaches ``start_response`` as ``exc_info``, which the
middleware records anyway. Requests Bottle routed nowhere (a 404, a 405, a
``before_request`` hook that answered first) are matched against the app's
router off the request thread, cached, so that a 405 is ``<unmatched>`` and a
hook's 401 on a real route is filed under that route.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

from . import UNSET, CachedMatcher, Integration

__all__ = ["BottleRouteMatcher", "detect", "route_at_end"]

#: Longer paths are matched but not cached (as endpoints.CACHED_PATH_CHARS).

_ROUTE_KEY = "bottle.route"


def detect(app: Any) -> Integration | None:
    """A ``bottle.Bottle`` app: its route's rule at record time, its router off the request thread."""
    bottle = sys.modules.get("bottle")
    if bottle is None or not isinstance(app, bottle.Bottle):
        return None
    return Integration("bottle", route_at_end=route_at_end, matcher=BottleRouteMatcher(app))


def route_at_end(environ: dict[str, Any]) -> str | None:
    route = environ.get(_ROUTE_KEY)
    if route is None:
        return None
    rule: str = route.rule
    return rule


class BottleRouteMatcher(CachedMatcher):
    """Matches (method, path) with ``app.match``, as Bottle does; an LRU cache keeps repeats cheap.

    Holds the app weakly: the recorder may outlive it for its last flush.
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
        import bottle

        app = self._app()
        if app is None:
            return None
        try:
            route, _args = app.match({"REQUEST_METHOD": method, "PATH_INFO": path})
        except bottle.HTTPError:
            return None
        rule: str = route.rule
        return rule
