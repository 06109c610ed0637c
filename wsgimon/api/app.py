"""The monitoring app under the prefix: a small werkzeug app that serves JSON and the dashboard.

Each resource is a module with a ``PARAMETERS`` set and an ``answer(context,
query)`` that reads the store and returns a dict: it knows nothing of WSGI.
Here the request is checked for access, routed, bounded in time and turned
into a response. Every answer is ``Cache-Control: no-store``; bad parameters
get a 400 with ``{"error": ...}`` (not the dashboard page: it reads its view from its own address
and ignores what it does not know), unknown paths a JSON 404, other methods a
405 with ``Allow``, a store that cannot answer in time a 503.

Writes (``POST /issues/<id>``) need the same access as reads, a JSON body, and no
sign that another site's page sent them (see :func:`wsgimon.api.access.cross_site_write`).
Check-in pings (``POST /checkins/<name>[/start|/fail]``) are writes too, but take any body
(a job's output) and query parameters, as ``curl`` sends them from a cron job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .._version import __version__
from ..access_token import new_access_token
from ..internal_errors import report_internal_error
from ..stores.contract import READ_TIMEOUT_S, StoreUnavailable
from . import (
    alerts,
    checkins,
    endpoints,
    errors,
    health,
    issues,
    metrics,
    outbound,
    queries,
    releases,
    requests,
    silences,
    slow,
    stats,
    timeseries,
)
from .access import check_access, cross_site_write
from .context import READ_FLUSH_S, Context
from .dashboard import render_dashboard
from .openapi import openapi_document
from .params import BadRequest, Query
from .values import to_json

if TYPE_CHECKING:
    from .checks import HealthCheck, HealthRegistry

__all__ = ["BadRequest", "MonitoringApp"]

#: path under the prefix -> resource module answering JSON
RESOURCES: dict[str, ModuleType] = {
    "/stats": stats,
    "/endpoints": endpoints,
    "/requests": requests,
    "/errors": errors,
    "/timeseries": timeseries,
    "/health": health,
    "/alerts": alerts,
    "/slow": slow,
    "/releases": releases,
    "/issues": issues,
    "/silences": silences,
    "/queries": queries,
    "/outbound": outbound,
    "/checkins": checkins,
}
#: path with a variable part -> (the resource's answer, its parameters)
ITEMS: dict[str, tuple[Callable[..., Any], set[str]]] = {
    "/issues/<item>": (issues.answer_one, issues.ONE_PARAMETERS),
}
#: path -> the change a POST to it makes: (context, JSON body, the path's variable part or None) -> answer
WRITES: dict[str, Callable[..., dict[str, Any]]] = {
    "/issues/<item>": issues.change,
    "/silences": silences.create,
    "/silences/<item>": silences.expire,
    "/checkins/<item>": checkins.ping,
    "/checkins/<item>/start": checkins.ping,
    "/checkins/<item>/fail": checkins.ping,
}
#: the writes that are check-in pings (any body, query parameters) -> what the ping says
PINGS: dict[str, str] = {
    "/checkins/<item>": "success",
    "/checkins/<item>/start": "start",
    "/checkins/<item>/fail": "fail",
}
MAX_BODY_BYTES = 16 * 1024
_PAGES = ("/", "/index.json", "/favicon.svg", "/openapi.json", "/metrics")
_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1c7ed6"/>'
    '<path d="M2 11h3l2-6 2 8 2-4h3" fill="none" stroke="#fff" stroke-width="1.6"/></svg>'
)


@functools.lru_cache(maxsize=1)
def _url_map() -> Map:
    """Built once per process: building a werkzeug Map costs more than making a Flask app."""
    readable = {*_PAGES, *RESOURCES, *ITEMS}
    rules = [
        Rule(path, endpoint=path, methods=(["GET"] if path in readable else []) + (["POST"] if path in WRITES else []))
        for path in sorted(readable | set(WRITES))
    ]
    return Map(rules, strict_slashes=False)


class MonitoringApp:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.config = context.config
        self._token: str | None = None
        self._pings = checkins.PingLimiter()

    def deployment_token(self) -> str | None:
        """The token kept in the store (made there by the first process that needs it), read once;
        None while the store cannot be read (nobody gets in by it then)."""
        if self._token is None:
            try:
                with self.context.store.time_limit(READ_TIMEOUT_S):
                    self._token = self.context.store.access_token(new_access_token)
            except StoreUnavailable:
                return None
        return self._token

    @property
    def health(self) -> HealthRegistry:
        return self.context.health

    @property
    def checks(self) -> dict[str, HealthCheck]:
        return self.context.health.checks

    # -- dispatch ------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        prefix = self.config.prefix
        sub_environ = dict(environ)
        sub_environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        sub_environ["PATH_INFO"] = environ.get("PATH_INFO", "")[len(prefix) :] or "/"
        return self._respond(sub_environ, None)(environ, start_response)

    def serve_health(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The ``health_path``: its status to anyone (a load balancer has no credentials), nothing more."""
        return self._respond(environ, "health_path")(environ, start_response)

    def _respond(self, environ: dict[str, Any], fixed: str | None) -> Response:
        request = Request(environ)
        try:
            if fixed is None:
                denial = check_access(environ, self.config, self.deployment_token)
                if denial is not None:
                    if denial.status == 401 and self.config.username is None and request.path == "/":
                        # With a token only, a browser cannot send it for the page itself: the page
                        # holds no data, asks for the token and sends it with every call.
                        return render_dashboard(self.config.prefix, __version__)
                    if request.path == "/favicon.svg":
                        return self._favicon(request)
                    response = _json({"error": denial.message}, denial.status)
                    if denial.challenge:
                        response.headers["WWW-Authenticate"] = denial.challenge
                    return response
                path, arguments = _url_map().bind_to_environ(environ).match(method=request.method)
            else:
                path, arguments = fixed, {}
                if request.method not in ("GET", "HEAD"):
                    raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
            if request.method == "POST" and path in PINGS:
                return self._ping(path, request, str(arguments["item"]))
            if request.method == "POST":
                item = arguments.get("item")
                return self._write(path, request, None if item is None else str(item))
            if path in ITEMS:
                return self._answer_item(path, request, str(arguments["item"]))
            return self._answer(path, request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, exc.status)
        except StoreUnavailable as exc:
            return _json({"error": f"the statistics store cannot be read now: {exc}"}, 503)
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or ["GET", "HEAD"])
            response = _json({"error": f"method {request.method} not allowed; use {' or '.join(allowed)}"}, 405)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        except NotFound:
            return _json(
                {"error": f"no monitoring endpoint at {self._url(request.path)!r}", "see": self._url("/")}, 404
            )
        except HTTPException as exc:
            return _json({"error": exc.description or exc.name}, exc.code or 400)
        except Exception as exc:
            report_internal_error("monitoring api", exc)
            return _json({"error": "internal error in wsgimon; see the application log"}, 500)

    def _write(self, path: str, request: Request, item: str | None) -> Response:
        """A change asked for by a client that may read: JSON, from this site, bounded."""
        why = cross_site_write(request.environ)
        if why is not None:
            return _json({"error": f"refused: {why}; send the change from this site's dashboard or a client"}, 403)
        if request.mimetype != "application/json":
            return _json({"error": "send the change as JSON (Content-Type: application/json)"}, 415)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _json({"error": f"the body must be at most {MAX_BODY_BYTES} bytes"}, 413)
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _json({"error": f"the body must be at most {MAX_BODY_BYTES} bytes"}, 413)
        Query(request.args, set())
        with self.context.store.time_limit(READ_TIMEOUT_S + READ_FLUSH_S):
            return _json(WRITES[path](self.context, body, item))

    def _ping(self, path: str, request: Request, name: str) -> Response:
        """A check-in ping: credentials and this site (checked like every write), any body, bounded."""
        why = cross_site_write(request.environ)
        if why is not None:
            return _json({"error": f"refused: {why}; ping from the job (curl, wsgimon checkin)"}, 403)
        limit = checkins.MAX_PING_BODY_BYTES
        too_large = f"the body must be at most {limit} bytes (its last {checkins.MAX_LOG_CHARS} characters are kept)"
        if request.content_length is not None and request.content_length > limit:
            return _json({"error": too_large}, 413)
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return _json({"error": too_large}, 413)
        Query(request.args, checkins.PING_PARAMETERS)
        try:
            with self.context.store.time_limit(READ_TIMEOUT_S + READ_FLUSH_S):
                return _json(
                    checkins.ping(self.context, self._pings, name, PINGS[path], request.args, body, request.mimetype)
                )
        except checkins.TooManyPings as exc:
            response = _json({"error": str(exc)}, exc.status)
            response.headers["Retry-After"] = "2"
            return response

    def _answer_item(self, path: str, request: Request, item: str) -> Response:
        read, parameters = ITEMS[path]
        query = Query(request.args, parameters)
        with self.context.store.time_limit(READ_TIMEOUT_S + READ_FLUSH_S):
            return _json(read(self.context, query, item))

    def _answer(self, path: str, request: Request) -> Response:
        pages: dict[str, Callable[[Request], Response]] = {
            "/": self._dashboard,
            "/index.json": self._index,
            "/favicon.svg": self._favicon,
            "/openapi.json": self._openapi,
            "/metrics": self._metrics,
        }
        if path in pages:
            # The dashboard page takes any query string: its script reads its view from it (window=,
            # endpoint=, method=, release=, issue=) and ignores the rest (utm_source=, a typo), so a
            # link from an alert, a report or a chat app always opens the page. Its JSON calls stay strict.
            if path != "/":
                Query(request.args, set())
            return pages[path](request)
        if path == "health_path":
            resource: Callable[[Context, Query], Any] = health.status_only
            parameters: set[str] = set()
        else:
            module = RESOURCES[path]
            resource, parameters = module.answer, module.PARAMETERS
        query = Query(request.args, parameters)
        # A health probe is answered at once whatever the store does; other reads wait at most
        # READ_TIMEOUT_S for a locked store.
        budget = health.BUDGET_S if resource in (health.answer, health.status_only) else READ_TIMEOUT_S + READ_FLUSH_S
        with self.context.store.time_limit(budget):
            result = resource(self.context, query)
        body, status = result if isinstance(result, tuple) else (result, 200)
        return _json(body, status)

    def _url(self, path: str) -> str:
        return self.config.prefix + path

    # -- pages ---------------------------------------------------------------------
    def _dashboard(self, request: Request) -> Response:
        return render_dashboard(self.config.prefix, __version__)

    def _favicon(self, request: Request) -> Response:
        response = Response(_FAVICON, mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _index(self, request: Request) -> Response:
        links = {name: self._url(path) for name, path in _LINKS}
        return _json({"name": "wsgimon", "version": __version__, "links": links})

    def _metrics(self, request: Request) -> Response:
        openmetrics = metrics.wants_openmetrics(request.headers.get("Accept", ""))
        with self.context.store.time_limit(READ_TIMEOUT_S + READ_FLUSH_S):
            text = metrics.render(self.context, openmetrics)
        response = Response(text, content_type=metrics.OPENMETRICS if openmetrics else metrics.PROMETHEUS)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _openapi(self, request: Request) -> Response:
        return _json(openapi_document(self.config.prefix, __version__))


_LINKS = (
    ("dashboard", "/"),
    ("stats", "/stats"),
    ("endpoints", "/endpoints"),
    ("requests", "/requests"),
    ("errors", "/errors"),
    ("timeseries", "/timeseries"),
    ("health", "/health"),
    ("alerts", "/alerts"),
    ("slow", "/slow"),
    ("issues", "/issues"),
    ("checkins", "/checkins"),
    ("metrics", "/metrics"),
    ("openapi", "/openapi.json"),
)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(to_json(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
