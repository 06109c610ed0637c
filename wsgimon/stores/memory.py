"""The in-process store: one process's statistics, kept in memory.

Right for a single process and for tests. All-time aggregates are kept per
endpoint; per-minute buckets are kept for ``retention_minutes`` so windowed
queries (health, requests per minute) work; memory is bounded by the endpoint
cap times that retention.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ..aggregate import Aggregate
from .base import Batch, EndpointKey, ErrorSample, RequestEntry, Store

__all__ = ["MemoryStore"]

_MAX_ERROR_SAMPLES = 1000


class MemoryStore(Store):
    def __init__(self, *, recent_requests: int, retention_minutes: int = 60) -> None:
        self._lock = threading.Lock()
        self._totals: dict[EndpointKey, Aggregate] = {}
        self._minutes: dict[int, dict[EndpointKey, Aggregate]] = {}
        self._recent: deque[RequestEntry] = deque(maxlen=recent_requests)
        self._errors: dict[tuple[str, str, str], ErrorSample] = {}
        self._overflowed = 0
        self._retention_minutes = retention_minutes

    def write(self, batch: Batch) -> None:
        with self._lock:
            for minute, per_endpoint in batch.minutes.items():
                bucket = self._minutes.setdefault(minute, {})
                for key, agg in per_endpoint.items():
                    _merge_into(bucket, key, agg)
                    _merge_into(self._totals, key, agg)
            self._recent.extend(batch.requests)
            for error_key, sample in batch.errors.items():
                known = self._errors.get(error_key)
                if known is not None:
                    known.merge(sample)
                elif len(self._errors) < _MAX_ERROR_SAMPLES:
                    self._errors[error_key] = sample
            self._overflowed += batch.overflowed
            self._prune()

    def _prune(self) -> None:
        oldest = int(time.time() // 60) - self._retention_minutes
        for minute in [m for m in self._minutes if m < oldest]:
            del self._minutes[minute]

    def endpoint_totals(self, since: float | None = None) -> dict[EndpointKey, Aggregate]:
        result: dict[EndpointKey, Aggregate] = {}
        with self._lock:
            if since is None:
                sources = [self._totals]
            else:
                first = int(since // 60)
                sources = [bucket for minute, bucket in self._minutes.items() if minute >= first]
            for source in sources:
                for key, agg in source.items():
                    _merge_into(result, key, agg)
        return result

    def recent_requests(self, limit: int) -> list[RequestEntry]:
        with self._lock:
            items = list(self._recent)
        items.reverse()
        return items[:limit]

    def error_samples(self, since: float | None = None) -> list[ErrorSample]:
        with self._lock:
            samples = [ErrorSample(**vars(s)) for s in self._errors.values() if since is None or s.last_seen >= since]
        return samples

    def overflowed(self) -> int:
        return self._overflowed


def _merge_into(target: dict[EndpointKey, Aggregate], key: EndpointKey, agg: Aggregate) -> None:
    existing = target.get(key)
    if existing is None:
        existing = target[key] = Aggregate()
    existing.merge(agg)
