"""The in-process store: one process's statistics, kept in memory.

Right for a single process and for tests. Buckets are kept per resolution with
short retention (minutes for an hour, hours for two days, days for a month) so
memory stays bounded by the endpoint cap times the number of buckets.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from ..alerts.state import KEEP_RESOLVED_S, AlertingState, Silence
from ..stats.aggregate import Aggregate
from ..stats.issues import OPEN, IssueChange, after_occurrences, apply_change, effective
from ..stats.time_windows import DAY, HOUR, MINUTE, TEN_MINUTES, TOTAL
from .checkins_memory import MemoryCheckIns
from .contract import Store, T, vanished
from .dependencies_memory import MemoryDependencies
from .records import (
    ALL,
    MAX_ALERTS,
    MAX_ERROR_SAMPLES,
    MAX_ISSUES,
    SLOW_PER_ENDPOINT,
    AlertRow,
    Batch,
    EndpointKey,
    ErrorSample,
    IssueRow,
    IssueSample,
    ProcessRow,
    ReleaseRow,
    RequestEntry,
    SlowRequest,
    issue_count_rows,
    merge_into,
    most_broken_first,
    release_rollups,
    rollups,
)

__all__ = ["MemoryStore"]

_RETENTION = {MINUTE: HOUR, TEN_MINUTES: HOUR, HOUR: 2 * DAY, DAY: 31 * DAY}


class MemoryStore(MemoryDependencies, MemoryCheckIns, Store):
    minute_retention_s = float(_RETENTION[MINUTE])
    hour_retention_s = float(_RETENTION[HOUR])

    def __init__(self, *, recent_requests: int) -> None:
        super().__init__()
        MemoryCheckIns.__init__(self)  # the parts before it do not chain their __init__
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[int, dict[EndpointKey, Aggregate]]] = {
            resolution: {} for resolution in (*_RETENTION, TOTAL)
        }
        self._recent: deque[RequestEntry] = deque(maxlen=recent_requests)
        self._errors: dict[tuple[str, str, str], ErrorSample] = {}
        self._overflowed = 0
        self._names: set[str] = set()
        self._slow: dict[EndpointKey, list[SlowRequest]] = {}
        self._cooldowns: dict[str, tuple[float, int]] = {}
        self._alerts: deque[AlertRow] = deque(maxlen=MAX_ALERTS)
        self._alert_id = 0
        self._reports: dict[str, tuple[str, float, str]] = {}
        self._processes: dict[tuple[str, int, float], ProcessRow] = {}
        #: (when reaped, the process) of processes that vanished with requests in flight
        self._lost: deque[tuple[float, ProcessRow]] = deque()
        self._access_token: str | None = None
        self._started = time.time()
        self._releases: dict[str, ReleaseRow] = {}
        self._release_rows: dict[str, dict[int, dict[EndpointKey, Aggregate]]] = {}
        self._issues: dict[str, _Issue] = {}
        self._alerting = AlertingState()

    def write(self, batch: Batch, process: ProcessRow) -> None:
        with self._lock:
            for (resolution, start), per_key in rollups(batch).items():
                bucket = self._buckets[resolution].setdefault(start, {})
                for key, agg in per_key.items():
                    merge_into(bucket, key, agg)
            self._recent.extend(batch.requests)
            for slow in batch.slow:
                self._keep_slow(slow)
            for error_key, sample in batch.errors.items():
                known = self._errors.get(error_key)
                if known is not None:
                    known.merge(sample)
                elif len(self._errors) < MAX_ERROR_SAMPLES:
                    self._errors[error_key] = ErrorSample(**vars(sample))
            self._overflowed += batch.overflowed
            self._processes[(process.host, process.pid, process.started)] = process
            if process.release is not None:
                self._write_release(batch, process)
            for issue in batch.issues.values():
                self._write_issue(issue, process.release, process.last_flush)
        self._write_dependencies(batch, process.release)
        self.maintain(time.time())

    def _write_issue(self, sample: IssueSample, release: str | None, now: float) -> None:
        issue = self._issues.get(sample.id)
        if issue is None:
            if len(self._issues) >= MAX_ISSUES:
                del self._issues[min(self._issues, key=lambda key: self._issues[key].row.last_seen)]
            row = IssueRow(
                sample.id, sample.fingerprint, sample.type, sample.title, sample.message, sample.traceback,
                sample.frames, sample.culprit, 0, sample.first_seen, sample.last_seen, OPEN, now,
            )  # fmt: skip
            issue = self._issues[sample.id] = _Issue(row)
        row = issue.row
        after_occurrences(row, sample.count, sample.last_seen, release, self._release_started, now)
        row.first_seen = min(row.first_seen, sample.first_seen)
        if sample.last_seen >= row.last_seen:
            row.last_seen = sample.last_seen
            row.title, row.message, row.traceback = sample.title, sample.message, sample.traceback
            row.frames, row.culprit = sample.frames, sample.culprit
        for key, n in sample.endpoints.items():
            issue.endpoints[key] = issue.endpoints.get(key, 0) + n
        if release is not None:
            count, first, last = issue.releases.get(release, (0, sample.first_seen, sample.last_seen))
            issue.releases[release] = (count + sample.count, min(first, sample.first_seen), max(last, sample.last_seen))
        for count_key, n in issue_count_rows(sample).items():
            issue.counts[count_key] = issue.counts.get(count_key, 0) + n

    def _release_started(self, release: str) -> float | None:
        known = self._releases.get(release)
        return None if known is None else known.first_seen

    def _write_release(self, batch: Batch, process: ProcessRow) -> None:
        release = process.release
        assert release is not None
        known = self._releases.get(release)
        first = process.started if known is None else min(known.first_seen, process.started)
        self._releases[release] = ReleaseRow(release, first, process.last_flush)
        rows = self._release_rows.setdefault(release, {})
        for start, per_key in release_rollups(batch).items():
            target = rows.setdefault(start, {})
            for key, agg in per_key.items():
                merge_into(target, key, agg)
        self._keep_newest_releases()

    def _keep_newest_releases(self) -> None:
        kept = sorted(self._releases.values(), key=lambda row: -row.first_seen)[: self.max_releases]
        for gone in set(self._releases) - {row.release for row in kept}:
            del self._releases[gone]
            self._release_rows.pop(gone, None)

    def process_stopped(self, process: ProcessRow) -> None:
        with self._lock:
            self._processes.pop((process.host, process.pid, process.started), None)

    def reap_lost(self, host: str, now: float, alive: Callable[[int], bool], stale_s: float) -> int:
        with self._lock:
            gone = [
                key
                for key, row in self._processes.items()
                if row.in_flight > 0
                and vanished(row.host, row.pid, row.last_flush, host=host, now=now, alive=alive, stale_s=stale_s)
            ]
            for key in gone:
                row = self._processes.pop(key)
                self._lost.append((now, replace(row, lost=row.in_flight)))
            while self._lost and self._lost[0][0] < now - DAY:
                self._lost.popleft()
            return len(gone)

    def access_token(self, make: Callable[[], str]) -> str:
        with self._lock:
            if self._access_token is None:
                self._access_token = make()
            return self._access_token

    def lost_processes(self, since: float) -> list[ProcessRow]:
        with self._lock:
            return [row for stopped, row in reversed(self._lost) if stopped >= since]

    def maintain(self, now: float) -> None:
        with self._lock:
            for resolution, keep_s in _RETENTION.items():
                buckets = self._buckets[resolution]
                for start in [s for s in buckets if s < now - keep_s - resolution]:
                    del buckets[start]
            for process_key in [k for k, p in self._processes.items() if p.last_flush < now - DAY]:
                del self._processes[process_key]
            for issue in self._issues.values():
                for count_key in [k for k in issue.counts if k[1] < now - _RETENTION[k[0]] - k[0]]:
                    del issue.counts[count_key]
            self._keep_newest_releases()
        self._prune_dependencies(now)
        self._prune_checkins(now)

    def releases(self) -> list[ReleaseRow]:
        with self._lock:
            return sorted(self._releases.values(), key=lambda row: -row.first_seen)

    def release_buckets(
        self, release: str, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        with self._lock:
            return [
                (start, row_key, _copy(agg))
                for start, per_key in self._release_rows.get(release, {}).items()
                if first <= start < end
                for row_key, agg in per_key.items()
                if key is None or row_key == key
            ]

    def buckets(
        self, resolution: int, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        rows: list[tuple[int, EndpointKey, Aggregate]] = []
        with self._lock:
            for start, per_key in self._buckets[resolution].items():
                if not first <= start < end:
                    continue
                if key is None:
                    rows.extend((start, k, _copy(agg)) for k, agg in per_key.items() if k != ALL)
                elif key in per_key:
                    rows.append((start, key, _copy(per_key[key])))
        return rows

    def sums(
        self, resolution: int, first: int, end: int, slot_s: float
    ) -> Iterable[tuple[int, EndpointKey, int, float]]:
        slots: dict[tuple[int, EndpointKey], list[float]] = {}
        with self._lock:
            for start, per_key in self._buckets[resolution].items():
                if not first <= start < end:
                    continue
                index = int((start - first) / slot_s)
                for key, agg in per_key.items():
                    if key == ALL:
                        continue
                    slot = slots.setdefault((index, key), [0, 0.0])
                    slot[0] += agg.count
                    slot[1] += agg.total_ms
        return [(index, key, int(count), total) for (index, key), (count, total) in slots.items()]

    def error_counts(
        self, resolution: int, first: int, end: int
    ) -> Iterable[tuple[EndpointKey, dict[str, int], float]]:
        with self._lock:
            return [
                (key, dict(agg.error_types), agg.last_seen)
                for start, per_key in self._buckets[resolution].items()
                if first <= start < end
                for key, agg in per_key.items()
                if key != ALL and agg.error_types
            ]

    def _keep_slow(self, slow: SlowRequest) -> None:
        key = (slow.request.endpoint, slow.request.method)
        kept = self._slow.setdefault(key, [])
        kept.append(slow)
        kept.sort(key=lambda s: -s.request.duration_ms)
        del kept[SLOW_PER_ENDPOINT:]
        if len(self._slow) > MAX_ERROR_SAMPLES:  # bounded like every per-key structure
            self._slow.pop(next(iter(self._slow)))

    def slow_requests(self, endpoint: str | None, limit: int) -> list[SlowRequest]:
        oldest = time.time() - _RETENTION[HOUR]
        with self._lock:
            found = [
                s
                for (name, _method), kept in self._slow.items()
                if endpoint is None or name == endpoint
                for s in kept
                if s.request.time >= oldest
            ]
        return sorted(found, key=lambda s: -s.request.duration_ms)[:limit]

    def recent_requests(self, limit: int) -> list[RequestEntry]:
        with self._lock:
            items = list(self._recent)
        items.reverse()
        return items[:limit]

    def error_samples(self) -> dict[tuple[str, str, str], ErrorSample]:
        with self._lock:
            return {key: ErrorSample(**vars(sample)) for key, sample in self._errors.items()}

    def issues(self, seen_since: float | None) -> list[IssueRow]:
        with self._lock:
            return [
                issue.snapshot()
                for issue in self._issues.values()
                if seen_since is None or issue.row.last_seen >= seen_since
            ]

    def issue(self, issue_id: str) -> IssueRow | None:
        with self._lock:
            issue = self._issues.get(issue_id)
            return None if issue is None else issue.snapshot()

    def issue_counts(self, resolution: int, first: int, end: int) -> Iterable[tuple[str, int, int]]:
        with self._lock:
            return [
                (issue_id, start, count)
                for issue_id, issue in self._issues.items()
                for (kind, start), count in issue.counts.items()
                if kind == resolution and first <= start < end
            ]

    def change_issue(self, issue_id: str, change: IssueChange, now: float) -> IssueRow | None:
        with self._lock:
            issue = self._issues.get(issue_id)
            if issue is None:
                return None
            apply_change(issue.row, change, now)
            return issue.snapshot()

    def alerting(self, change: Callable[[AlertingState], T], now: float) -> T:
        with self._lock:
            result = change(self._alerting)
            self._alerting.changed_conditions.clear()
            self._alerting.changed_incidents.clear()
            return result

    def alerting_view(self, now: float) -> AlertingState:
        with self._lock:
            state = copy.deepcopy(self._alerting)
        state.silences = [s for s in state.silences if s.ends > now - KEEP_RESOLVED_S]
        return state

    def add_silence(self, make: Callable[[int], Silence]) -> Silence:
        with self._lock:
            silence = make(max((s.id for s in self._alerting.silences), default=0) + 1)
            self._alerting.silences.append(silence)
            return silence

    def expire_silence(self, number: int, now: float) -> Silence | None:
        with self._lock:
            for index, silence in enumerate(self._alerting.silences):
                if silence.id == number:
                    ended = replace(silence, ends=min(silence.ends, now))
                    self._alerting.silences[index] = ended
                    return ended
        return None

    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        with self._lock:
            until, suppressed = self._cooldowns.get(key, (0.0, 0))
            if now >= until:
                self._cooldowns[key] = (now + cooldown_s, 0)
                return True, suppressed
            self._cooldowns[key] = (until, suppressed + count)
            return False, 0

    def record_alert(self, row: AlertRow) -> int:
        with self._lock:
            self._alert_id += 1
            row.id = self._alert_id
            self._alerts.append(row)
            return row.id

    def update_alert(self, alert_id: int, deliveries: dict[str, dict[str, object]]) -> None:
        with self._lock:
            for row in self._alerts:
                if row.id == alert_id:
                    row.deliveries = dict(deliveries)

    def recent_alerts(self, limit: int) -> list[AlertRow]:
        with self._lock:
            return [AlertRow(**vars(row)) for row in reversed(self._alerts)][:limit]

    def claim_report(self, key: str, now: float, stale_s: float) -> bool:
        with self._lock:
            known = self._reports.get(key)
            if known is not None and not (known[0] == "sending" and known[1] < now - stale_s):
                return False
            self._reports[key] = ("sending", now, "")
            return True

    def finish_report(self, key: str, state: str, detail: str, now: float) -> None:
        with self._lock:
            self._reports[key] = (state, now, detail)

    def report_runs(self, limit: int) -> list[tuple[str, str, float, str]]:
        with self._lock:
            runs = [(key, *value) for key, value in self._reports.items()]
        return sorted(runs, key=lambda run: run[2], reverse=True)[:limit]

    def admit_name(self, name: str, cap: int) -> bool:
        with self._lock:
            if name in self._names:
                return True
            if len(self._names) >= cap:
                return False
            self._names.add(name)
            return True

    def overflowed(self) -> int:
        return self._overflowed

    def processes(self, seen_since: float) -> list[ProcessRow]:
        with self._lock:
            return [p for p in self._processes.values() if p.last_flush >= seen_since]

    def deployment_started(self) -> float | None:
        return self._started


class _Issue:
    """An issue with what the SQL stores keep in tables of their own."""

    __slots__ = ("row", "endpoints", "releases", "counts")

    def __init__(self, row: IssueRow) -> None:
        self.row = row
        self.endpoints: dict[EndpointKey, int] = {}
        self.releases: dict[str, tuple[int, float, float]] = {}
        self.counts: dict[tuple[int, int], int] = {}  # (resolution, start) -> occurrences

    def snapshot(self) -> IssueRow:
        row = IssueRow(**{**vars(self.row), "frames": list(self.row.frames)})
        row.status = effective(row, time.time())
        row.endpoints = most_broken_first([(e, m, n) for (e, m), n in self.endpoints.items()])
        row.releases = sorted(((r, *v) for r, v in self.releases.items()), key=lambda item: -item[2])
        return row


def _copy(agg: Aggregate) -> Aggregate:
    copy = Aggregate()
    copy.merge(agg)
    return copy
