"""Mergeable per-endpoint statistics.

An :class:`Aggregate` is a sum: two of them merge into the statistics of both
sets of requests, which is what lets per-minute buckets roll up into windows and
per-process deltas combine into one deployment-wide view.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from itertools import repeat

from .sketch import QuantileSketch
from .spent import Spent, SpentByRequest

__all__ = ["Aggregate", "Buckets", "DEFAULT_BUCKETS_S", "LATENCY_KEYS", "bucket_labels"]

#: Prometheus's usual histogram buckets, in seconds.
DEFAULT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

LATENCY_KEYS = ("avg", "min", "max", "p50", "p90", "p95", "p99")
_QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))


class Aggregate:
    """Counts, latency and status breakdown of a set of requests."""

    __slots__ = (
        "count",
        "errors",
        "client_errors",
        "total_ms",
        "min_ms",
        "max_ms",
        "sketch",
        "status_codes",
        "error_types",
        "last_seen",
        "histogram",
        "spent",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.client_errors = 0
        self.total_ms = 0.0
        self.min_ms = float("inf")
        self.max_ms = 0.0
        self.sketch = QuantileSketch()
        self.status_codes: dict[int, int] = {}
        self.error_types: dict[str, int] = {}
        self.last_seen = 0.0
        # Requests per histogram bucket, keyed by its upper bound as Prometheus writes ``le``
        # ("0.005", ..., "+Inf"); not cumulative. Exact at those bounds, unlike the sketch.
        self.histogram: dict[str, int] = {}
        #: time in queries and outbound calls, for requests that made any (None: none did)
        self.spent: Spent | None = None

    def add(
        self,
        duration_ms: float,
        status: int,
        is_error: bool,
        is_client_error: bool,
        error_type: str | None,
        wall: float,
        buckets: Buckets | None = None,
    ) -> None:
        self.add_many([duration_ms], status, is_error, is_client_error, error_type, wall, buckets)

    def add_many(
        self,
        durations_ms: list[float],
        status: int,
        is_error: bool,
        is_client_error: bool,
        error_type: str | None,
        wall: float,
        buckets: Buckets | None = None,
        spent: list[SpentByRequest] | None = None,
    ) -> None:
        """Add requests that differ only in duration (the fold groups them); ``spent``: those that
        made queries or calls (the others made none)."""
        n = len(durations_ms)
        self.count += n
        if is_error:
            self.errors += n
        elif is_client_error:
            self.client_errors += n
        self.total_ms += sum(durations_ms)
        low, high = min(durations_ms), max(durations_ms)
        if low < self.min_ms:
            self.min_ms = low
        if high > self.max_ms:
            self.max_ms = high
        self.sketch.add_many(durations_ms)
        codes = self.status_codes
        codes[status] = codes.get(status, 0) + n
        if error_type is not None:
            types = self.error_types
            types[error_type] = types.get(error_type, 0) + n
        if wall > self.last_seen:
            self.last_seen = wall
        if buckets is not None:
            bounds, labels = buckets
            histogram = self.histogram
            for index, k in Counter(map(bisect_left, repeat(bounds), durations_ms)).items():
                label = labels[index]
                histogram[label] = histogram.get(label, 0) + k
        if spent:
            if self.spent is None:
                self.spent = Spent()
            self.spent.add(spent)

    def merge(self, other: Aggregate) -> None:
        self.count += other.count
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.total_ms += other.total_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sketch.merge(other.sketch)
        for code, n in other.status_codes.items():
            self.status_codes[code] = self.status_codes.get(code, 0) + n
        for name, n in other.error_types.items():
            self.error_types[name] = self.error_types.get(name, 0) + n
        self.last_seen = max(self.last_seen, other.last_seen)
        for label, n in other.histogram.items():
            self.histogram[label] = self.histogram.get(label, 0) + n
        if other.spent is not None:
            if self.spent is None:
                self.spent = Spent()
            self.spent.merge(other.spent)

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """avg/min/max/p50/p90/p95/p99 in milliseconds, None when nothing was seen."""
        if not self.count:
            return dict.fromkeys(LATENCY_KEYS)
        result: dict[str, float | None] = {
            "avg": _round(self.total_ms / self.count),
            "min": _round(self.min_ms),
            "max": _round(self.max_ms),
        }
        values = self.sketch.quantiles(q for _, q in _QUANTILES)
        for (name, _), value in zip(_QUANTILES, values, strict=True):
            # A bucket's representative may lie just outside the exact range.
            result[name] = None if value is None else _round(min(max(value, self.min_ms), self.max_ms))
        return result


# (upper bounds in ms, sorted; their labels in seconds with "+Inf" last)
Buckets = tuple[tuple[float, ...], tuple[str, ...]]


def bucket_labels(bounds_s: tuple[float, ...]) -> Buckets:
    """The fold's form of histogram bounds: milliseconds to bisect, and Prometheus's ``le`` labels."""
    ordered = tuple(sorted(set(bounds_s)))
    return tuple(b * 1000.0 for b in ordered), (*(_label(b) for b in ordered), "+Inf")


def _label(bound_s: float) -> str:
    return repr(float(bound_s))


def _round(value: float) -> float:
    return round(value, 3)
