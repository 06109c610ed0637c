"""The store interface: processes write deltas, readers query the merged view.

A process folds its requests into a :class:`Batch` (per-minute aggregates per
endpoint, recent requests, error samples) and hands it to :meth:`Store.write`
once per flush. Every back end keeps the same buckets (minute, hour, day and
all-time, per endpoint and for all endpoints together) and answers the same
queries through the shared logic here, so the JSON API never knows which one it
talks to.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from ..alerts.incidents import AlertingState, Silence
from ..stats.aggregate import Aggregate
from ..stats.issues import IssueChange
from ..stats.profiles import Profile
from ..stats.time_windows import DAY, HOUR, MINUTE, RESOLUTIONS, TEN_MINUTES, TOTAL, plan_ranges

__all__ = [
    "ALL",
    "AlertRow",
    "Batch",
    "EndpointKey",
    "ErrorSample",
    "IssueRow",
    "IssueSample",
    "MAX_ISSUES",
    "issue_count_rows",
    "MAX_RELEASES",
    "ProcessRow",
    "RELEASE_TOTAL",
    "ReleaseRow",
    "RequestEntry",
    "SLOW_PER_ENDPOINT",
    "SlowRequest",
    "STORED_RESOLUTIONS",
    "Store",
    "StoreUnavailable",
]

T = TypeVar("T")
EndpointKey = tuple[str, str]  # (endpoint, method)
ALL: EndpointKey = ("*", "*")  # the key of the all-endpoints aggregate
MAX_ERROR_SAMPLES = 1000


class StoreUnavailable(Exception):
    """The store cannot be written now (locked, read-only, missing); the batch is kept and retried."""


class RequestEntry(NamedTuple):
    """One line of the live request log; holds nothing secret (path already redacted)."""

    time: float
    method: str
    path: str
    endpoint: str
    status: int
    duration_ms: float
    ttfb_ms: float | None
    error_type: str | None
    response_bytes: int | None
    sampled: bool = False  # the sampler sampled its stack: see /slow


class SlowRequest(NamedTuple):
    """A slow request with the collapsed profile of its stack samples."""

    request: RequestEntry
    profile: Profile


#: slow requests kept per endpoint and method (the slowest)
SLOW_PER_ENDPOINT = 5


@dataclass
class ErrorSample:
    """How often one error type occurred on one endpoint, with its latest message and traceback."""

    type: str
    endpoint: str
    method: str
    count: int
    first_seen: float
    last_seen: float
    message: str
    traceback: str | None
    #: In a batch: some occurrences were failures (not client errors); what alerts are about. Not stored.
    failed: bool = True

    def merge(self, other: ErrorSample) -> None:
        self.count += other.count
        self.failed = self.failed or other.failed
        self.first_seen = min(self.first_seen, other.first_seen)
        if other.last_seen >= self.last_seen:
            self.last_seen = other.last_seen
            self.message = other.message
            self.traceback = other.traceback


#: issues kept (the most recently seen); more distinct failures than this push the oldest out
MAX_ISSUES = 10_000
#: frames kept of an issue's latest traceback (the innermost)
MAX_ISSUE_FRAMES = 60


@dataclass
class IssueSample:
    """One process's occurrences of one issue (a fingerprint) since its last flush."""

    id: str
    fingerprint: str
    type: str
    title: str
    message: str
    traceback: str | None
    #: the latest occurrence's frames, innermost last: {"file", "line", "function", "in_app"}
    frames: list[dict[str, object]]
    culprit: str | None  # "module in function" of the app's frame where it broke
    count: int
    first_seen: float
    last_seen: float
    endpoints: dict[EndpointKey, int] = field(default_factory=dict)
    #: occurrences per minute (its start, in epoch seconds)
    minutes: dict[int, int] = field(default_factory=dict)

    def merge(self, other: IssueSample) -> None:
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        for key, n in other.endpoints.items():
            self.endpoints[key] = self.endpoints.get(key, 0) + n
        for minute, n in other.minutes.items():
            self.minutes[minute] = self.minutes.get(minute, 0) + n
        if other.last_seen >= self.last_seen:
            self.last_seen = other.last_seen
            self.title, self.message, self.traceback = other.title, other.message, other.traceback
            self.frames, self.culprit = other.frames, other.culprit


def issue_count_rows(sample: IssueSample) -> dict[tuple[int, int], int]:
    """A sample's occurrences per (resolution, start): minute rows and hour rows."""
    rows: dict[tuple[int, int], int] = {}
    for minute, n in sample.minutes.items():
        for resolution in (MINUTE, HOUR):
            key = (resolution, minute - minute % resolution)
            rows[key] = rows.get(key, 0) + n
    return rows


@dataclass
class IssueRow:
    """An issue as stored, merged across every process and host."""

    id: str
    fingerprint: str
    type: str
    title: str
    message: str
    traceback: str | None
    frames: list[dict[str, object]]
    culprit: str | None
    count: int
    first_seen: float
    last_seen: float
    status: str
    status_changed: float
    resolved_at: float | None = None
    resolved_in: str | None = None
    ignored_until: float | None = None
    ignored_until_count: int | None = None
    #: (endpoint, method, count), most first
    endpoints: list[tuple[str, str, int]] = field(default_factory=list)
    #: (release, count, first_seen, last_seen), newest first
    releases: list[tuple[str, int, float, float]] = field(default_factory=list)


@dataclass
class AlertRow:
    """One entry of the alert log: what was sent, and how each channel took it."""

    key: str
    rule: str
    severity: str
    state: str
    title: str
    summary: str
    opened_at: float
    sent_at: float
    suppressed: int
    deliveries: dict[str, dict[str, object]] = field(default_factory=dict)
    id: int = 0


MAX_ALERTS = 1000  # kept in the alert log


@dataclass(frozen=True)
class ProcessRow:
    """A process that wrote to the store."""

    host: str
    pid: int
    started: float
    last_flush: float
    requests: int
    #: requests running at the flush, when the oldest of them started, and what it is ("GET /path")
    in_flight: int = 0
    oldest_in_flight: float | None = None
    oldest_request: str | None = None
    release: str | None = None  # the release it runs (see release.py), None when none is known


@dataclass(frozen=True)
class ReleaseRow:
    """A release seen in the store: since when (its first process started) and until when it was seen."""

    release: str
    first_seen: float
    last_seen: float


#: releases kept (the newest by first_seen); overridden by the ``max_releases`` option
MAX_RELEASES = 20
#: the start of a release's all-time row, beside its hour rows
RELEASE_TOTAL = -1


@dataclass
class Batch:
    """What one process learned since its last successful flush."""

    minutes: dict[int, dict[EndpointKey, Aggregate]] = field(default_factory=dict)
    requests: list[RequestEntry] = field(default_factory=list)
    slow: list[SlowRequest] = field(default_factory=list)
    errors: dict[tuple[str, str, str], ErrorSample] = field(default_factory=dict)
    issues: dict[str, IssueSample] = field(default_factory=dict)
    overflowed: int = 0

    def __bool__(self) -> bool:
        return bool(self.minutes or self.requests or self.errors or self.overflowed or self.slow or self.issues)

    @property
    def request_count(self) -> int:
        return sum(agg.count for per_key in self.minutes.values() for agg in per_key.values())

    def absorb(self, newer: Batch, max_requests: int, max_minutes: int) -> int:
        """Merge a newer batch into this unsent one, within bounds; returns requests dropped."""
        for minute, per_key in newer.minutes.items():
            target = self.minutes.setdefault(minute, {})
            for key, agg in per_key.items():
                merge_into(target, key, agg)
        dropped = 0
        while len(self.minutes) > max_minutes:
            oldest = min(self.minutes)
            dropped += sum(agg.count for agg in self.minutes.pop(oldest).values())
        self.requests.extend(newer.requests)
        del self.requests[:-max_requests]
        self.slow.extend(newer.slow)
        del self.slow[:-max_requests]
        for error_key, sample in newer.errors.items():
            known = self.errors.get(error_key)
            if known is not None:
                known.merge(sample)
            elif len(self.errors) < MAX_ERROR_SAMPLES:
                self.errors[error_key] = sample
        for issue_id, issue in newer.issues.items():
            kept = self.issues.get(issue_id)
            if kept is not None:
                kept.merge(issue)
            elif len(self.issues) < MAX_ERROR_SAMPLES:
                self.issues[issue_id] = issue
        self.overflowed += newer.overflowed
        return dropped


def merge_into(target: dict[EndpointKey, Aggregate], key: EndpointKey, agg: Aggregate) -> None:
    existing = target.get(key)
    if existing is None:
        existing = target[key] = Aggregate()
    existing.merge(agg)


def release_rollups(batch: Batch) -> dict[int, dict[EndpointKey, Aggregate]]:
    """The batch's minutes added up per hour, and into the all-time row, with ALL: a release's rows."""
    out: dict[int, dict[EndpointKey, Aggregate]] = {}
    for minute, per_key in batch.minutes.items():
        start = minute * MINUTE
        for target in (out.setdefault(start - start % HOUR, {}), out.setdefault(RELEASE_TOTAL, {})):
            for key, agg in per_key.items():
                merge_into(target, key, agg)
                merge_into(target, ALL, agg)
    return out


# Every stored resolution, finest first.
STORED_RESOLUTIONS = (*RESOLUTIONS, TOTAL)


def rollups(batch: Batch) -> dict[tuple[int, int], dict[EndpointKey, Aggregate]]:
    """The batch's minute aggregates added up into every stored (resolution, start), with ALL.

    Each level is summed from the one below it (minutes into ten minutes into
    hours …), not from the minutes again: a batch of many minutes, such as one
    kept while the store was unavailable, costs a few merges per minute, not ten.
    """
    out: dict[tuple[int, int], dict[EndpointKey, Aggregate]] = {}
    level: dict[int, dict[EndpointKey, Aggregate]] = {}
    for minute, per_key in batch.minutes.items():
        target = level.setdefault(minute * MINUTE, {})
        for key, agg in per_key.items():
            merge_into(target, key, agg)
            merge_into(target, ALL, agg)
    for finer, resolution in zip(STORED_RESOLUTIONS, STORED_RESOLUTIONS[1:], strict=False):
        coarser: dict[int, dict[EndpointKey, Aggregate]] = {}
        for start, per_key in level.items():
            out[(finer, start)] = per_key
            target = coarser.setdefault(0 if resolution == TOTAL else start - start % resolution, {})
            for key, agg in per_key.items():
                merge_into(target, key, agg)
        level = coarser
    for start, per_key in level.items():
        out[(TOTAL, start)] = per_key
    return out


#: How long a read of the API may wait for a store that is locked or slow.
READ_TIMEOUT_S = 1.0


class Store(ABC):
    """Persists batches and answers merged queries over time windows."""

    #: How long finer buckets are kept; windows older than that start at a coarser boundary.
    minute_retention_s: float
    hour_retention_s: float

    _limits = threading.local()

    @contextlib.contextmanager
    def time_limit(self, seconds: float) -> Iterator[None]:
        """Every store call of this thread in the block shares one deadline; past it they raise StoreUnavailable."""
        previous = getattr(self._limits, "deadline", None)
        deadline = time.monotonic() + seconds
        self._limits.deadline = deadline if previous is None else min(previous, deadline)
        try:
            yield
        finally:
            self._limits.deadline = previous

    def remaining(self, default: float) -> float:
        """Seconds left to this thread's deadline (``default`` without one); StoreUnavailable when none are."""
        deadline: float | None = getattr(self._limits, "deadline", None)
        if deadline is None:
            return default
        left = min(default, deadline - time.monotonic())
        if left <= 0:
            raise StoreUnavailable("no time left to wait for the store")
        return left

    # -- writing ---------------------------------------------------------------------
    @abstractmethod
    def write(self, batch: Batch, process: ProcessRow) -> None:
        """Add one process's deltas atomically; raise StoreUnavailable to have it retried.

        Issues change status inside the write (a resolved one seen again regresses), so the
        deployment agrees on it. Waits for a busy store at most until the thread's
        :meth:`time_limit`, if one is set.
        """

    def process_stopped(self, process: ProcessRow) -> None:  # noqa: B027 - optional hook
        """A process exited cleanly: it is no longer part of the deployment."""

    def maintain(self, now: float) -> None:  # noqa: B027 - optional hook
        """Prune old buckets and requests; called in the background."""

    # -- primitives each back end provides ---------------------------------------------
    @abstractmethod
    def buckets(
        self, resolution: int, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        """(start, key, aggregate) of buckets starting in [first, end): every endpoint's when
        ``key`` is None, else only ``key``'s (``ALL`` for all endpoints together)."""

    @abstractmethod
    def sums(
        self, resolution: int, first: int, end: int, slot_s: float
    ) -> Iterable[tuple[int, EndpointKey, int, float]]:
        """(slot, key, count, total_ms) per endpoint and slot of ``slot_s`` seconds from ``first``.

        Cheap: no sketch is decoded, and a back end may sum the slots itself."""

    @abstractmethod
    def error_counts(
        self, resolution: int, first: int, end: int
    ) -> Iterable[tuple[EndpointKey, dict[str, int], float]]:
        """(key, error type counts, last seen) of the endpoint buckets that saw errors; no sketch is decoded."""

    def slow_requests(self, endpoint: str | None, limit: int) -> list[SlowRequest]:
        """The slowest sampled requests (per endpoint and method at most SLOW_PER_ENDPOINT), slowest first."""
        return []

    # -- releases ----------------------------------------------------------------------
    #: how many releases are kept (the newest); set from the ``max_releases`` option
    max_releases: int = MAX_RELEASES

    @abstractmethod
    def releases(self) -> list[ReleaseRow]:
        """Every release kept, newest (by first_seen) first."""

    @abstractmethod
    def release_buckets(
        self, release: str, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        """(start, key, aggregate) of one release's hour rows starting in [first, end) (``RELEASE_TOTAL``:
        its all-time row): every key's, ``ALL`` included, when ``key`` is None."""

    def release_totals(self, release: str, since: float | None, now: float) -> dict[EndpointKey, Aggregate]:
        """One release's aggregates per (endpoint, method), ``ALL`` included, over the window (None: all)."""
        result: dict[EndpointKey, Aggregate] = {}
        if since is None:
            first, end = RELEASE_TOTAL, RELEASE_TOTAL + 1
        else:
            first, end = int(since // HOUR * HOUR), int(now) + 1
        for _start, key, agg in self.release_buckets(release, first, end, None):
            merge_into(result, key, agg)
        return result

    def release_series(
        self, release: str, since: float, now: float, step: int, key: EndpointKey = ALL
    ) -> list[tuple[int, Aggregate]]:
        """Like :meth:`series`, from one release's hour rows (``step`` a whole number of hours)."""
        first = int(since // step) * step
        points: dict[int, Aggregate] = {t: Aggregate() for t in range(first, int(now) + 1, step)}
        for start, _key, agg in self.release_buckets(release, int(since // HOUR * HOUR), int(now) + 1, key):
            point = points.get(start - start % step)
            if point is not None:
                point.merge(agg)
        return sorted(points.items())

    @abstractmethod
    def recent_requests(self, limit: int) -> list[RequestEntry]:
        """The newest ``limit`` requests of all processes, newest first."""

    @abstractmethod
    def error_samples(self) -> dict[tuple[str, str, str], ErrorSample]:
        """The latest sample per (type, endpoint, method)."""

    # -- issues ------------------------------------------------------------------------
    @abstractmethod
    def issues(self, seen_since: float | None) -> list[IssueRow]:
        """Every issue seen at or after ``seen_since`` (None: all), with endpoints and releases."""

    @abstractmethod
    def issue(self, issue_id: str) -> IssueRow | None:
        """One issue, or None."""

    @abstractmethod
    def issue_counts(self, resolution: int, first: int, end: int) -> Iterable[tuple[str, int, int]]:
        """(issue, start, count) of the issues' ``resolution`` rows (MINUTE or HOUR) starting in [first, end)."""

    def issue_series(self, resolution: int, first: int, end: int, issue_id: str) -> list[tuple[int, int]]:
        """(start, count) of one issue's rows, like :meth:`issue_counts`."""
        return [(start, n) for found, start, n in self.issue_counts(resolution, first, end) if found == issue_id]

    @abstractmethod
    def change_issue(self, issue_id: str, change: IssueChange, now: float) -> IssueRow | None:
        """Set an issue's status as a user asked; None when there is no such issue."""

    def issue_window_counts(self, since: float | None, now: float) -> dict[str, int]:
        """Occurrences per issue in the window: minute rows while they are kept, hour rows beyond."""
        if since is None:
            return {row.id: row.count for row in self.issues(None)}
        if now - since < DAY and since >= now - self.minute_retention_s:
            resolution, first = MINUTE, int(since // MINUTE * MINUTE)
        else:
            resolution, first = HOUR, int(since // HOUR * HOUR)
        counts: dict[str, int] = {}
        for issue_id, _start, count in self.issue_counts(resolution, first, int(now) + 1):
            counts[issue_id] = counts.get(issue_id, 0) + count
        return counts

    # -- alerting: incidents and silences, decided once per deployment -----------------
    @abstractmethod
    def alerting(self, change: Callable[[AlertingState], T], now: float) -> T:
        """Read the deployment's alerting state, let ``change`` modify it, write back what it changed:
        one transaction that no other process's overlaps."""

    @abstractmethod
    def alerting_view(self, now: float) -> AlertingState:
        """The alerting state as it is (a copy: changing it changes nothing)."""

    @abstractmethod
    def add_silence(self, make: Callable[[int], Silence]) -> Silence:
        """Keep the silence ``make`` builds for the next free id."""

    @abstractmethod
    def expire_silence(self, number: int, now: float) -> Silence | None:
        """End a silence now; None when there is no such silence."""

    # -- alerts: decided once per deployment ------------------------------------------
    @abstractmethod
    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        """``count`` new occurrences of ``key``: (this process alerts, occurrences suppressed before them).

        One process per cooldown gets True; the others' occurrences are counted as suppressed."""

    @abstractmethod
    def record_alert(self, row: AlertRow) -> int:
        """Keep a sent alert in the deployment's alert log (bounded); returns its id."""

    @abstractmethod
    def update_alert(self, alert_id: int, deliveries: dict[str, dict[str, object]]) -> None:
        """How the alert's deliveries went, per channel."""

    @abstractmethod
    def recent_alerts(self, limit: int) -> list[AlertRow]:
        """The newest alerts of every process, newest first."""

    # -- the report: sent once per period ---------------------------------------------
    @abstractmethod
    def claim_report(self, key: str, now: float, stale_s: float) -> bool:
        """True for the one process that sends the report of period ``key``; a claim older than
        ``stale_s`` that never finished (its process died) may be taken over."""

    @abstractmethod
    def finish_report(self, key: str, state: str, detail: str, now: float) -> None:
        """Record how the period's report went: "sent" or "failed" (with why)."""

    @abstractmethod
    def report_runs(self, limit: int) -> list[tuple[str, str, float, str]]:
        """(period key, state, when, detail) of the latest periods, newest first."""

    @abstractmethod
    def admit_name(self, name: str, cap: int) -> bool:
        """Admit a new endpoint name unless the deployment already has ``cap`` names; known ones pass."""

    @abstractmethod
    def overflowed(self) -> int:
        """How many requests went to ``<other>`` because of the endpoint cap."""

    @abstractmethod
    def processes(self, seen_since: float) -> list[ProcessRow]:
        """Processes that flushed at or after ``seen_since``."""

    @abstractmethod
    def deployment_started(self) -> float | None:
        """When the deployment (any set of continuously overlapping processes) started."""

    def health(self) -> tuple[bool, str]:
        """(healthy, detail) of the store itself."""
        return True, "ok"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    # -- queries shared by every back end ----------------------------------------------
    def _ranges(self, since: float | None, now: float) -> list[tuple[int, int, int]]:
        if since is None:
            return [(TOTAL, 0, 1)]
        # Windows of a day or more start at the whole hour: exact minutes would cost up to
        # sixty extra rows per endpoint for a difference of under 4 %.
        minute_floor = now - self.minute_retention_s if now - since < DAY else float("inf")
        planned = plan_ranges(since, now, minute_floor, now - self.hour_retention_s)
        return [(r.resolution, r.first, r.end) for r in planned]

    def endpoint_totals(self, since: float | None, now: float) -> dict[EndpointKey, Aggregate]:
        """Aggregates per (endpoint, method) for the window [since, now] (None: all time)."""
        result: dict[EndpointKey, Aggregate] = {}
        for resolution, first, end in self._ranges(since, now):
            for _start, key, agg in self.buckets(resolution, first, end, None):
                merge_into(result, key, agg)
        return result

    def error_totals(self, since: float | None, now: float) -> dict[EndpointKey, tuple[dict[str, int], float]]:
        """Error type counts and when last seen, per (endpoint, method), over the window."""
        result: dict[EndpointKey, tuple[dict[str, int], float]] = {}
        for resolution, first, end in self._ranges(since, now):
            for key, types, last_seen in self.error_counts(resolution, first, end):
                known = result.get(key)
                if known is None:
                    result[key] = (dict(types), last_seen)
                    continue
                counts, seen = known
                for name, n in types.items():
                    counts[name] = counts.get(name, 0) + n
                if last_seen > seen:
                    result[key] = (counts, last_seen)
        return result

    def overall(self, since: float | None, now: float, key: EndpointKey = ALL) -> Aggregate:
        """All endpoints together (or one ``key``) over the window."""
        total = Aggregate()
        for resolution, first, end in self._ranges(since, now):
            for _start, _key, agg in self.buckets(resolution, first, end, key):
                total.merge(agg)
        return total

    def average_lines(self, since: float, now: float, points: int) -> dict[EndpointKey, list[float | None]]:
        """Average latency per endpoint in ``points`` equal slots of the window (sparklines)."""
        span = max(now - since, 60.0)
        resolution = MINUTE if span <= HOUR else TEN_MINUTES
        if since < now - self.minute_retention_s or span / TEN_MINUTES > 20_000:
            resolution = HOUR if since >= now - self.hour_retention_s and span / HOUR <= 20_000 else DAY
        first = int(since // resolution) * resolution
        slot_s = (now - first) / points
        sums: dict[EndpointKey, list[list[float]]] = {}
        for index, key, count, total_ms in self.sums(resolution, first, int(now) + 1, slot_s):
            slots = sums.get(key)
            if slots is None:
                slots = sums[key] = [[0, 0.0] for _ in range(points)]
            slot = slots[min(points - 1, index)]
            slot[0] += count
            slot[1] += total_ms
        return {
            key: [round(total / count, 3) if count else None for count, total in slots] for key, slots in sums.items()
        }

    def series(self, since: float, now: float, step: int, key: EndpointKey = ALL) -> list[tuple[int, Aggregate]]:
        """One aggregate per step from ``since`` to now, empty steps included."""
        resolution = max(r for r in RESOLUTIONS if step % r == 0)
        first = int(since // step) * step
        points: dict[int, Aggregate] = {t: Aggregate() for t in range(first, int(now) + 1, step)}
        for start, _key, agg in self.buckets(resolution, first, int(now) + 1, key):
            slot = start - start % step
            point = points.get(slot)
            if point is not None:
                point.merge(agg)
        return sorted(points.items())
