"""The in-process store: one process's statistics, kept in memory.

Right for a single process and for tests. Buckets are kept per resolution with
short retention (minutes for an hour, hours for two days, days for a month) so
memory stays bounded by the endpoint cap times the number of buckets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from ..aggregate import Aggregate
from ..windows import DAY, HOUR, MINUTE, TEN_MINUTES, TOTAL
from .base import (
    ALL,
    MAX_ALERTS,
    MAX_ERROR_SAMPLES,
    SLOW_PER_ENDPOINT,
    AlertRow,
    Batch,
    EndpointKey,
    ErrorSample,
    ProcessRow,
    ReleaseRow,
    RequestEntry,
    SlowRequest,
    Store,
    merge_into,
    release_rollups,
    rollups,
)

__all__ = ["MemoryStore"]

_RETENTION = {MINUTE: HOUR, TEN_MINUTES: HOUR, HOUR: 2 * DAY, DAY: 31 * DAY}


class MemoryStore(Store):
    minute_retention_s = float(_RETENTION[MINUTE])
    hour_retention_s = float(_RETENTION[HOUR])

    def __init__(self, *, recent_requests: int) -> None:
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
        self._states: dict[str, bool] = {}
        self._alerts: deque[AlertRow] = deque(maxlen=MAX_ALERTS)
        self._alert_id = 0
        self._reports: dict[str, tuple[str, float, str]] = {}
        self._processes: dict[tuple[str, int, float], ProcessRow] = {}
        self._started = time.time()
        self._releases: dict[str, ReleaseRow] = {}
        self._release_rows: dict[str, dict[int, dict[EndpointKey, Aggregate]]] = {}

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
        self.maintain(time.time())

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

    def maintain(self, now: float) -> None:
        with self._lock:
            for resolution, keep_s in _RETENTION.items():
                buckets = self._buckets[resolution]
                for start in [s for s in buckets if s < now - keep_s - resolution]:
                    del buckets[start]
            for process_key in [k for k, p in self._processes.items() if p.last_flush < now - DAY]:
                del self._processes[process_key]
            self._keep_newest_releases()

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

    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        with self._lock:
            until, suppressed = self._cooldowns.get(key, (0.0, 0))
            if now >= until:
                self._cooldowns[key] = (now + cooldown_s, 0)
                return True, suppressed
            self._cooldowns[key] = (until, suppressed + count)
            return False, 0

    def claim_followups(self, now: float, cooldown_s: float) -> list[tuple[str, int]]:
        with self._lock:
            due = [(key, n) for key, (until, n) in self._cooldowns.items() if n and until <= now]
            for key, _n in due:
                self._cooldowns[key] = (now + cooldown_s, 0)
            return due

    def transition(self, key: str, firing: bool, now: float) -> bool:
        with self._lock:
            if self._states.get(key, False) == firing:
                return False
            self._states[key] = firing
            return True

    def firing_keys(self) -> set[str]:
        with self._lock:
            return {key for key, firing in self._states.items() if firing}

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


def _copy(agg: Aggregate) -> Aggregate:
    copy = Aggregate()
    copy.merge(agg)
    return copy
