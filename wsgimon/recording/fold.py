"""Folding raw request records into a batch for the store: the recorder's CPU work, off the request thread.

Requests alike in all that names and classifies them (minute, method, path, status, endpoint
hint, exception type, issue) are collected first, so naming, path decoding and status parsing run
once per kind of request, not once per request; then each kind is named and added to its
aggregate, its errors and its issue, and the newest requests are logged with their paths
redacted. Only the latest exception of a kind has its traceback formatted.
"""

from __future__ import annotations

from functools import lru_cache
from http import HTTPStatus

from ..internal_errors import report_internal_error
from ..stats.aggregate import Aggregate, Buckets
from ..stats.profiles import collapse
from ..stores.records import MAX_ISSUE_FRAMES, Batch, ErrorSample, IssueSample, RequestEntry, SlowRequest
from ..wsgi.captured import CapturedException, capture, exception_type, was_handled
from ..wsgi.time_spent import TimeSpent
from .dependencies import DependencyFolder, spent_by_request
from .fingerprint import Fingerprinter, Grouping, is_in_app, module_name, status_grouping, title_of
from .naming import CACHED_PATH_CHARS, OTHER, EndpointNamer
from .redaction import scrub, with_redacted_query

__all__ = ["Folder", "RawRecord"]

# (start perf_counter, method, PATH_INFO, QUERY_STRING, status line or None when the
#  app raised before a response started (the server answers 500),
#  duration s, time to first byte s or None, response bytes or None,
#  exception or None, endpoint hint or None)
_Exc = BaseException | CapturedException | None
# ... and the sampler's stack samples of a slow request, or None
_Samples = list[tuple[tuple[str, int, str], ...]] | None
_Spent = TimeSpent | None
#: a logged request's (queries, ms in the database, calls, ms in them); None where not captured
_Numbers = tuple["int | None", "float | None", "int | None", "float | None"]
# ... and what it spent in queries and outbound calls, or None
RawRecord = tuple[
    float, str, str, str, "str | None", float, "float | None", "int | None", _Exc, "str | None", _Samples, _Spent
]

# (minute, endpoint, method, status, error type, is an error)
_Group = tuple[int, str, str, int, "str | None", bool]
# (minute, method, PATH_INFO, status line, endpoint hint, exception type, handled by the app,
#  the exception's issue fingerprint)
_AlikeKey = tuple[float, str, str, "str | None", "str | None", "type[BaseException] | None", bool, "str | None"]
# (endpoint, status, error type)
_Naming = tuple[str, int, "str | None"]
_NOT_ERRORS = (SystemExit, KeyboardInterrupt, GeneratorExit)
_MAX_MESSAGE_CHARS = 2000
_LOG_PER_FLUSH = 250
_MAX_STATUS_LINES = 1000


class Folder:
    """Names, classifies and aggregates one process's records; keeps caches between folds."""

    def __init__(
        self,
        namer: EndpointNamer,
        *,
        redact_keys: tuple[str, ...],
        recent_requests: int,
        max_traceback_chars: int,
        buckets: Buckets,
        perf_anchor: float,
        wall_anchor: float,
        capturing: tuple[bool, bool] = (False, False),
        n_plus_one_repeats: int = 5,
    ) -> None:
        self.namer = namer
        self._redact_keys = redact_keys
        self._recent_requests = recent_requests
        self._max_traceback_chars = max_traceback_chars
        self._buckets = buckets
        self._status_codes: dict[str, int] = {}
        self._fingerprinter = Fingerprinter()
        self._groupings: dict[str, Grouping] = {}
        #: the scrubbed message and traceback of each exception of the fold under way
        self._texts_seen: dict[tuple[int, str], tuple[_Exc, tuple[str, str | None]]] = {}
        self._dependencies = DependencyFolder(n_plus_one_repeats)
        #: what a logged request that made no query and no call spent: zeros where captured, else unknown
        queries, calls = capturing
        self._nothing_spent: _Numbers = (
            0 if queries else None,
            0.0 if queries else None,
            0 if calls else None,
            0.0 if calls else None,
        )
        self.anchor(perf_anchor, wall_anchor)

    def anchor(self, perf: float, wall: float) -> None:
        """Time records as ``wall`` at the ``perf_counter`` reading ``perf``."""
        self._perf_anchor = perf
        self._wall_anchor = wall

    def fold(self, records: list[RawRecord]) -> Batch:
        """One batch of ``records``: never raises for one bad record (it is logged and skipped)."""
        batch = Batch()
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
                start, method, path_info, _query, status_line, duration, _ttfb, _size, exc, hint, samples, spent = (
                    record
                )
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
                    same = alike[key] = _Alike(duration, wall, exc, _query)
                    if spent is not None:
                        same.spent = [(spent, wall)]
                else:
                    if spent is not None:
                        if same.spent is None:
                            same.spent = []
                        same.spent.append((spent, wall))
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
            if same.spent is not None:
                # Before the kind joins its group (which takes its requests' spent along).
                for spent, wall in same.spent:
                    try:
                        self._dependencies.add(batch, endpoint, method, int(minute), wall, spent)
                    except Exception as internal:
                        report_internal_error("fold", internal)
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
                None if same.spent is None else [spent_by_request(spent) for spent, _wall in same.spent],
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
        self._texts_seen.clear()
        return resolved

    def _status_code(self, status_line: str) -> int:
        known = self._status_codes.get(status_line)
        if known is None:
            known = _status_code(status_line)
            if len(self._status_codes) < _MAX_STATUS_LINES:
                self._status_codes[status_line] = known
        return known

    def _log(self, batch: Batch, record: RawRecord, naming: _Naming) -> None:
        start, method, path_info, query, _status_line, duration, ttfb, size, _exc, _hint, samples, spent = record
        endpoint, status, error_type = naming
        if spent is not None:
            nothing = self._nothing_spent
            # What is not captured stays unknown, not zero.
            pairs = zip(spent_by_request(spent), nothing, strict=True)
            numbers: _Numbers = tuple(None if unknown is None else known for known, unknown in pairs)  # type: ignore[assignment]
        else:
            numbers = self._nothing_spent
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
            *numbers,
        )
        batch.requests.append(entry)
        if samples:
            queries = [] if spent is None else self._dependencies.queries_of(batch, spent, entry.time)
            batch.slow.append(SlowRequest(entry, collapse(samples), queries))

    def _error_sample(self, error_type: str, endpoint: str, method: str, seen: _Occurrences) -> ErrorSample:
        message, tb = self._texts(seen, error_type)
        return ErrorSample(
            error_type, endpoint, method, seen.count, seen.first, seen.last, message, tb, failed=seen.failed
        )

    def _texts(self, seen: _Seen, error_type: str) -> tuple[str, str | None]:
        """The latest exception's message and traceback, without the request's secrets."""
        if seen.exc is None:
            return error_type, None
        # Only the latest occurrence of a kind is kept: format one traceback, not one per request,
        # and scrub it once for its error sample and its issue.
        known = self._texts_seen.get((id(seen.exc), seen.query))
        if known is not None and known[0] is seen.exc:
            return known[1]
        exc = capture(seen.exc)
        keys = self._redact_keys
        message = scrub(exc.message, seen.query, keys, limit=_MAX_MESSAGE_CHARS)
        tb = scrub(exc.traceback_text(), seen.query, keys, limit=self._max_traceback_chars, keep="tail")
        self._texts_seen[(id(seen.exc), seen.query)] = (seen.exc, (message, tb))
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

    __slots__ = ("durations", "spent")

    def __init__(self, duration: float, wall: float, exc: _Exc, query: str) -> None:
        super().__init__(wall, wall, exc, query)
        self.durations = [duration]
        #: what those that made queries or calls spent, with when each was seen
        self.spent: list[tuple[TimeSpent, float]] | None = None

    def absorb(self, other: _Alike) -> None:
        self.durations.extend(other.durations)
        if other.spent is not None:
            if self.spent is None:
                self.spent = []
            self.spent.extend(other.spent)
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
