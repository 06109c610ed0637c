"""From raw request records to stored statistics, off the request thread.

The request thread only appends an immutable tuple to a deque (atomic in
CPython, no lock). The recorder folds those tuples into a :class:`Batch` —
naming endpoints, redacting paths, formatting tracebacks — and writes it to the
store. It runs every ``flush_interval`` in a background thread started lazily in
the serving process (after a fork, never before), before every read of the
monitoring API, and at exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from http import HTTPStatus
from itertools import repeat

from ..internal_errors import logger, report_internal_error
from ..stats.aggregate import DEFAULT_BUCKETS_S, Aggregate, bucket_labels
from ..stats.profiles import collapse
from ..stores.contract import Store, StoreUnavailable
from ..stores.records import MAX_ISSUE_FRAMES, Batch, ErrorSample, IssueSample, ProcessRow, RequestEntry, SlowRequest
from ..wsgi.captured import CapturedException, capture, exception_type, was_handled
from . import flusher as background
from .fingerprint import Fingerprinter, Grouping, is_in_app, module_name, status_grouping, title_of
from .naming import CACHED_PATH_CHARS, OTHER, EndpointNamer
from .redaction import scrub, with_redacted_query

__all__ = ["RawRecord", "Recorder"]

# (start perf_counter, method, PATH_INFO, QUERY_STRING, status line or None when the
#  app raised before a response started (the server answers 500),
#  duration s, time to first byte s or None, response bytes or None,
#  exception or None, endpoint hint or None)
_Exc = BaseException | CapturedException | None
# ... and the sampler's stack samples of a slow request, or None
_Samples = list[tuple[tuple[str, int, str], ...]] | None
RawRecord = tuple[float, str, str, str, "str | None", float, "float | None", "int | None", _Exc, "str | None", _Samples]

# (minute, endpoint, method, status, error type, is an error)
_Group = tuple[int, str, str, int, "str | None", bool]
# (minute, method, PATH_INFO, status line, endpoint hint, exception type, handled by the app,
#  the exception's issue fingerprint)
_AlikeKey = tuple[float, str, str, "str | None", "str | None", "type[BaseException] | None", bool, "str | None"]
# (endpoint, status, error type)
_Naming = tuple[str, int, "str | None"]
_NOT_ERRORS = (SystemExit, KeyboardInterrupt, GeneratorExit)
_MAX_MESSAGE_CHARS = 2000
MAX_PENDING = 100_000
_MAX_UNSENT_MINUTES = 120  # statistics kept in memory while the store is unavailable
_HEARTBEAT_S = 10.0  # an idle process still shows up as alive
_MAINTENANCE_S = 60.0
_LOG_PER_FLUSH = 250
_MAX_STATUS_LINES = 1000


class Recorder:
    """Owns the pending records of this process and ships them to the store."""

    def __init__(
        self,
        store: Store,
        namer: EndpointNamer,
        *,
        redact_keys: tuple[str, ...],
        recent_requests: int,
        flush_interval: float,
        max_traceback_chars: int,
        histogram_buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.namer = namer
        self.pending: deque[RawRecord] = deque()
        self.dropped = 0
        self._redact_keys = redact_keys
        self.flush_interval = flush_interval
        self._max_traceback_chars = max_traceback_chars
        self._buckets = bucket_labels(histogram_buckets_s)
        self._recent_requests = recent_requests
        self._status_codes: dict[str, int] = {}
        self._wall_clock = wall_clock
        self._fold_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pid = os.getpid()
        self._host = _host_name()
        self.started_at = wall_clock()
        self.last_flush: float | None = None
        self.requests_flushed = 0
        self._perf_anchor = clock()
        self._wall_anchor = wall_clock()
        self._unsent: Batch | None = None
        self._in_flight: Batch | None = None
        self._fingerprinter = Fingerprinter()
        self._groupings: dict[str, Grouping] = {}
        #: (requests in flight, when the oldest started, "METHOD path" of it): written with each flush.
        self.in_flight_probe: Callable[[], tuple[int, float | None, str | None]] | None = None
        self._in_flight_written: tuple[int, float | None, str | None] = (0, None, None)
        #: the release of this process, written with its row (statistics per release)
        self.release: str | None = None
        self.store_error: str | None = None
        self.lost_to_store = 0
        self._last_write = 0.0
        self._last_maintenance = 0.0

    def set_wall_clock(self, wall_clock: Callable[[], float]) -> None:
        """Time records by ``wall_clock`` from now on (a seam for tests that move time forward)."""
        self._wall_clock = wall_clock
        self._perf_anchor = time.perf_counter()
        self._wall_anchor = wall_clock()

    # -- background flushing ------------------------------------------------------
    def ensure_started(self) -> None:
        """Have this process's flusher thread flush this recorder; after a fork, as a new process."""
        pid = os.getpid()
        if pid != self._pid:
            self._after_fork(pid)
        background.register(self)

    def after_fork(self) -> None:
        """In a forked child: a new process with its own lock and identity."""
        self._after_fork(os.getpid())

    def _after_fork(self, pid: int) -> None:
        # Locks of the parent are unusable in the child, and what the parent had
        # pending is the parent's to write.
        self._pid = pid
        self._fold_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.pending.clear()
        self._unsent = None
        self._in_flight = None
        self.started_at = self._wall_clock()
        self.requests_flushed = 0
        self.last_flush = None

    def shutdown(self) -> None:
        """Stop being flushed in the background and write what is pending; at close and at exit."""
        background.unregister(self)
        self.flush()
        if self.last_flush is not None:
            process = ProcessRow(
                self._host, self._pid, self.started_at, self.last_flush, self.requests_flushed, release=self.release
            )
            try:
                self.store.process_stopped(process)
            except Exception as exc:
                report_internal_error("shutdown", exc)

    def final_flush(self) -> None:
        """The last flush of a recorder whose middleware is gone: write, then release the store."""
        self.shutdown()
        self.store.close()

    # -- folding -------------------------------------------------------------------
    def overfull(self) -> None:
        """Called from the request path when the deque grows past its bound (flusher stuck)."""
        pending = self.pending
        while len(pending) > MAX_PENDING:
            try:
                pending.popleft()
            except IndexError:
                break
            self.dropped += 1

    def flush(self, timeout: float | None = None) -> None:
        """Fold pending records and write them with what earlier failed writes kept; never raises.

        Folding (CPU only) and writing (which may wait for a busy store) take separate
        locks: a reader always folds its own records, waiting for a fold in progress, and
        then writes within ``timeout`` (a reader must not wait for a locked store). What it
        could not write waits in memory for the background flush, and nothing is reported
        as failing.
        """
        try:
            with self._fold_lock:
                self._keep(self._fold())
            if timeout is None:
                with self._write_lock:
                    self._write(None)
            elif self._write_lock.acquire(timeout=timeout):
                try:
                    with self.store.time_limit(timeout):
                        self._write(timeout)
                finally:
                    self._write_lock.release()
        except Exception as exc:
            report_internal_error("flush", exc)

    def _keep(self, batch: Batch) -> None:
        """Add a newer batch to what waits to be written (bounded); under the fold lock."""
        if self._unsent is None:
            self._unsent = batch
        else:
            self.lost_to_store += self._unsent.absorb(batch, self._recent_requests, _MAX_UNSENT_MINUTES)

    def _write(self, timeout: float | None) -> None:
        with self._fold_lock:
            batch, self._unsent = self._unsent or Batch(), None
            self._in_flight = batch
        try:
            self._write_batch(batch, timeout)
        finally:
            self._in_flight = None

    def _probe_in_flight(self) -> tuple[int, float | None, str | None]:
        probe = self.in_flight_probe
        if probe is None:
            return (0, None, None)
        try:
            return probe()
        except Exception as exc:
            report_internal_error("requests in flight", exc)
            return (0, None, None)

    def _write_batch(self, batch: Batch, timeout: float | None) -> None:
        now = self._wall_clock()
        in_flight = self._probe_in_flight()
        if not batch and now - self._last_write < _HEARTBEAT_S and in_flight == self._in_flight_written:
            return
        count = batch.request_count
        process = ProcessRow(
            self._host, self._pid, self.started_at, now, self.requests_flushed + count, *in_flight, self.release
        )
        try:
            self.store.write(batch, process)
        except Exception as exc:
            # Kept (bounded) and retried on the next flush, whatever the cause; older than what
            # was folded meanwhile.
            with self._fold_lock:
                newer, self._unsent = self._unsent, batch
                if newer is not None:
                    self._keep(newer)
            if timeout is not None and isinstance(exc, StoreUnavailable):
                return
            if not isinstance(exc, StoreUnavailable):
                report_internal_error("store write", exc)
            elif self.store_error is None:
                logger.warning(
                    "wsgimon: cannot write to the store (%s); keeping statistics in memory and retrying", exc
                )
            self.store_error = str(exc)
            return
        self.requests_flushed += count
        self.last_flush = self._last_write = now
        self._in_flight_written = in_flight
        if self.store_error is not None:
            logger.warning("wsgimon: the store is writable again; statistics kept in memory were written")
            self.store_error = None
        if timeout is None and now - self._last_maintenance >= _MAINTENANCE_S:
            self._last_maintenance = now
            with contextlib.suppress(StoreUnavailable):
                self.store.maintain(now)

    @property
    def unsent_requests(self) -> int:
        """Requests not in the store yet: waiting, or in a write under way."""
        return sum(batch.request_count for batch in (self._unsent, self._in_flight) if batch is not None)

    def _fold(self) -> Batch:
        batch = Batch()
        pending = self.pending
        records: list[RawRecord] = []
        # Popped in C; fewer than counted when the request path drops some (overfull).
        with contextlib.suppress(IndexError):
            records.extend(map(deque.popleft, repeat(pending, len(pending))))
        if not records:
            return batch
        self.namer.refresh()
        alike, to_log = self._collect(records)
        resolved = self._resolve(batch, alike)
        for record, key in to_log:
            naming = resolved.get(key)
            if naming is not None:
                self._log(batch, record, naming)
        return batch

    def _collect(self, records: list[RawRecord]) -> tuple[dict[_AlikeKey, _Alike], list[tuple[RawRecord, _AlikeKey]]]:
        """Sort records into requests alike in all that names and classifies them.

        Naming, path decoding and status parsing then run once per distinct
        key instead of once per request.
        """
        anchor = self._wall_anchor - self._perf_anchor
        # Only the newest entries can survive in the bounded request log; at high
        # rates a process logs its newest _LOG_PER_FLUSH requests per flush.
        log_from = len(records) - min(self._recent_requests, _LOG_PER_FLUSH)
        alike: dict[_AlikeKey, _Alike] = {}
        to_log: list[tuple[RawRecord, _AlikeKey]] = []
        for index, record in enumerate(records):
            try:
                start, method, path_info, _query, status_line, duration, _ttfb, _size, exc, hint, samples = record
                wall = anchor + start
                exc_type = None
                issue = None
                if exc is not None:
                    exc_type = exception_type(exc)
                    if issubclass(exc_type, _NOT_ERRORS):
                        exc_type = None
                    else:
                        grouping = self._fingerprinter.group(exc)
                        issue = grouping.fingerprint
                        self._groupings[issue] = grouping
                key = (
                    wall // 60.0,
                    method,
                    path_info,
                    status_line,
                    hint,
                    exc_type,
                    exc is not None and was_handled(exc),
                    issue,
                )
                same = alike.get(key)
                if same is None:
                    alike[key] = _Alike(duration, wall, exc, _query)
                else:
                    same.durations.append(duration)
                    if wall >= same.last:
                        same.last = wall
                        same.exc = exc
                        same.query = _query
                    elif wall < same.first:
                        same.first = wall
            except Exception as internal:
                report_internal_error("fold", internal)
                continue
            if index >= log_from or samples is not None:
                to_log.append((record, key))
        return alike, to_log

    def _resolve(self, batch: Batch, alike: dict[_AlikeKey, _Alike]) -> dict[_AlikeKey, _Naming]:
        """Name and classify each kind of request once; add them to their aggregates."""
        namer = self.namer
        resolved: dict[_AlikeKey, _Naming] = {}
        # Kinds that differ only in path (``/users/1``, ``/users/2``) share an aggregate.
        groups: dict[_Group, _Alike] = {}
        errors: dict[tuple[str, str, str], _Occurrences] = {}
        issues: dict[str, _IssueOccurrences] = {}
        for key, same in alike.items():
            minute, raw_method, path_info, status_line, hint, exc_type, handled, issue = key
            try:
                method = namer.method(raw_method)
                status = 500 if status_line is None else self._status_code(status_line)
                endpoint = namer.name(method, _decode_path(path_info), status, hint, len(same.durations))
            except Exception as internal:
                report_internal_error("fold", internal)
                continue
            if exc_type is not None:
                error_type: str | None = exc_type.__name__
            elif status >= 400:
                error_type = _status_text(status)
            else:
                error_type = None
            resolved[key] = (endpoint, status, error_type)
            if endpoint == OTHER:
                batch.overflowed += len(same.durations)
            # An exception the app's own handler answered (with a 4xx) counts by that status.
            failed = status >= 500 or (exc_type is not None and not (handled and status < 500))
            group = (int(minute), endpoint, method, status, error_type, failed)
            known = groups.get(group)
            if known is None:
                groups[group] = same
            else:
                known.absorb(same)
            if error_type is not None:
                error_key = (error_type, endpoint, method)
                seen = errors.get(error_key)
                if seen is None:
                    seen = errors[error_key] = _Occurrences(same)
                else:
                    seen.add(same)
                seen.failed = seen.failed or failed
            if failed and error_type is not None:
                if issue is None:
                    grouping = status_grouping(status, endpoint, method)
                    issue = grouping.fingerprint
                    self._groupings[issue] = grouping
                occurred = issues.get(issue)
                if occurred is None:
                    occurred = issues[issue] = _IssueOccurrences(same, error_type)
                else:
                    occurred.add(same)
                occurred.on(endpoint, method, int(minute) * 60, len(same.durations))
        for group, same in groups.items():
            minute, endpoint, method, status, error_type, is_error = group
            per_endpoint = batch.minutes.get(minute)
            if per_endpoint is None:
                per_endpoint = batch.minutes[minute] = {}
            agg = per_endpoint.get((endpoint, method))
            if agg is None:
                agg = per_endpoint[(endpoint, method)] = Aggregate()
            agg.add_many(
                [duration * 1000.0 for duration in same.durations],
                status,
                is_error,
                not is_error and 400 <= status < 500,
                error_type,
                same.last,
                self._buckets,
            )
        for (error_type, endpoint, method), occurrences in errors.items():
            try:
                batch.errors[(error_type, endpoint, method)] = self._error_sample(
                    error_type, endpoint, method, occurrences
                )
            except Exception as internal:
                report_internal_error("error sample", internal)
        for fingerprint, occurred in issues.items():
            try:
                sample = self._issue_sample(self._groupings[fingerprint], occurred)
            except Exception as internal:
                report_internal_error("issue", internal)
                continue
            batch.issues[sample.id] = sample
        self._groupings.clear()
        return resolved

    def _status_code(self, status_line: str) -> int:
        known = self._status_codes.get(status_line)
        if known is None:
            known = _status_code(status_line)
            if len(self._status_codes) < _MAX_STATUS_LINES:
                self._status_codes[status_line] = known
        return known

    def _log(self, batch: Batch, record: RawRecord, naming: _Naming) -> None:
        start, method, path_info, query, _status_line, duration, ttfb, size, _exc, _hint, samples = record
        endpoint, status, error_type = naming
        entry = RequestEntry(
            self._wall_anchor + (start - self._perf_anchor),
            self.namer.method(method),
            with_redacted_query(_decode_path(path_info), query, self._redact_keys),
            endpoint,
            status,
            duration * 1000.0,
            None if ttfb is None else ttfb * 1000.0,
            error_type,
            size,
            samples is not None,
        )
        batch.requests.append(entry)
        if samples:
            batch.slow.append(SlowRequest(entry, collapse(samples)))

    def _error_sample(self, error_type: str, endpoint: str, method: str, seen: _Occurrences) -> ErrorSample:
        message, tb = self._texts(seen, error_type)
        return ErrorSample(
            error_type, endpoint, method, seen.count, seen.first, seen.last, message, tb, failed=seen.failed
        )

    def _texts(self, seen: _Seen, error_type: str) -> tuple[str, str | None]:
        """The latest exception's message and traceback, without the request's secrets."""
        if seen.exc is None:
            return error_type, None
        # Only the latest occurrence of a kind is kept: format one traceback, not one per request.
        exc = capture(seen.exc)
        message = _bounded(scrub(exc.message, seen.query, self._redact_keys), _MAX_MESSAGE_CHARS)
        tb = _bounded_tail(scrub(exc.traceback_text(), seen.query, self._redact_keys), self._max_traceback_chars)
        return message, tb

    def _issue_sample(self, grouping: Grouping, seen: _IssueOccurrences) -> IssueSample:
        message, tb = self._texts(seen, seen.type)
        frames: list[dict[str, object]] = []
        if seen.exc is not None:
            outermost = capture(seen.exc).chain[-1][2][-MAX_ISSUE_FRAMES:]
            frames = [
                {"file": file, "line": line, "function": function, "in_app": is_in_app(file)}
                for file, line, function in outermost
            ]
        culprit = grouping.culprit
        return IssueSample(
            id=grouping.id,
            fingerprint=grouping.fingerprint,
            type=seen.type,
            title=title_of(seen.type, message),
            message=message,
            traceback=tb,
            frames=frames,
            culprit=None if culprit is None else f"{module_name(culprit.file)} in {culprit.function}",
            count=seen.count,
            first_seen=seen.first,
            last_seen=seen.last,
            endpoints=seen.endpoints,
            minutes=seen.minutes,
        )


class _Seen:
    """When something was first and last seen in a fold, and the latest exception with it."""

    __slots__ = ("first", "last", "exc", "query")

    def __init__(self, first: float, last: float, exc: _Exc, query: str) -> None:
        self.first = first
        self.last = last
        self.exc = exc
        self.query = query  # of the request that raised ``exc``: whose secrets to scrub

    def see(self, other: _Seen) -> None:
        if other.first < self.first:
            self.first = other.first
        if other.last >= self.last:
            self.last = other.last
            self.exc = other.exc
            self.query = other.query


class _Alike(_Seen):
    """Requests alike in all that names them: their durations, and when they were seen."""

    __slots__ = ("durations",)

    def __init__(self, duration: float, wall: float, exc: _Exc, query: str) -> None:
        super().__init__(wall, wall, exc, query)
        self.durations = [duration]

    def absorb(self, other: _Alike) -> None:
        self.durations.extend(other.durations)
        self.see(other)


class _Occurrences(_Seen):
    """How often one error was seen in a fold, when, and its latest exception."""

    __slots__ = ("count", "failed")

    def __init__(self, same: _Alike) -> None:
        super().__init__(same.first, same.last, same.exc, same.query)
        self.count = len(same.durations)
        self.failed = False  # some of them were errors (5xx or an exception), not client errors

    def add(self, same: _Alike) -> None:
        self.count += len(same.durations)
        self.see(same)


class _IssueOccurrences(_Seen):
    """How often one issue was seen in a fold, where, when, and its latest exception."""

    __slots__ = ("count", "type", "endpoints", "minutes")

    def __init__(self, same: _Alike, error_type: str) -> None:
        super().__init__(same.first, same.last, same.exc, same.query)
        self.count = len(same.durations)
        self.type = error_type
        self.endpoints: dict[tuple[str, str], int] = {}
        self.minutes: dict[int, int] = {}

    def add(self, same: _Alike) -> None:
        self.count += len(same.durations)
        self.see(same)

    def on(self, endpoint: str, method: str, minute: int, count: int) -> None:
        self.endpoints[(endpoint, method)] = self.endpoints.get((endpoint, method), 0) + count
        self.minutes[minute] = self.minutes.get(minute, 0) + count


@lru_cache(maxsize=1)
def _host_name() -> str:
    # Once per process: gethostname() costs a system call, and every middleware asks.
    return socket.gethostname()


def _status_code(status_line: str) -> int:
    try:
        return int(status_line[:3])
    except ValueError:
        return 500


def _decode_path(path_info: str) -> str:
    # Cached for the usual short paths only: the cache stays small whatever the paths' length.
    return _decode_short(path_info) if len(path_info) <= CACHED_PATH_CHARS else _decode(path_info)


def _decode(path_info: str) -> str:
    # WSGI hands over the raw bytes as latin-1; users typed UTF-8.
    try:
        return path_info.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return path_info


_decode_short = lru_cache(maxsize=4096)(_decode)


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_tail(text: str, limit: int) -> str:
    # The end of a traceback (the raising frame and the message) matters most.
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
