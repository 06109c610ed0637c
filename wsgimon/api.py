"""The monitoring endpoints under the prefix: a small werkzeug app that serves JSON.

Every response is ``Cache-Control: no-store``; bad parameters get a 400 with
``{"error": ...}``, unknown paths a JSON 404, other methods a 405 with
``Allow``. Readers flush their own process first so they see their own requests.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import __version__
from .access import check_access
from .aggregate import Aggregate
from .dashboard import render_dashboard
from .guard import internal_error_count, report_internal_error
from .health import DEGRADED, FAIL, OK, CheckResult, HealthRegistry, overall_status
from .openapi import openapi_document
from .process_info import process_info
from .stores.base import ALL, READ_TIMEOUT_S, StoreUnavailable
from .windows import HOUR, Window, parse_duration, parse_window

if TYPE_CHECKING:
    from .middleware import MonitorMiddleware

__all__ = ["MonitoringApp", "BadRequest"]

_SORT_KEYS: dict[str, Callable[[dict[str, Any]], float]] = {
    "requests": lambda e: e["requests"],
    "errors": lambda e: e["errors"],
    "p95": lambda e: e["latency_ms"]["p95"] or 0.0,
    "avg": lambda e: e["latency_ms"]["avg"] or 0.0,
}
_STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}
_MAX_LIMIT = 10_000
_MIN_REQUESTS_FOR_THRESHOLDS = 20
_ALIVE_S = 60.0
_READ_FLUSH_S = 0.25  # how long a read waits to write its own process's requests first
_HEALTH_FLUSH_S = 0.02
_HEALTH_BUDGET_S = 0.06  # all the store reads of one health answer
_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1c7ed6"/>'
    '<path d="M2 11h3l2-6 2 8 2-4h3" fill="none" stroke="#fff" stroke-width="1.6"/></svg>'
)
_MAX_POINTS = 1500
_STEPS = {
    60: "1m",
    300: "5m",
    600: "10m",
    900: "15m",
    1800: "30m",
    3600: "1h",
    21600: "6h",
    43200: "12h",
    86400: "1d",
}


def _default_step(span_s: float, minute_retention_s: float) -> str:
    """At most 200 points, from buckets the store still has."""
    for seconds, label in _STEPS.items():
        if span_s / seconds <= 200 and (seconds >= HOUR or span_s <= minute_retention_s):
            return label
    return "1d"


_ROUTES = (
    ("/", "dashboard"),
    ("/index.json", "index"),
    ("/favicon.svg", "favicon"),
    ("/stats", "stats"),
    ("/endpoints", "endpoints"),
    ("/requests", "requests"),
    ("/errors", "errors"),
    ("/timeseries", "timeseries"),
    ("/health", "health"),
    ("/openapi.json", "openapi"),
)


@functools.lru_cache(maxsize=1)
def _url_map() -> Map:
    """Built once per process: building a werkzeug Map costs more than making a Flask app."""
    return Map([Rule(path, endpoint=name) for path, name in _ROUTES], strict_slashes=False)


class BadRequest(Exception):
    """A query parameter the API cannot use; becomes a 400 with the message."""


class MonitoringApp:
    def __init__(self, monitor: MonitorMiddleware) -> None:
        self.monitor = monitor
        self.config = monitor.config
        self.health = HealthRegistry(self.config.health_check_timeout)
        self._internal_errors_before = internal_error_count()
        self._views: dict[str, Callable[[Request], Response]] = {
            "dashboard": self.dashboard,
            "index": self.index,
            "favicon": self.favicon,
            "stats": self.stats,
            "endpoints": self.endpoints,
            "requests": self.requests,
            "errors": self.errors,
            "timeseries": self.timeseries,
            "health": self.health_view,
            "openapi": self.openapi,
        }

    # -- dispatch ------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        prefix = self.config.prefix
        sub_environ = dict(environ)
        sub_environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        sub_environ["PATH_INFO"] = environ.get("PATH_INFO", "")[len(prefix) :] or "/"
        response = self._respond(sub_environ, None)
        return response(environ, start_response)

    def serve_health(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The ``health_path`` alias."""
        return self._respond(environ, "health")(environ, start_response)

    def _respond(self, environ: dict[str, Any], fixed_endpoint: str | None) -> Response:
        request = Request(environ)
        try:
            denial = check_access(environ, self.config)
            if denial is not None:
                response = _json({"error": denial.message}, denial.status)
                if denial.challenge:
                    response.headers["WWW-Authenticate"] = denial.challenge
                return response
            if fixed_endpoint is None:
                adapter = _url_map().bind_to_environ(environ)
                endpoint, _ = adapter.match(method="GET")
            else:
                endpoint = fixed_endpoint
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
            # A load balancer's health probe must be answered at once whatever the store does;
            # other reads wait for a locked store at most READ_TIMEOUT_S.
            budget = _HEALTH_BUDGET_S if endpoint == "health" else READ_TIMEOUT_S + _READ_FLUSH_S
            with self.monitor.store.time_limit(budget):
                return self._views[endpoint](request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        except StoreUnavailable as exc:
            return _json({"error": f"the statistics store cannot be read now: {exc}"}, 503)
        except MethodNotAllowed:
            response = _json({"error": f"method {request.method} not allowed; use GET"}, 405)
            response.headers["Allow"] = "GET, HEAD"
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

    def _flush_own(self, timeout: float = _READ_FLUSH_S) -> None:
        """This process's own requests into the answer, without waiting long for a locked store."""
        self.monitor.recorder.flush(timeout=timeout)

    def _url(self, path: str) -> str:
        return self.config.prefix + path

    # -- views ---------------------------------------------------------------------
    def dashboard(self, request: Request) -> Response:
        _reject_unknown(request, set())
        return render_dashboard(self.config.prefix, __version__)

    def favicon(self, request: Request) -> Response:
        response = Response(_FAVICON, mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def index(self, request: Request) -> Response:
        links = {name: self._url(path) for name, path in _LINKS}
        return _json({"name": "wsgimon", "version": __version__, "links": links})

    def _window(self, request: Request) -> tuple[Window, float]:
        try:
            window = parse_window(request.args.get("window"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return window, time.time()

    def stats(self, request: Request) -> Response:
        _reject_unknown(request, {"window"})
        window, now = self._window(request)
        self._flush_own()
        store = self.monitor.store
        overall = store.overall(window.since(now), now)
        started = self._deployment_started(now)
        uptime = max(0.0, now - started)
        rate_window = min(300.0, max(5.0, uptime))
        recent = store.overall(now - rate_window, now)
        return _json(
            {
                "window": window.label,
                "requests": overall.count,
                "errors": overall.errors,
                "client_errors": overall.client_errors,
                "error_rate": _rate(overall.errors, overall.count),
                "latency_ms": overall.latency_ms(),
                "status_codes": {str(k): v for k, v in sorted(overall.status_codes.items())},
                "error_types": dict(sorted(overall.error_types.items(), key=lambda kv: -kv[1])),
                "requests_per_minute": round(recent.count * 60.0 / rate_window, 3),
                "uptime_s": round(uptime, 3),
                "since": iso(started),
                "endpoints_overflowed": store.overflowed(),
            }
        )

    def _deployment_started(self, now: float) -> float:
        try:
            started = self.monitor.store.deployment_started()
        except StoreUnavailable:
            started = None
        return min(started, self.monitor.recorder.started_at) if started else self.monitor.recorder.started_at

    def endpoints(self, request: Request) -> Response:
        _reject_unknown(request, {"sort", "limit", "window", "sparkline"})
        sparkline_points = _int_arg(request, "sparkline", default=0, maximum=60) if "sparkline" in request.args else 0
        sort = request.args.get("sort", "requests")
        if sort not in _SORT_KEYS:
            raise BadRequest(f"sort must be one of {', '.join(_SORT_KEYS)}, got {sort!r}")
        limit = _int_arg(request, "limit", default=_MAX_LIMIT, maximum=_MAX_LIMIT)
        window, now = self._window(request)
        self._flush_own()
        rows: list[dict[str, Any]] = [
            {
                "endpoint": endpoint,
                "method": method,
                "requests": agg.count,
                "errors": agg.errors,
                "client_errors": agg.client_errors,
                "error_rate": _rate(agg.errors, agg.count),
                "latency_ms": agg.latency_ms(),
                "status_codes": {str(k): v for k, v in sorted(agg.status_codes.items())},
                "last_seen": iso(agg.last_seen),
            }
            for (endpoint, method), agg in self.monitor.store.endpoint_totals(window.since(now), now).items()
        ]
        key = _SORT_KEYS[sort]
        rows.sort(key=lambda row: (-key(row), row["endpoint"], row["method"]))
        rows = rows[:limit]
        if sparkline_points:
            since = window.since(now)
            if since is None:
                since = min(self._deployment_started(now), now - 60)
            lines = self.monitor.store.average_lines(since, now, sparkline_points)
            for row in rows:
                row["sparkline"] = lines.get((row["endpoint"], row["method"]), [None] * sparkline_points)
        return _json({"window": window.label, "endpoints": rows})

    def requests(self, request: Request) -> Response:
        _reject_unknown(request, {"limit", "status", "endpoint", "min_ms"})
        cap = self.config.recent_requests
        limit = _int_arg(request, "limit", default=min(100, cap), maximum=cap, clamp=True)
        status_filter = _status_filter(request.args.get("status"))
        endpoint = request.args.get("endpoint")
        min_ms = _float_arg(request, "min_ms")
        self._flush_own()
        rows = []
        for entry in self.monitor.store.recent_requests(cap):
            if status_filter is not None and not status_filter(entry.status):
                continue
            if endpoint is not None and entry.endpoint != endpoint:
                continue
            if min_ms is not None and entry.duration_ms < min_ms:
                continue
            rows.append(
                {
                    "time": iso(entry.time),
                    "method": entry.method,
                    "path": entry.path,
                    "endpoint": entry.endpoint,
                    "status": entry.status,
                    "duration_ms": round(entry.duration_ms, 3),
                    "ttfb_ms": None if entry.ttfb_ms is None else round(entry.ttfb_ms, 3),
                    "error_type": entry.error_type,
                    "response_bytes": entry.response_bytes,
                }
            )
            if len(rows) >= limit:
                break
        return _json({"requests": rows})

    def errors(self, request: Request) -> Response:
        _reject_unknown(request, {"limit", "window"})
        limit = _int_arg(request, "limit", default=_MAX_LIMIT, maximum=_MAX_LIMIT)
        window, now = self._window(request)
        self._flush_own()
        store = self.monitor.store
        samples = store.error_samples()
        rows = []
        # Counts in the window come from the buckets; message and traceback from the latest sample.
        for (endpoint, method), (error_types, last_seen) in store.error_totals(window.since(now), now).items():
            for error_type, count in error_types.items():
                sample = samples.get((error_type, endpoint, method))
                rows.append(
                    {
                        "type": error_type,
                        "endpoint": endpoint,
                        "method": method,
                        "count": count,
                        "first_seen": iso(sample.first_seen) if sample else None,
                        "last_seen": iso(sample.last_seen if sample else last_seen),
                        "message": sample.message if sample else error_type,
                        "traceback": sample.traceback if sample else None,
                    }
                )
        rows.sort(key=lambda row: (row["last_seen"] or "", row["count"]), reverse=True)
        return _json({"window": window.label, "errors": rows[:limit]})

    def timeseries(self, request: Request) -> Response:
        _reject_unknown(request, {"window", "step", "endpoint", "method"})
        window, now = self._window(request)
        store = self.monitor.store
        since = window.since(now)
        if since is None:
            started = store.deployment_started() or self.monitor.recorder.started_at
            since = min(started, now - 60)
        step_text = request.args.get("step") or _default_step(now - since, store.minute_retention_s)
        try:
            step = parse_duration(step_text, "step")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if step not in _STEPS:
            raise BadRequest(f"step must be one of {', '.join(_STEPS.values())}, got {step_text!r}")
        if step < HOUR and since < now - store.minute_retention_s:
            raise BadRequest(
                f"step {step_text} needs minute data, kept for {store.minute_retention_s / 3600:g} h; "
                "use a shorter window or a step of 1h or more"
            )
        if (now - since) / step > _MAX_POINTS:
            raise BadRequest(f"window/step gives more than {_MAX_POINTS} points; use a larger step")
        endpoint = request.args.get("endpoint")
        method = request.args.get("method")
        if (endpoint is None) != (method is None):
            raise BadRequest("endpoint and method must be given together")
        key = ALL if endpoint is None or method is None else (endpoint, method)
        self._flush_own()
        points = []
        for start, agg in store.series(since, now, step, key):
            latency = agg.latency_ms()
            points.append(
                {
                    "time": iso(start),
                    "requests": agg.count,
                    "errors": agg.errors,
                    "client_errors": agg.client_errors,
                    "avg": latency["avg"],
                    "p50": latency["p50"],
                    "p95": latency["p95"],
                    "p99": latency["p99"],
                }
            )
        return _json({"window": window.label, "step_s": step, "points": points})

    def health_view(self, request: Request) -> Response:
        _reject_unknown(request, set())
        self._flush_own(_HEALTH_FLUSH_S)
        checks: dict[str, CheckResult] = {}
        checks.update(self._builtin_checks())
        checks.update(self.health.run_all())
        status = overall_status(checks)
        now = time.time()
        recorder = self.monitor.recorder
        try:
            processes = self.monitor.store.processes(now - _ALIVE_S)
        except StoreUnavailable:
            processes = []
        body = {
            "status": status,
            "checks": {name: result.to_json() for name, result in checks.items()},
            "uptime_s": round(now - self._deployment_started(now), 3),
            "version": __version__,
            "process": {**process_info(), "uptime_s": round(now - recorder.started_at, 3)},
            "deployment": {
                "processes": [
                    {
                        "host": p.host,
                        "pid": p.pid,
                        "started": iso(p.started),
                        "last_flush": iso(p.last_flush),
                        "requests": p.requests,
                    }
                    for p in processes
                ],
            },
        }
        return _json(body, 503 if status == FAIL else 200)

    def _builtin_checks(self) -> dict[str, CheckResult]:
        config = self.config
        store = self.monitor.store
        recorder = self.monitor.recorder
        results: dict[str, CheckResult] = {}
        healthy, detail = store.health()
        if recorder.store_error is not None:
            healthy = False
            detail = f"writes failing ({recorder.store_error})"
        if not healthy and recorder.unsent_requests:
            detail += f"; {recorder.unsent_requests} requests kept in memory and retried"
        results["store"] = CheckResult(OK if healthy else DEGRADED, detail, 0.0)
        now = time.time()
        window = f"last {config.health_window_s:g} s"
        try:
            recent = store.overall(now - config.health_window_s, now)
        except StoreUnavailable as exc:
            results["store"] = CheckResult(DEGRADED, f"{detail}; reads failing: {exc}", 0.0)
            recent = Aggregate()
        rate = recent.error_rate
        if recent.count >= _MIN_REQUESTS_FOR_THRESHOLDS and rate > config.degraded_error_rate:
            results["error_rate"] = CheckResult(
                DEGRADED,
                f"{rate:.1%} of {recent.count} requests failed in the {window} "
                f"(threshold {config.degraded_error_rate:.1%})",
                0.0,
            )
        else:
            results["error_rate"] = CheckResult(OK, f"{rate:.1%} of {recent.count} requests in the {window}", 0.0)
        if config.degraded_p95_ms is not None:
            p95 = recent.latency_ms()["p95"]
            slow = recent.count >= _MIN_REQUESTS_FOR_THRESHOLDS and p95 is not None and p95 > config.degraded_p95_ms
            detail = f"p95 {p95} ms in the {window} (threshold {config.degraded_p95_ms:g} ms)"
            results["latency_p95"] = CheckResult(DEGRADED if slow else OK, detail, 0.0)
        problems = []
        if recorder.dropped:
            problems.append(f"{recorder.dropped} records dropped (flusher behind)")
        if recorder.lost_to_store:
            problems.append(f"{recorder.lost_to_store} requests lost while the store was unavailable")
        errors = internal_error_count() - self._internal_errors_before
        if errors:
            problems.append(f"{errors} internal errors logged")
        results["wsgimon"] = CheckResult(DEGRADED if problems else OK, "; ".join(problems) or "ok", 0.0)
        return results

    def openapi(self, request: Request) -> Response:
        return _json(openapi_document(self.config.prefix, __version__))


_LINKS = (
    ("dashboard", "/"),
    ("stats", "/stats"),
    ("endpoints", "/endpoints"),
    ("requests", "/requests"),
    ("errors", "/errors"),
    ("timeseries", "/timeseries"),
    ("health", "/health"),
    ("openapi", "/openapi.json"),
)


def iso(timestamp: float) -> str | None:
    """ISO 8601 UTC with milliseconds and a ``Z``; None for 'never'."""
    if not timestamp:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(
        json.dumps(body, allow_nan=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _reject_unknown(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; expected: {expected}")


def _int_arg(request: Request, name: str, *, default: int, maximum: int, clamp: bool = False) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer, got {raw!r}")
    if value > maximum:
        if clamp:
            return maximum
        raise BadRequest(f"{name} must be at most {maximum}, got {raw!r}")
    return value


def _float_arg(request: Request, name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw!r}") from None
    if not 0.0 <= value < float("inf"):
        raise BadRequest(f"{name} must be a non-negative number, got {raw!r}")
    return value


def _status_filter(raw: str | None) -> Callable[[int], bool] | None:
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _STATUS_CLASSES:
        hundreds = int(value[0])
        return lambda status: status // 100 == hundreds
    if len(value) == 3 and value.isdigit() and 100 <= int(value) <= 599:
        code = int(value)
        return lambda status: status == code
    raise BadRequest(f"status must be 1xx-5xx or a status code such as 404, got {raw!r}")
