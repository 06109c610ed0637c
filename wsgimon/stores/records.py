"""What the store keeps, as the rest of wsgimon hands it over and reads it back.

A process folds its requests into a :class:`Batch` (per-minute aggregates per endpoint, recent
requests, error samples, issues) and hands it to the store once per flush; the store gives back
rows (:class:`IssueRow`, :class:`ProcessRow`, :class:`ReleaseRow`, :class:`AlertRow`, …). Every
back end keeps the same buckets (minute, ten minutes, hour, day and all-time, per endpoint and
for all endpoints together): :func:`rollups` makes them from a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..stats.aggregate import Aggregate
from ..stats.dependencies import Dependency, DependencyKey, Use
from ..stats.profiles import Profile
from ..stats.time_windows import HOUR, MINUTE, RESOLUTIONS, TOTAL

__all__ = [
    "ALL",
    "AlertRow",
    "Batch",
    "EndpointKey",
    "ErrorSample",
    "IssueRow",
    "IssueSample",
    "MAX_ALERTS",
    "MAX_DEPENDENCY_ROWS",
    "MAX_ERROR_SAMPLES",
    "MAX_ISSUES",
    "MAX_ISSUE_FRAMES",
    "MAX_RELEASES",
    "ProcessRow",
    "RELEASE_TOTAL",
    "ReleaseRow",
    "RequestEntry",
    "SLOW_PER_ENDPOINT",
    "STORED_RESOLUTIONS",
    "SlowRequest",
    "issue_count_rows",
    "merge_into",
    "release_rollups",
    "rollups",
]

EndpointKey = tuple[str, str]  # (endpoint, method)
#: dependency uses a batch keeps while the store cannot be written; more are dropped
MAX_DEPENDENCY_ROWS = 20_000
ALL: EndpointKey = ("*", "*")  # the key of the all-endpoints aggregate
MAX_ERROR_SAMPLES = 1000


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
    #: its queries and outbound calls (None: not captured)
    db_queries: int | None = None
    db_ms: float | None = None
    http_calls: int | None = None
    http_ms: float | None = None


class SlowRequest(NamedTuple):
    """A slow request with the collapsed profile of its stack samples."""

    request: RequestEntry
    profile: Profile
    #: its statements, normalised, most time first: {"statement", "count", "total_ms"}
    queries: list[dict[str, object]] = []  # noqa: RUF012 - a NamedTuple's default, never mutated


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


def most_broken_first(endpoints: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """An issue's endpoints by count, ties by name: the same list from every store and flush order."""
    return sorted(endpoints, key=lambda item: (-item[2], item[0], item[1]))


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
    #: requests it can run at once (gunicorn's threads or connections), None when not known
    capacity: int | None = None
    #: requests it had in flight when it vanished (killed, out of memory), counted once
    lost: int = 0


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
    #: queries and outbound calls per (dependency, endpoint, method, minute), and what each dependency is
    dependencies: dict[DependencyKey, Use] = field(default_factory=dict)
    catalog: dict[str, Dependency] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.minutes or self.requests or self.errors or self.overflowed or self.slow or self.issues or self.catalog
        )

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
        for use_key, use in newer.dependencies.items():
            kept_use = self.dependencies.get(use_key)
            if kept_use is not None:
                kept_use.merge(use)
            elif len(self.dependencies) < MAX_DEPENDENCY_ROWS:
                self.dependencies[use_key] = use
        for dependency_id, dependency in newer.catalog.items():
            known_dependency = self.catalog.setdefault(dependency_id, dependency)
            known_dependency.last_seen = max(known_dependency.last_seen, dependency.last_seen)
            known_dependency.frame = known_dependency.frame or dependency.frame
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
