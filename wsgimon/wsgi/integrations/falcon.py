"""Falcon support: URI templates and the exceptions Falcon turns into a 500, through Falcon's public API.

``application = MonitorMiddleware(app)`` is all it takes. Falcon keeps the
matched template on its request object (``req.uri_template``), which it never
puts in the environ, and its default ``Exception`` handler answers 500 without
letting the exception out: a WSGI wrapper alone sees neither. So, when it wraps
a ``falcon.App``, the middleware adds :class:`MonitorHooks` to it with
``app.add_middleware``: a ``process_response`` that writes the template to
``environ["wsgimon.endpoint"]`` (one attribute read and one dict write per
request), and, only while the app's handler for ``Exception`` is still
Falcon's own default, :meth:`MonitorHooks.handle_exception` in its place: it
does what the default does (logs the traceback to ``wsgi.errors``, answers
Falcon's 500) and hands the exception over. An ``Exception`` handler of the
app's own is never replaced; it may hand the exception over itself with
:func:`hand_over`.

Requests Falcon answers without a template (``req.uri_template`` is None) are
named off the request thread, cached, by :class:`FalconRouteMatcher`: a sink is
named by its prefix pattern followed by ``*`` (``/proxy*``; the default prefix
``/`` gives ``/*``), a static route by its prefix (``/static/*``), never by the
raw path; a request a ``process_request`` middleware answered before routing is
named by the route its path matches, and a path nothing matches is
``<unmatched>``. Routed requests cost what they did.
"""

from __future__ import annotations

import sys
import traceback
import weakref
from threading import Lock
from typing import Any

from ...internal_errors import report_internal_error
from ...recording.naming import ENDPOINT_KEY
from ..captured import EXCEPTION_KEY, CapturedException
from . import UNSET, CachedMatcher, Integration

__all__ = ["FalconRouteMatcher", "MonitorHooks", "detect", "hand_over"]


def detect(app: Any) -> Integration | None:
    """A WSGI ``falcon.App``: add the hooks with Falcon's public API, once per app."""
    falcon_app = sys.modules.get("falcon.app")
    if falcon_app is None or not isinstance(app, falcon_app.App):
        return None
    asgi = sys.modules.get("falcon.asgi")
    if asgi is not None and isinstance(app, asgi.App):
        return None
    with _lock:
        hooks = _hooks_by_app.get(id(app))
        if hooks is None or hooks.app is not app:
            # Falcon can add middleware but never take it out: wrapping the same app
            # again (a test suite does) reuses its hooks instead of piling them up.
            hooks = MonitorHooks()
            hooks.users = 0
            hooks.app = app
            app.add_middleware(hooks)
            if _has_default_exception_handler(app):
                app.add_error_handler(Exception, hooks.handle_exception)
            _hooks_by_app[id(app)] = hooks
        hooks.users += 1
    closed = False

    def close() -> None:
        nonlocal closed
        with _lock:
            if not closed:
                closed = True
                hooks.users -= 1

    return Integration("falcon", matcher=FalconRouteMatcher(hooks), close=close)


# falcon.App cannot be weakly referenced: the hooks hold their app, the app holds its
# hooks, and the collector frees both together (and so this entry).
_hooks_by_app: weakref.WeakValueDictionary[int, MonitorHooks] = weakref.WeakValueDictionary()
_lock = Lock()


def hand_over(req: Any, exc: BaseException) -> None:
    """Record ``exc`` for this request: call it from an ``Exception`` handler of your own."""
    req.env[EXCEPTION_KEY] = CapturedException(exc)


class MonitorHooks:
    """Falcon middleware naming each request by ``req.uri_template``, and an ``Exception`` handler.

    Added by the middleware itself; to add it by hand (when ``MonitorMiddleware``
    wraps something else around the app)::

        hooks = MonitorHooks()
        app = falcon.App(middleware=[hooks])
        app.add_error_handler(Exception, hooks.handle_exception)

    Falcon has no way to take middleware out again: once every middleware that
    added them is closed, both stay in place doing only what Falcon would.
    """

    __slots__ = ("users", "app", "__weakref__")

    def __init__(self) -> None:
        #: how many open middlewares use these hooks; added by hand, they are always on
        self.users = 1
        self.app: Any = None

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        template = req.uri_template
        if template is not None and self.users:
            req.env.setdefault(ENDPOINT_KEY, template)

    def handle_exception(self, req: Any, resp: Any, ex: Exception, params: dict[str, Any]) -> None:
        """What Falcon's default handler does (log the traceback, answer 500), after handing ``ex`` over."""
        import falcon

        if self.users:
            hand_over(req, ex)
        req.log_error(traceback.format_exc())
        raise falcon.HTTPInternalServerError()


def _has_default_exception_handler(app: Any) -> bool:
    """Whether ``Exception`` is still handled by Falcon's own handler (seen through ``falcon.inspect``)."""
    try:
        from falcon.inspect import inspect_error_handlers

        return any(info.error == "Exception" and info.internal for info in inspect_error_handlers(app))
    except Exception as exc:
        # An app whose handlers Falcon cannot describe keeps them all; only exceptions go unseen.
        report_internal_error("falcon error handlers", exc)
        return False


class FalconRouteMatcher(CachedMatcher):
    """Names what Falcon answered without a URI template: sinks and static routes by their prefix.

    Matches as Falcon's ``_get_responder`` does: the router first (a request some
    ``process_request`` middleware answered before routing is named by its route),
    then the sinks and static routes in Falcon's own order. Runs off the request
    thread; holds the app only through its hooks, weakly (a ``falcon.App`` cannot be
    weakly referenced).
    """

    def __init__(self, hooks: MonitorHooks, cache_size: int = 4096) -> None:
        self._hooks = weakref.ref(hooks)
        super().__init__(cache_size)

    def _app(self) -> Any:
        hooks = self._hooks()
        return None if hooks is None else hooks.app

    def routes_version(self) -> object:
        """Sinks and static routes are only ever added; the compiled router's source changes with its routes."""
        app = self._app()
        if app is None:
            return UNSET
        sinks = len(getattr(app, "_sink_and_static_routes", ()))
        try:
            # Compiles the router first if routes were added (Falcon would at the next request).
            return (sinks, getattr(getattr(app, "_router", None), "finder_src", None))
        except Exception:  # a router of the app's own
            return (sinks, None)

    def match(self, method: str, path: str) -> str | None:
        app = self._app()
        if app is None:
            return None
        path = path or "/"
        options = getattr(app, "req_options", None)
        if getattr(options, "strip_url_path_trailing_slash", False) and len(path) != 1 and path.endswith("/"):
            path = path[:-1]
        router = getattr(app, "_router", None)
        try:
            route = None if router is None else router.find(path)
        except Exception:
            # A router of the app's own that needs the request: only sinks and static routes are named.
            route = None
        if route is not None:
            template = route[3] if len(route) > 3 else None
            return template if isinstance(template, str) else None
        for matcher, target, is_sink in getattr(app, "_sink_and_static_routes", ()):
            try:
                if matcher.match(path):
                    return _sink_name(matcher) if is_sink else _static_name(target)
            except Exception:  # pragma: no cover - Falcon's own matchers take any str
                return None
        return None


def _sink_name(pattern: Any) -> str:
    """A sink's prefix pattern, ``*`` after it unless the pattern is anchored at its end."""
    text = str(getattr(pattern, "pattern", pattern))[:200]
    return text if text.endswith(("$", "*")) else text + "*"


def _static_name(route: Any) -> str:
    prefix = str(getattr(route, "_prefix", "/"))[:200]
    return prefix + "*" if prefix.endswith("/") else prefix + "/*"
