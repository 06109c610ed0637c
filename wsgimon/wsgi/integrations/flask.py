"""Flask support: route templates and handled exceptions, without touching the request path.

The middleware wraps ``app.wsgi_app``; that bound method leads back to the
Flask app. The route template is read from Flask's own request object when the
response starts (one attribute lookup: the request is gone from the environ
once the request ends, and no per-request signal is needed). When that is not
available the raw path is matched against ``app.url_map`` off the request
thread, cached. Flask turns an unhandled exception into a 500 inside
``wsgi_app``; the rare ``got_request_exception`` signal hands that exception
over through the environ.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from typing import Any
from urllib.parse import urlsplit

from ...recording.naming import UNMATCHED
from ..captured import EXCEPTION_KEY, CapturedException
from . import UNSET, CachedMatcher, Integration

__all__ = ["FlaskRouteMatcher", "detect", "find_flask_app"]

_NO_ROUTE_STATUSES = ("404", "405")


def detect(wsgi_app: Any) -> Integration | None:
    """Flask behind ``app.wsgi_app``: route templates and the exceptions Flask handles itself."""
    app = find_flask_app(wsgi_app)
    if app is None:
        return None
    connect_exception_signal(app)
    capture_handled_exceptions(app)
    app_ref = weakref.ref(app)

    def close() -> None:
        known = app_ref()
        if known is not None:
            disconnect_exception_signal(known)
            release_handled_exceptions(known)

    return Integration("flask", route_at_start=route_at_start, matcher=FlaskRouteMatcher(app), close=close)


def route_at_start(environ: dict[str, Any], status: str) -> str | None:
    """Flask's request (and the rule it matched) is gone once the request ends: read it now."""
    request = environ.get("werkzeug.request")
    if request is not None:
        rule = request.url_rule
        if rule is not None:
            return str(rule.rule)
        if status[:3] in _NO_ROUTE_STATUSES:
            return UNMATCHED
    return None


def find_flask_app(wsgi_app: Any) -> Any | None:
    """The Flask app behind ``app.wsgi_app`` (a bound method), or None for any other callable."""
    if "flask" not in sys.modules:
        return None
    import flask

    candidate = getattr(wsgi_app, "__self__", None)
    if isinstance(candidate, flask.Flask):
        return candidate
    if isinstance(wsgi_app, flask.Flask):
        return wsgi_app
    return None


def _on_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    import flask

    with contextlib.suppress(RuntimeError):
        flask.request.environ[EXCEPTION_KEY] = CapturedException(exception)


def connect_exception_signal(app: Any) -> None:
    """Hand the exception Flask handled over to the middleware through the environ.

    One module-level receiver, connected per app: blinker holds the app weakly and
    drops the connection when the app is collected, so nothing piles up.
    """
    from flask.signals import got_request_exception

    got_request_exception.connect(_on_exception, app)


def disconnect_exception_signal(app: Any) -> None:
    from flask.signals import got_request_exception

    got_request_exception.disconnect(_on_exception, app)


def capture_handled_exceptions(app: Any) -> None:
    """Exceptions the app's own ``@errorhandler`` answers send no signal: see them where Flask hands
    them to the handlers. Only the exception path runs this; the request path is untouched."""
    if getattr(app.handle_user_exception, "_wsgimon", False):
        return
    original = app.handle_user_exception

    def handle_user_exception(e: Exception) -> Any:
        response = original(e)  # raises again when the app has no handler for it
        from werkzeug.exceptions import HTTPException

        if not isinstance(e, HTTPException):
            import flask

            with contextlib.suppress(RuntimeError):
                flask.request.environ.setdefault(EXCEPTION_KEY, CapturedException(e, handled=True))
        return response

    handle_user_exception._wsgimon = True  # type: ignore[attr-defined]
    app.handle_user_exception = handle_user_exception


def release_handled_exceptions(app: Any) -> None:
    if getattr(app.__dict__.get("handle_user_exception"), "_wsgimon", False):
        del app.handle_user_exception


class FlaskRouteMatcher(CachedMatcher):
    """Matches (method, path) against the app's url_map, following redirects (trailing slashes).

    Holds the app weakly: the recorder that owns the matcher may outlive the app
    for its last flush, and must not keep it alive.
    """

    def __init__(self, app: Any, cache_size: int = 4096) -> None:
        self._app = weakref.ref(app)
        self._adapter: Any = None
        super().__init__(cache_size)

    def routes_version(self) -> object:
        app = self._app()
        if app is None:
            return UNSET
        url_map = app.url_map
        count = len(getattr(url_map, "_rules", ()))
        server_name = app.config.get("SERVER_NAME") or "localhost"
        self._adapter = url_map.bind(server_name, url_scheme="http")
        return count

    def methods(self) -> set[str]:
        """The methods the app's routes accept (custom ones such as PROPFIND included)."""
        app = self._app()
        if app is None:
            return set()
        return {method for rule in app.url_map.iter_rules() for method in (rule.methods or ())}

    def match(self, method: str, path: str) -> str | None:
        if self._adapter is None:
            return None
        return self._match(method, path, redirects=2)

    def _match(self, method: str, path: str, redirects: int) -> str | None:
        from werkzeug.exceptions import HTTPException
        from werkzeug.routing import RequestRedirect

        try:
            rule, _args = self._adapter.match(path, method, return_rule=True)
        except RequestRedirect as redirect:
            if redirects <= 0:
                return None
            return self._match(method, urlsplit(redirect.new_url).path, redirects - 1)
        except HTTPException:
            return None
        return str(rule.rule)
