"""Where a set of requests spent its time: database queries and outbound HTTP calls beside its own code.

Part of an :class:`~wsgimon.stats.aggregate.Aggregate` (``aggregate.spent``), made only for
requests that made a query or a call, so an app that makes neither stores nothing more. The
per-request distributions keep only those requests; the aggregate's count says how many made
none, and quantiles count them as zero.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .sketch import QuantileSketch

__all__ = ["Spent", "SpentByRequest", "spent_summary"]

#: one request's (queries, ms in the database, outbound calls, ms in them)
SpentByRequest = tuple[int, float, int, float]


class Spent:
    """Sums and per-request distributions of queries, database time, calls and call time."""

    __slots__ = ("queries", "db_ms", "calls", "http_ms", "per_queries", "per_db_ms", "per_http_ms", "per_calls")

    def __init__(self) -> None:
        self.queries = 0
        self.db_ms = 0.0
        self.calls = 0
        self.http_ms = 0.0
        # per request that made at least one (query, resp. call)
        self.per_queries = QuantileSketch()
        self.per_db_ms = QuantileSketch()
        self.per_calls = QuantileSketch()
        self.per_http_ms = QuantileSketch()

    def add(self, requests: list[SpentByRequest]) -> None:
        queried = [r for r in requests if r[0]]
        called = [r for r in requests if r[2]]
        if queried:
            self.queries += sum(r[0] for r in queried)
            self.db_ms += sum(r[1] for r in queried)
            self.per_queries.add_many([float(r[0]) for r in queried])
            self.per_db_ms.add_many([r[1] for r in queried])
        if called:
            self.calls += sum(r[2] for r in called)
            self.http_ms += sum(r[3] for r in called)
            self.per_calls.add_many([float(r[2]) for r in called])
            self.per_http_ms.add_many([r[3] for r in called])

    def merge(self, other: Spent) -> None:
        self.queries += other.queries
        self.db_ms += other.db_ms
        self.calls += other.calls
        self.http_ms += other.http_ms
        self.per_queries.merge(other.per_queries)
        self.per_db_ms.merge(other.per_db_ms)
        self.per_calls.merge(other.per_calls)
        self.per_http_ms.merge(other.per_http_ms)

    def to_text(self) -> str:
        """The stored form: JSON with the sketches as base64."""
        return json.dumps(
            {
                "q": self.queries,
                "d": self.db_ms,
                "c": self.calls,
                "h": self.http_ms,
                "s": [_b64(s) for s in (self.per_queries, self.per_db_ms, self.per_calls, self.per_http_ms)],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str) -> Spent | None:
        if not text:
            return None
        data = json.loads(text)
        spent = cls()
        spent.queries, spent.db_ms, spent.calls, spent.http_ms = data["q"], data["d"], data["c"], data["h"]
        sketches = [QuantileSketch.from_bytes(base64.b64decode(s)) for s in data["s"]]
        spent.per_queries, spent.per_db_ms, spent.per_calls, spent.per_http_ms = sketches
        return spent


def spent_summary(spent: Spent | None, requests: int, total_ms: float) -> dict[str, Any]:
    """Per request over ``requests`` (those that made none count as zero), and shares of ``total_ms``."""
    spent = spent or Spent()
    db_share = _share(spent.db_ms, total_ms)
    http_share = _share(spent.http_ms, total_ms)
    app_share = None if db_share is None or http_share is None else round(max(0.0, 1.0 - db_share - http_share), 4)
    return {
        "db_queries": {"avg": _avg(spent.queries, requests), "p95": _p95(spent.per_queries, requests, 0)},
        "db_ms": {"avg": _avg(spent.db_ms, requests), "p95": _p95(spent.per_db_ms, requests, 3)},
        "http_calls": {"avg": _avg(spent.calls, requests), "p95": _p95(spent.per_calls, requests, 0)},
        "http_ms": {"avg": _avg(spent.http_ms, requests), "p95": _p95(spent.per_http_ms, requests, 3)},
        "share": {"db": db_share, "http": http_share, "app": app_share},
    }


def _avg(total: float, requests: int) -> float | None:
    return None if not requests else round(total / requests, 3)


def _p95(sketch: QuantileSketch, requests: int, digits: int) -> float | None:
    if not requests:
        return None
    none = requests - sketch.count
    if none > 0:
        with_zeros = QuantileSketch(sketch.relative_accuracy)
        with_zeros.merge(sketch)
        with_zeros.add(0.0, none)
        sketch = with_zeros
    value = sketch.quantile(0.95)
    if value is None:
        return None
    return float(round(value)) if digits == 0 else round(value, digits)


def _share(part_ms: float, total_ms: float) -> float | None:
    if total_ms <= 0:
        return None
    return round(min(1.0, part_ms / total_ms), 4)


def _b64(sketch: QuantileSketch) -> str:
    return base64.b64encode(sketch.to_bytes()).decode("ascii")
