"""The WSGI middleware: times every request and answers ``/monitoring/*`` itself.

Usage::

    from wsgimon import MonitorMiddleware

    app.wsgi_app = MonitorMiddleware(app.wsgi_app)            # Flask
    application = MonitorMiddleware(application, token="...")  # any WSGI callable

Everything costly happens in ``__init__`` or off the request thread; one request's
part is :mod:`.exchange`. Any failure inside wsgimon is logged and the request goes on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ..config import Config
from ..internal_errors import logger, report_internal_error
from ..recording import flusher as background
from ..recording.in_flight import InFlightRequest, RequestsInFlight
from ..recording.naming import EndpointNamer
from ..recording.recorder import Recorder
from ..stores import open_store
from ..stores.contract import StoreUnavailable
from .captured import want_originals
from .exchange import Body, Environ, Exchange, StartResponse
from .time_hooks import install_hooks
from .time_spent import track, untrack

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..alerts.engine import AlertEngine
    from ..api.app import MonitoringApp
    from ..api.checks import HealthCheck
    from ..config import Options
    from ..reporting.schedule import ReportScheduler

__all__ = ["MonitorMiddleware"]

WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class MonitorMiddleware:
    """Wraps a WSGI application; see the module docstring and the README for options."""

    enabled: bool

    def __init__(self, app: WSGIApp, **options: Unpack[Options]) -> None:
        self.app = app
        if isinstance(app, MonitorMiddleware) and app.enabled:
            # A setup that ran twice: the inner one records (it knows the framework), this one passes.
            _warn_wrapped_twice()
            options["enabled"] = False
        self.config = config = Config.build(options)
        self.enabled = config.enabled
        self.store = open_store(
            config.storage if config.enabled else "memory://",
            recent_requests=config.recent_requests,
            minute_retention_s=config.minute_retention_h * 3600,
            retention_s=config.retention_days * 86400,
        )
        self.store.max_releases = config.max_releases
        from ..recording.release import detect_release

        #: the release this process runs (``release``, WSGIMON_RELEASE or a platform's variable), or None
        self.release = detect_release(os.environ, config.release) if config.enabled else None
        from .integrations import find_integration

        self.integration = integration = find_integration(app) if config.enabled else None
        self._route_at_start = None if integration is None else integration.route_at_start
        self._reads_flask_rule = integration is not None and integration.name == "flask"
        self._route_at_end = None if integration is None else integration.route_at_end
        self.recorder = recorder = Recorder(
            self.store,
            EndpointNamer(
                config.max_endpoints, None if integration is None else integration.matcher, self.store.admit_name
            ),
            redact_keys=config.redact_keys,
            recent_requests=config.recent_requests,
            flush_interval=config.flush_interval,
            max_traceback_chars=config.max_traceback_chars,
            histogram_buckets_s=config.metrics_buckets,
            capturing=(config.enabled and config.capture_db, config.enabled and config.capture_http),
            n_plus_one_repeats=config.n_plus_one_repeats,
        )
        #: this process's requests in flight (the sampler, /stats and /health look at them)
        self.in_flight = RequestsInFlight()
        self._flight_table = self.in_flight.table
        from ..api.app import MonitoringApp
        from ..api.context import Context

        context = Context(config, self.store, recorder, self.in_flight, self.release)
        self._api: MonitoringApp = MonitoringApp(context)
        self.alerts: AlertEngine | None = None
        if config.enabled:
            from ..alerts.channels import configured_channels

            if configured_channels(config):
                from ..alerts.engine import AlertEngine

                self.alerts = context.alerts = AlertEngine(config, self.store, context.health)
        self.report: ReportScheduler | None = None
        if config.enabled and config.report_wanted:
            from ..reporting.schedule import ReportScheduler

            self.report = context.report = ReportScheduler(config, self.store)
        self._prefix = config.prefix
        self._prefix_len = len(config.prefix)
        self._health_path = config.health_path
        self._exclude = tuple(path.rstrip("/") or "/" for path in config.exclude)
        # Every path wsgimon treats apart, for one C-level startswith per request.
        self._own_paths: tuple[str, ...] = (config.prefix, *filter(None, [config.health_path]), *config.exclude)
        if not config.enabled:
            self._own_paths = ()
        self._endpoint_func = config.endpoint
        self._fingerprint_func = config.fingerprint
        if config.fingerprint is not None:
            want_originals(1)
        self._pending = recorder.pending
        if config.enabled and (config.capture_db or config.capture_http):
            track(
                self.in_flight,
                queries=config.capture_db,
                calls=config.capture_http,
                slow_s=config.slow_query_ms / 1000.0,
                repeats=config.n_plus_one_repeats,
            )
            install_hooks(config.capture_db, config.capture_http)
            recorder.before_flush = _hooks_for(config.capture_db, config.capture_http)
        self._background_started = False
        self._closed = False
        self._told_wrapped_twice = False
        self._nested = False  # wrapped in another middleware that records (found at the first request)
        # When the middleware is collected without close(), its recorder gets a last
        # flush in the background; the recorder holds neither the middleware nor the app.
        self._finalizer = weakref.finalize(self, background.retire, recorder)
        recorder.in_flight_probe = _in_flight_probe(weakref.ref(self))
        recorder.release = self.release
        self._finalizer.atexit = False
        _live_monitors.add(self)
        if config.enabled:
            _recording_monitors[0] += 1
            self._uncount = weakref.finalize(self, _one_less_recording)
            self._uncount.atexit = False

    def add_health_check(self, name: str, check: Callable[[], object]) -> None:
        """Add a check to ``/monitoring/health``: it fails when it raises, returns False or is slow."""
        self._api.health.add(name, check)

    @property
    def health_checks(self) -> dict[str, HealthCheck]:
        return self._api.health.checks

    def flush(self) -> None:
        """Write this process's pending records to the store now."""
        self.recorder.flush()

    def close(self) -> None:
        """Write what is pending, release the store and let go of the app's signals; idempotent.

        Done at exit for every middleware still open. A closed middleware passes
        requests (``/monitoring/*`` included) straight to the app, unrecorded.
        """
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._uncount()  # once, and not again when collected
        if self._fingerprint_func is not None:
            want_originals(-1)
        self._own_paths = ()
        self._background_started = False
        self._finalizer.detach()
        if self.integration is not None and self.integration.close is not None:
            try:
                self.integration.close()
            except Exception as exc:
                report_internal_error("close", exc)
        self.in_flight.clear()
        untrack(self.in_flight)
        from ..recording.sampler import sampler

        sampler().unwatch(self)
        self.recorder.final_flush()
        if self.alerts is not None:
            self.alerts.close()
        if self.report is not None:
            self.report.close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self._own_paths):
            answer = self._serve_own(path, environ, start_response)
            if answer is not None:
                return answer
        if not self._background_started and not self._start_background():
            return self.app(environ, start_response)
        try:
            exchange = Exchange(self, environ, start_response, path)
        except Exception as exc:
            report_internal_error("request start", exc)
            return self.app(environ, start_response)
        try:
            body = self.app(environ, exchange.start_response)
        except BaseException as exc:
            exchange.failed(exc)
            raise
        try:
            if type(body) is list:
                if exchange.complete(body):
                    return body
            elif type(body) is environ.get("wsgi.file_wrapper"):
                return exchange.follow_file(body)
            # Not a local here: an exception handed over in the environ keeps this frame
            # (and its locals) alive until a GC run, and the server must be able to drop it.
            return Body(exchange, body)
        except Exception as exc:
            report_internal_error("response wrap", exc)
            return body

    def _inside_another(self) -> bool:
        """This thread runs a request another middleware records: this one is wrapped in it. Asked at
        this middleware's first request, and only while several record in the process: a mark in the
        environ would cost every request a dict insert, which may resize it (about 650 instructions)."""
        ident = threading.get_ident()
        for monitor in list(_live_monitors):
            if monitor is not self and ident in monitor._flight_table:
                if not self._told_wrapped_twice:
                    self._told_wrapped_twice = True
                    _warn_wrapped_twice()
                return True
        return False

    def _serve_own(self, path: str, environ: Environ, start_response: StartResponse) -> Iterable[bytes] | None:
        """Monitoring API, health path and excluded paths; None for a path that only looks alike."""
        if path.startswith(self._prefix) and (len(path) == self._prefix_len or path[self._prefix_len] == "/"):
            self._serving()
            return self._api(environ, start_response)
        if path == self._health_path:
            self._serving()
            return self._api.serve_health(environ, start_response)
        for excluded in self._exclude:
            # Whole segments only: /static excludes /static/app.js, not /static-admin.
            if path.startswith(excluded) and (len(path) == len(excluded) or path[len(excluded)] == "/"):
                return self.app(environ, start_response)
        return None

    def _serving(self) -> None:
        # A worker that only answers probes still runs its schedule and alert rules.
        if not self._background_started:
            self._start_background()

    def _start_background(self) -> bool:
        """Start recording in this process; False when disabled, closed or wrapped in another
        middleware that records (a pass-through)."""
        if self._closed or not self.enabled or self._nested:
            return False
        if _recording_monitors[0] > 1 and self._inside_another():
            # Another MonitorMiddleware further out records this request (and, the way apps are
            # put together, every request that reaches this one): count each once.
            self._nested = True
            return False
        try:
            self.recorder.ensure_started()
            if self.alerts is not None:
                self.alerts.start()
            if self.report is not None:
                self.report.start()
            self._watch()
            if self.config.checkins:
                self._declare_checkins()
            if "gunicorn" in sys.modules:
                from .integrations.gunicorn import attach

                attach(self)
        except Exception as exc:
            report_internal_error("request start", exc)
            return False
        self._background_started = True
        return True

    def _declare_checkins(self) -> None:
        """The configured check-ins into the store (each process at its start: config wins)."""
        now = time.time()
        for monitor in self.config.checkins:
            try:
                self.store.declare_checkin(dataclasses.replace(monitor, created=now))
            except StoreUnavailable as exc:
                logger.warning("wsgimon: check-in %s not declared, the store is unavailable (%s)", monitor.name, exc)
            except Exception as exc:
                report_internal_error("check-in declaration", exc)

    def _watch(self) -> None:
        from ..recording.sampler import sampler, sampling_unavailable

        config = self.config
        if config.slow_request_ms and sampling_unavailable() is None:
            sampler().watch(self, config.slow_request_ms / 1000.0, config.slow_sample_interval_ms / 1000.0)

    @property
    def requests_in_flight(self) -> Mapping[int, InFlightRequest]:
        """Thread id -> request in flight in this process (what the sampler looks at)."""
        return self._flight_table

    def _forget_background(self) -> None:
        # After a fork the child has none of the parent's threads: start anew on its first request.
        self.in_flight.clear()
        if not self._closed:
            self._background_started = False
            self.recorder.after_fork()


_live_monitors: weakref.WeakSet[MonitorMiddleware] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for monitor in list(_live_monitors):
        monitor._forget_background()


os.register_at_fork(after_in_child=_reset_after_fork)


#: middlewares recording in this process (one item: read on every request without a global lookup's
#: dict miss); above one, a request checks it is not already recorded by another (see _inside_another)
_recording_monitors = [0]


def _one_less_recording() -> None:
    _recording_monitors[0] -= 1


def _warn_wrapped_twice() -> None:
    logger.warning(
        "wsgimon: the application is wrapped in MonitorMiddleware twice; each request is recorded "
        "once (remove one of the wraps)"
    )


def _hooks_for(queries: bool, calls: bool) -> Callable[[], None]:
    """Hooks for libraries imported after the middleware was made, checked at each flush."""

    def install() -> None:
        install_hooks(queries, calls)

    return install


def _in_flight_probe(monitor: weakref.ref[MonitorMiddleware]) -> Callable[[], tuple[int, float | None, str | None]]:
    """The recorder's view of the requests in flight, holding the middleware weakly (so the app can go)."""

    def probe() -> tuple[int, float | None, str | None]:
        alive = monitor()
        return (0, None, None) if alive is None else alive.in_flight.summary()

    return probe
