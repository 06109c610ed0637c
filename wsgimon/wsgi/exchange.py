"""One request's exchange with the server: the wrapped ``start_response``, the body, and the record at ``close()``.

This is the part of wsgimon that runs inside every request, so it is small and plain
PEP 3333: a clock read, a wrapped ``start_response`` (the status, Flask's route), a generator
that follows the body and finishes the record when the server closes it (``close()`` of the
app's body exactly once), and one append to the recorder's deque. A list body is recorded at
once and returned as is; a ``wsgi.file_wrapper`` stays the server's own (sendfile). No I/O,
no logging, no formatting: exceptions are handed over as they are, their frames dropped when
the record is made.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..internal_errors import report_internal_error
from ..recording.naming import ENDPOINT_KEY, MAX_PATH_CHARS, UNMATCHED
from ..recording.options import FingerprintFunc
from ..recording.recorder import MAX_PENDING
from .captured import EXCEPTION_KEY, CapturedException
from .time_spent import TimeSpent

if TYPE_CHECKING:
    from .middleware import MonitorMiddleware

__all__ = ["Body", "Environ", "Exchange", "MAX_METHOD_CHARS", "StartResponse"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]

_PROCESS_EXITS = (SystemExit, KeyboardInterrupt)
_NO_ROUTE_STATUSES = ("404", "405")
MAX_METHOD_CHARS = 32


class Exchange:
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
        "spent",
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
        self.samples: list[tuple[tuple[str, int, str], ...]] | None = None  # the sampler's, if slow
        self.spent: TimeSpent | None = None  # its queries and calls, made at the first one
        # In flight until its record is made: what the sampler looks at, and what /stats counts.
        # Looked up at call time: gevent patches threading after wsgimon may have been imported.
        self._ident = ident = threading.get_ident()
        mw._flight_table[ident] = self
        self._wrote = False  # bytes went out through write(): the status is the client's now
        self._ttfb: float | None = None
        self._size = 0
        self._body_exc: BaseException | None = None
        self._closing = False

    @property
    def answered(self) -> bool:
        return self._status is not None

    @property
    def description(self) -> str:
        return f"{self._environ.get('REQUEST_METHOD', '?')} {self._path[:200]}"

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

    def abandon(self, exc: CapturedException) -> None:
        """Its process is being killed (gunicorn's worker timeout): record it now, as failed."""
        if not self._wrote:
            self._status = None
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
        closing the app's body and recording are :class:`Body`'s ``close()``, the
        server's call, as PEP 3333 wants it (not the last ``next()``). A body a server
        drops without closing is closed here, at GeneratorExit.
        """
        ttfb = self._ttfb
        size = self._size
        try:
            yield b""  # primed by Body: from here on, a body dropped unclosed reaches GeneratorExit
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
            mw._flight_table.pop(self._ident, None)
            if mw.in_flight.waiting:
                mw.in_flight.finished()
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
                    self.spent,
                )
            )
            if len(pending) > MAX_PENDING:
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


class Body:
    """What the server gets for a streamed body: it iterates it, and its ``close()`` ends the record.

    Iteration is the exchange's generator itself (``__iter__`` hands it over, so each chunk
    costs a generator resume). ``close()`` closes the generator, then the app's body (an
    error there reaches the server from ``close()``, where it belongs), then records. Nothing
    refers back to this object, so a server that drops it unclosed frees it at once, and the
    generator's GeneratorExit closes the body and records.
    """

    __slots__ = ("_exchange", "_body", "_chunks", "_closed")

    def __init__(self, exchange: Exchange, body: Iterable[bytes]) -> None:
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
