"""The WSGI middleware: times every request and answers ``/monitoring/*`` itself.

Usage::

    from wsgimon import MonitorMiddleware

    app.wsgi_app = MonitorMiddleware(app.wsgi_app)            # Flask
    application = MonitorMiddleware(application, token="...")  # any WSGI callable

Everything costly happens in ``__init__`` or off the request thread. A request
costs a clock read, a wrapped ``start_response``, a generator that follows the
body and finishes the record when the server closes it, and one append to a
deque. Any failure inside wsgimon is logged and the request goes on.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from threading import get_ident
from time import perf_counter
from time import time as wall_clock
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..internal_errors import report_internal_error
from ..recording import flusher as background
from ..recording.naming import ENDPOINT_KEY, MAX_PATH_CHARS, UNMATCHED, EndpointNamer
from ..recording.options import FingerprintFunc
from ..recording.recorder import _MAX_PENDING, Recorder
from ..stores import open_store
from .captured import EXCEPTION_KEY, CapturedException, want_originals

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..alerts.engine import AlertEngine
    from ..api.app import MonitoringApp
    from ..api.checks import HealthCheck
    from ..config import Options
    from ..reporting.schedule import ReportScheduler

__all__ = ["MonitorMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class MonitorMiddleware:
    """Wraps a WSGI application; see the module docstring and the README for options."""

    def __init__(self, app: WSGIApp, **options: Unpack[Options]) -> None:
        self.app = app
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
        )
        from ..api.app import MonitoringApp

        self._api: MonitoringApp = MonitoringApp(self)
        self.alerts: AlertEngine | None = None
        if config.enabled:
            from ..alerts.channels import configured_channels

            if configured_channels(config):
                from ..alerts.engine import AlertEngine

                self.alerts = AlertEngine(config, self.store, self._api.health)
        self.report: ReportScheduler | None = None
        if config.enabled and config.report_wanted:
            from ..reporting.schedule import ReportScheduler

            self.report = ReportScheduler(config, self.store)
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
        self._background_started = False
        self._closed = False
        #: thread id -> request in flight in this process (see watchdog.py)
        self._in_flight: dict[int, _Exchange] = {}
        # When the middleware is collected without close(), its recorder gets a last
        # flush in the background; the recorder holds neither the middleware nor the app.
        self._finalizer = weakref.finalize(self, background.retire, recorder)
        recorder.in_flight_probe = _in_flight_probe(weakref.ref(self))
        recorder.release = self.release
        self._finalizer.atexit = False
        _live_monitors.add(self)

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
        self._in_flight.clear()
        from ..recording.sampler import watchdog

        watchdog().unwatch(self)
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
            exchange = _Exchange(self, environ, start_response, path)
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
            return _Body(exchange, body)
        except Exception as exc:
            report_internal_error("response wrap", exc)
            return body

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
        """Start recording in this process; False when disabled or closed (a pass-through)."""
        if self._closed or not self.enabled:
            return False
        try:
            self.recorder.ensure_started()
            if self.alerts is not None:
                self.alerts.start()
            if self.report is not None:
                self.report.start()
            self._watch()
        except Exception as exc:
            report_internal_error("request start", exc)
            return False
        self._background_started = True
        return True

    def _watch(self) -> None:
        from ..recording.sampler import sampling_unavailable, watchdog

        config = self.config
        if config.slow_request_ms and sampling_unavailable() is None:
            watchdog().watch(self, config.slow_request_ms / 1000.0, config.slow_sample_interval_ms / 1000.0)

    def _in_flight_summary(self) -> tuple[int, float | None, str | None]:
        """What the process row carries: the count, when the oldest started (wall clock), what it is."""
        running = list(self._in_flight.values())
        if not running:
            return (0, None, None)
        oldest = min(running, key=lambda request: request.started)
        started = wall_clock() - (perf_counter() - oldest.started)
        return (len(running), started, f"{oldest._environ.get('REQUEST_METHOD', '?')} {oldest._path[:200]}")

    @property
    def requests_in_flight(self) -> Mapping[int, _Exchange]:
        """Thread id -> request in flight in this process (what the watchdog looks at)."""
        return self._in_flight

    def _forget_background(self) -> None:
        # After a fork the child has none of the parent's threads: start anew on its first request.
        self._in_flight.clear()
        if not self._closed:
            self._background_started = False
            self.recorder.after_fork()


_live_monitors: weakref.WeakSet[MonitorMiddleware] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for monitor in list(_live_monitors):
        monitor._forget_background()


os.register_at_fork(after_in_child=_reset_after_fork)
_PROCESS_EXITS = (SystemExit, KeyboardInterrupt)
_NO_ROUTE_STATUSES = ("404", "405")
MAX_METHOD_CHARS = 32


class _Exchange:
    """One request in flight: its ``start_response`` and its record."""

    __slots__ = (
        "_mw",
        "_environ",
        "_start_response",
        "_path",
        "_status",
        "_headers",
        "_route",
        "_exc",
        "_done",
        "started",
        "samples",
        "_ident",
        "_wrote",
        "_ttfb",
        "_size",
        "_body_exc",
        "_server_write",
        "_closing",
    )

    def __init__(self, mw: MonitorMiddleware, environ: Environ, start_response: StartResponse, path: str) -> None:
        self._mw = mw
        self._environ = environ
        self._start_response = start_response
        self._path = path
        self._status: str | None = None
        self._headers: list[tuple[str, str]] | None = None
        self._route: str | None = None
        self._exc: CapturedException | None = None
        self._done = False
        self.started = perf_counter()
        self.samples: list[tuple[tuple[str, int, str], ...]] | None = None  # the watchdog's, if slow
        # In flight until its record is made: what the watchdog looks at, and what /stats counts.
        self._ident = ident = get_ident()
        mw._in_flight[ident] = self
        self._wrote = False  # bytes went out through write(): the status is the client's now
        self._ttfb: float | None = None
        self._size = 0
        self._body_exc: BaseException | None = None
        self._closing = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        mw = self._mw
        if mw._reads_flask_rule:
            # Flask's request (and the rule it matched) is gone once the request ends; read
            # inline here, the common case, rather than through route_at_start.
            request = self._environ.get("werkzeug.request")
            if request is not None:
                rule = request.url_rule
                if rule is not None:
                    self._route = rule.rule
                elif status[:3] in _NO_ROUTE_STATUSES:
                    self._route = UNMATCHED
        elif mw._route_at_start is not None:
            self._route = mw._route_at_start(self._environ, status)
        if exc_info is None:
            write = self._start_response(status, headers)
        else:
            if exc_info[1] is not None:
                # The app (Bottle, for one) reports the exception it turned into this response.
                self._exc = CapturedException(exc_info[1])
            # With headers already sent the server re-raises exc_info: the sent status stays.
            write = self._start_response(status, headers, exc_info)
        self._status = status
        self._headers = headers
        self._server_write = write
        return self._write

    def _write(self, data: bytes) -> object:
        """The legacy write(): what it sends counts as sent, like the body's first chunk."""
        if data and not self._wrote:
            self._wrote = True
            self._ttfb = perf_counter()
        self._size += len(data)
        return self._server_write(data)

    def failed(self, exc: BaseException) -> None:
        """The app raised before returning a body: record now."""
        if isinstance(exc, _PROCESS_EXITS):
            # The worker is going away, not failing a request: nothing to record.
            self._done = True
            return
        if not self._wrote:
            self._status = None  # nothing was sent: the server answers 500
        self._record(perf_counter(), self._ttfb, self._size, exc)

    def complete(self, body: list[bytes]) -> bool:
        """A list body is whole: record it now and let the server have the list (it uses its len())."""
        if self._status is None:
            return False
        size = sum(map(len, body))
        now = perf_counter()
        self._record(now, self._ttfb or (now if size else None), self._size + size, None)
        return True

    def follow(self, body: Iterable[bytes]) -> Generator[bytes, None, None]:
        """The body's chunks as the server iterates them, timed to the first byte.

        State stays in locals while it runs and is noted on the exchange when it ends;
        closing the app's body and recording are :class:`_Body`'s ``close()``, the
        server's call, as PEP 3333 wants it (not the last ``next()``). A body a server
        drops without closing is closed here, at GeneratorExit.
        """
        ttfb = self._ttfb
        size = self._size
        try:
            yield b""  # primed by _Body: from here on, a body dropped unclosed reaches GeneratorExit
            for chunk in body:
                if chunk:
                    if ttfb is None:
                        ttfb = perf_counter()
                    size += len(chunk)
                yield chunk
        except GeneratorExit:
            if not self._closing:
                # Garbage collection of a body a server dropped without close(): close it here.
                self._ttfb, self._size = ttfb, size
                with contextlib.suppress(Exception):
                    close = getattr(body, "close", None)
                    if close is not None:
                        close()
                self._record(perf_counter(), ttfb, size, None)
            raise
        except BaseException as error:
            self._body_exc = error
            if ttfb is None:
                # Nothing was sent yet, so the server answers 500.
                self._status = None
            raise
        finally:
            self._ttfb = ttfb
            self._size = size

    def follow_file(self, body: Any) -> Iterable[bytes]:
        """Servers use sendfile only for their own wrapper class: keep it, record from its close()."""
        original_close = getattr(body, "close", None)

        def close() -> None:
            error: BaseException | None = None
            try:
                if original_close is not None:
                    original_close()
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._record(perf_counter(), None, _content_length(self._headers or []) or 0, error)

        body.close = close
        file_body: Iterable[bytes] = body
        return file_body

    def _record(self, now: float, ttfb: float | None, size: int, exc: BaseException | CapturedException | None) -> None:
        """Queue the request's record for the recorder; never raises."""
        if self._done:
            return
        self._done = True
        try:
            mw = self._mw
            environ = self._environ
            if exc is None:
                # Taken out: the exception's frames would tie the environ into a cycle.
                exc = environ.pop(EXCEPTION_KEY, None) or self._exc
            if exc is not None:
                exc = _settled(exc, environ, mw._fingerprint_func)
            hint = environ.get(ENDPOINT_KEY) or self._route
            if hint is None and mw._route_at_end is not None:
                hint = mw._route_at_end(environ)
            if mw._endpoint_func is not None:
                # The user's own naming wins; None leaves it to the framework or the path.
                try:
                    hint = mw._endpoint_func(environ) or hint
                except Exception as internal:
                    report_internal_error("endpoint callable", internal)
            mw._in_flight.pop(self._ident, None)
            t0 = self.started
            path = self._path
            query = environ.get("QUERY_STRING", "")
            if len(path) > MAX_PATH_CHARS or len(query) > MAX_PATH_CHARS:
                # Hostile lengths: bounded before they reach any queue, cache or row.
                path, query = _cut(path), _cut(query)
            pending = mw._pending
            pending.append(
                (
                    t0,
                    environ.get("REQUEST_METHOD", "GET")[:MAX_METHOD_CHARS],
                    path,
                    query,
                    self._status,
                    now - t0,
                    None if ttfb is None else ttfb - t0,
                    size,
                    exc,
                    hint,
                    self.samples,
                )
            )
            if len(pending) > _MAX_PENDING:
                mw.recorder.overfull()
        except Exception as internal:
            report_internal_error("request finish", internal)


def _settled(
    exc: BaseException | CapturedException, environ: Environ, fingerprint: FingerprintFunc | None
) -> BaseException | CapturedException:
    """The exception as recorded: with the user's fingerprint, if one is configured, and never
    holding the original exception (its frames) past the request."""
    if fingerprint is not None:
        captured = exc if isinstance(exc, CapturedException) else CapturedException(exc)
        try:
            said = fingerprint(captured.original or exc, environ)  # type: ignore[arg-type]
        except Exception as internal:
            report_internal_error("fingerprint callable", internal)
            said = None
        if said is not None:
            captured.fingerprint = str(said)
        exc = captured
    if isinstance(exc, CapturedException):
        exc.original = None
    return exc


def _cut(text: str) -> str:
    return text if len(text) <= MAX_PATH_CHARS else text[: MAX_PATH_CHARS - 1] + "…"


_MAX_CONTENT_LENGTH = 2**53  # a size a store's integer holds; anything larger is not believed


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            text = value.strip()
            if text.isascii() and text.isdigit() and len(text) <= 16 and int(text) <= _MAX_CONTENT_LENGTH:
                return int(text)
            return None
    return None


class _Body:
    """What the server gets for a streamed body: it iterates it, and its ``close()`` ends the record.

    Iteration is the exchange's generator itself (``__iter__`` hands it over, so each chunk
    costs a generator resume). ``close()`` closes the generator, then the app's body (an
    error there reaches the server from ``close()``, where it belongs), then records. Nothing
    refers back to this object, so a server that drops it unclosed frees it at once, and the
    generator's GeneratorExit closes the body and records.
    """

    __slots__ = ("_exchange", "_body", "_chunks", "_closed")

    def __init__(self, exchange: _Exchange, body: Iterable[bytes]) -> None:
        self._exchange = exchange
        self._body = body
        self._chunks = chunks = exchange.follow(body)
        next(chunks)  # to its first yield (see follow)
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        exchange = self._exchange
        exchange._closing = True
        self._chunks.close()
        error: BaseException | None = None
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            error = exc
            raise
        finally:
            exchange._record(perf_counter(), exchange._ttfb, exchange._size, exchange._body_exc or error)


def _in_flight_probe(monitor: weakref.ref[MonitorMiddleware]) -> Callable[[], tuple[int, float | None, str | None]]:
    """The recorder's view of the requests in flight, holding the middleware weakly (so the app can go)."""

    def probe() -> tuple[int, float | None, str | None]:
        alive = monitor()
        return (0, None, None) if alive is None else alive._in_flight_summary()

    return probe
