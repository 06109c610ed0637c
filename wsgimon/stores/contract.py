"""The store contract: what every back end (memory, SQLite, PostgreSQL) answers the same.

The contract is a few small parts one class implements together: the metrics (buckets,
releases, the queries over time windows shared here), the request log, issues, the alerting
state, coordination (claims that make one process of the deployment do a thing once), what
requests waited on (dependencies), and check-ins (jobs beside the app and their runs). A
reader that needs only one part may say so in its types.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from ..alerts.state import AlertingState, Silence
from ..stats.aggregate import Aggregate
from ..stats.checkins import Monitor, Run
from ..stats.dependencies import Dependency, Use
from ..stats.issues import IssueChange
from ..stats.time_windows import DAY, HOUR, MINUTE, RESOLUTIONS, TEN_MINUTES, TOTAL, plan_ranges
from .records import (
    ALL,
    MAX_RELEASES,
    RELEASE_TOTAL,
    AlertRow,
    Batch,
    EndpointKey,
    ErrorSample,
    IssueRow,
    ProcessRow,
    ReleaseRow,
    RequestEntry,
    SlowRequest,
    merge_into,
)
from .settled_totals import settled_split

__all__ = [
    "MAINTENANCE_S",
    "READ_TIMEOUT_S",
    "MAX_CHECKINS",
    "PING_KINDS",
    "RUNS_PER_CHECKIN",
    "AlertingStore",
    "CheckInStore",
    "Coordination",
    "DependencyStore",
    "IssueStore",
    "JournalEntry",
    "MetricsStore",
    "RequestLog",
    "Store",
    "StoreUnavailable",
    "T",
    "TooManyCheckIns",
    "ping_run",
    "vanished",
]

T = TypeVar("T")
#: (writer, release, started, written, payload): one journal row (stores/batch_codec.py)
JournalEntry = tuple[str, "str | None", float, float, bytes]


class StoreUnavailable(Exception):
    """The store cannot be written now (locked, read-only, missing); the batch is kept and retried."""


#: How long a read of the API may wait for a store that is locked or slow.
READ_TIMEOUT_S = 1.0
#: How often old rows are pruned (by one process of the deployment, for the shared stores).
MAINTENANCE_S = 60.0


class Deadlines:
    """Every call of a thread inside :meth:`time_limit` shares one deadline (per store, per thread)."""

    @property
    def _limits(self) -> threading.local:
        """This store's deadlines, per thread (another store of the process has its own)."""
        limits: threading.local | None = self.__dict__.get("_thread_limits")
        if limits is None:
            limits = self.__dict__.setdefault("_thread_limits", threading.local())
        return limits

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


class MetricsStore(Deadlines):
    """The statistics: buckets per endpoint and time, releases, and the queries over windows they answer."""

    #: How long finer buckets are kept; windows older than that start at a coarser boundary.
    minute_retention_s: float

    hour_retention_s: float

    #: how many releases are kept (the newest); set from the ``max_releases`` option
    max_releases: int = MAX_RELEASES

    #: where this host's processes keep what they could not write (see spool.py); None: nowhere
    spool_directory: str | None = None

    @abstractmethod
    def write(self, batch: Batch, process: ProcessRow) -> None:
        """Add one process's deltas atomically; raise StoreUnavailable to have it retried.

        Issues change status inside the write (a resolved one seen again regresses), so the
        deployment agrees on it. Waits for a busy store at most until the thread's
        :meth:`time_limit`, if one is set.
        """

    def maintain(self, now: float) -> None:  # noqa: B027 - optional hook
        """Prune old buckets and requests; called in the background."""

    def append_payloads(self, entries: Sequence[JournalEntry]) -> None:
        """Append journal rows kept aside by processes that could not write them (stores with a spool)."""
        raise StoreUnavailable("this store keeps no journal")

    #: when this store last ran :meth:`maintain` from :meth:`after_flush`
    _last_maintenance = 0.0

    def after_flush(self, now: float) -> None:
        """Background work after each of this process's flushes: maintenance once a minute (the
        SQL stores' elected maintainer folds here too, and alone maintains)."""
        if now - self._last_maintenance >= MAINTENANCE_S:
            self._last_maintenance = now
            self.maintain(now)

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

    @abstractmethod
    def error_samples(self) -> dict[tuple[str, str, str], ErrorSample]:
        """The latest sample per (type, endpoint, method)."""

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
    def overflowed(self) -> int:
        """How many requests went to ``<other>`` because of the endpoint cap."""

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
            for span, settled in settled_split(resolution, first, end, now):
                kept = self._settled_totals(span) if settled else None
                if kept is not None:
                    for key, agg in kept.items():
                        merge_into(result, key, agg)
                    continue
                for _start, key, agg in self.buckets(*span, None):
                    merge_into(result, key, agg)
        return result

    def _settled_totals(self, span: tuple[int, int, int]) -> dict[EndpointKey, Aggregate] | None:
        """A settled range's totals per endpoint, kept between reads where decoding its rows costs
        (None: read the rows)."""
        return None

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


class RequestLog(ABC):
    """The newest requests of every process, and the slowest sampled ones with their profiles."""

    @abstractmethod
    def recent_requests(self, limit: int) -> list[RequestEntry]:
        """The newest ``limit`` requests of all processes, newest first."""

    def slow_requests(self, endpoint: str | None, limit: int) -> list[SlowRequest]:
        """The slowest sampled requests (per endpoint and method at most SLOW_PER_ENDPOINT), slowest first."""
        return []


class IssueStore(ABC):
    """Failures grouped by cause, with their lifecycle (see :mod:`wsgimon.stats.issues`)."""

    #: how long minute counts are kept (windows older than that read hour counts)
    minute_retention_s: float

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


class AlertingStore(ABC):
    """The deployment's incidents, silences and the log of every message sent."""

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

    @abstractmethod
    def record_alert(self, row: AlertRow) -> int:
        """Keep a sent alert in the deployment's alert log (bounded); returns its id."""

    @abstractmethod
    def update_alert(self, alert_id: int, deliveries: dict[str, dict[str, object]]) -> None:
        """How the alert's deliveries went, per channel."""

    @abstractmethod
    def recent_alerts(self, limit: int) -> list[AlertRow]:
        """The newest alerts of every process, newest first."""


class Coordination(ABC):
    """What one process of the deployment does once (claims), and who the deployment is."""

    @abstractmethod
    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        """``count`` new occurrences of ``key``: (this process alerts, occurrences suppressed before them).

        One process per cooldown gets True; the others' occurrences are counted as suppressed."""

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
    def processes(self, seen_since: float) -> list[ProcessRow]:
        """Processes that flushed at or after ``seen_since``."""

    def process_stopped(self, process: ProcessRow) -> None:  # noqa: B027 - optional hook
        """A process exited cleanly: it is no longer part of the deployment."""

    @abstractmethod
    def reap_lost(self, host: str, now: float, alive: Callable[[int], bool], stale_s: float) -> int:
        """Mark processes that vanished with requests in flight as stopped and those requests as lost,
        once however many processes notice; returns the processes this call reaped.

        A process of ``host`` is gone when ``alive(pid)`` says so (killed, out of memory); one of
        another host when it has not written for ``stale_s`` seconds.
        """

    @abstractmethod
    def lost_processes(self, since: float) -> list[ProcessRow]:
        """Processes reaped at or after ``since`` (``stopped``) with the requests they lost, newest first."""

    @abstractmethod
    def access_token(self, make: Callable[[], str]) -> str:
        """The deployment's token for the monitoring API: the one kept in the store, or ``make()``'s,
        kept now (the first process to ask wins; every process and host then reads the same)."""

    @abstractmethod
    def deployment_started(self) -> float | None:
        """When the deployment (any set of continuously overlapping processes) started."""


class DependencyStore(ABC):
    """What requests waited on: statements and outbound targets (see :mod:`wsgimon.stats.dependencies`)."""

    minute_retention_s: float
    hour_retention_s: float

    @abstractmethod
    def dependency_uses(
        self,
        kind: str,
        resolution: int,
        first: int,
        end: int,
        endpoint: str | None,
        method: str | None,
        release: str | None,
    ) -> Iterable[tuple[str, EndpointKey, Use]]:
        """(dependency id, endpoint key, use) of the ``resolution`` rows (MINUTE or HOUR) starting in
        [first, end), of one endpoint (and method) or all, of one release or all."""

    @abstractmethod
    def dependency_catalog(self, kind: str) -> dict[str, Dependency]:
        """Every dependency of ``kind`` kept, by id."""


#: check-in monitors a store keeps: pings create new ones while there are fewer
MAX_CHECKINS = 1000
#: runs kept per monitor (the newest; maintenance also drops those past the retention)
RUNS_PER_CHECKIN = 50
#: what a ping says: a run started, ended well, or ended badly
PING_KINDS = ("start", "success", "fail")


class TooManyCheckIns(ValueError):
    """A ping would create a monitor while the store already keeps MAX_CHECKINS."""


def ping_run(
    last: Run | None,
    kind: str,
    now: float,
    exit_code: int | None,
    duration_s: float | None,
    error: str | None,
    log: str | None,
) -> tuple[Run, bool]:
    """The run a ping makes, and whether it is ``last`` ended now (True) or a new run (False).

    A start begins a new run. An end ends the monitor's newest run if it is still running;
    otherwise it is a run of its own, started ``duration_s`` before it when that is given."""
    if kind not in PING_KINDS:
        raise ValueError(f"a ping is one of {', '.join(PING_KINDS)}, got {kind!r}")
    if kind == "start":
        return Run(now), False
    ok = kind == "success"
    if last is not None and last.ended is None:
        return Run(last.started, now, ok, exit_code, error, log), True
    started = None if duration_s is None else now - max(0.0, duration_s)
    return Run(started, now, ok, exit_code, error, log), False


class CheckInStore(ABC):
    """Jobs beside the app and their runs, as their pings told (see :mod:`wsgimon.stats.checkins`).

    Kept in the store so every worker and host agrees. Nothing here runs unless a monitor is
    declared or pinged: a deployment with none pays nothing."""

    @abstractmethod
    def declare_checkin(self, monitor: Monitor) -> None:
        """Keep ``monitor`` as configured: a new one is created (whatever the number kept), a known
        one takes its schedule and grace (it keeps its creation time and runs). Config wins: later
        pings carrying a schedule no longer change it."""

    @abstractmethod
    def checkin_ping(
        self,
        name: str,
        kind: str,
        now: float,
        *,
        declare: Monitor | None = None,
        exit_code: int | None = None,
        duration_s: float | None = None,
        error: str | None = None,
        log: str | None = None,
    ) -> Monitor | None:
        """Record a ping (one of PING_KINDS; see :func:`ping_run`) of monitor ``name``, in one transaction.

        ``declare``: the schedule the ping carries; it creates the monitor when unknown (TooManyCheckIns
        past MAX_CHECKINS) and replaces the schedule of one that pings declared, never of a declared
        one. Returns the monitor as kept, or None when it is unknown and ``declare`` is None (nothing
        is recorded). Keeps the newest RUNS_PER_CHECKIN runs."""

    @abstractmethod
    def checkin_monitors(self) -> list[Monitor]:
        """Every monitor kept, by name."""

    @abstractmethod
    def checkin_runs(self, name: str, limit: int) -> list[Run]:
        """The newest ``limit`` runs of monitor ``name``, oldest first (as ``state_of`` takes them)."""

    def all_checkin_runs(self, limit: int) -> dict[str, list[Run]]:
        """The newest ``limit`` runs of every monitor, oldest first, by name (monitors with none left out)."""
        found = {monitor.name: self.checkin_runs(monitor.name, limit) for monitor in self.checkin_monitors()}
        return {name: runs for name, runs in found.items() if runs}

    @abstractmethod
    def delete_checkin(self, name: str) -> bool:
        """Forget a monitor and its runs; False when there was none of that name."""


class Store(MetricsStore, RequestLog, IssueStore, AlertingStore, Coordination, DependencyStore, CheckInStore):
    """Persists batches and answers merged queries over time windows: every part of the contract."""

    def health(self) -> tuple[bool, str]:
        """(healthy, detail) of the store itself."""
        return True, "ok"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def vanished(
    process_host: str,
    pid: int,
    last_flush: float,
    *,
    host: str,
    now: float,
    alive: Callable[[int], bool],
    stale_s: float,
) -> bool:
    """Whether a process that had requests in flight is gone, as :meth:`Coordination.reap_lost` decides:
    one of ``host`` when ``alive(pid)`` says so, one of another host when silent for ``stale_s``."""
    return not alive(int(pid)) if process_host == host else last_flush < now - stale_s
