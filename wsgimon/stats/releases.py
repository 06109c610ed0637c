"""What each release changed: the comparison that ``/releases``, the alerts and the report share.

Every release is compared with the one before it (by first_seen) on its
all-time rows: the store keeps them exact and merged across every process and
host, so a rolling deploy compares the two releases live while both serve.

A comparison claims only what the numbers show. Two releases' aggregates per (endpoint,
method) go in; out come the endpoints that got slower or fail more often::

    from wsgimon.stats.releases import find_regressions

    for r in find_regressions(store.endpoint_totals(...), store.endpoint_totals(...)):
        print(r.endpoint, r.method, r.metric, r.before, "->", r.after)

A deploy that changed nothing must report nothing, whatever the noise, so each
claim needs enough requests on both sides (``min_requests``) and:

- **p95**: the 95th percentile grew by ``p95_ratio`` *and* by ``p95_margin_ms``,
  so a 2 ms endpoint going to 3 ms is not news and neither is 2.00 s to 2.01 s;
- **error rate**: the share of server failures (``Aggregate.errors``: 5xx answers
  and unhandled exceptions, not the client's 4xx) is higher by a one-sided
  two-proportion z-test at ``p_value``, and by at least ``error_rate_margin``, because
  with a million requests a side even 1.00 % to 1.05 % is significant yet unnoticed;
- **queries**: the database queries per request (on average, over every request of the
  endpoint: one that made none counts as zero) grew by ``queries_ratio`` *and* by
  ``queries_margin``, so 1 → 51 (an N+1 the deploy brought) is named and 2 → 3 is not.
  Only when the release before captured queries at all (some endpoint of it has them): one
  recorded without capturing them would otherwise look like 0 queries everywhere.

The all-endpoints key (``ALL``) is left out unless ``include_all``: a change in the
traffic mix moves its numbers with no endpoint getting worse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..stores.contract import Store
from ..stores.records import ALL, RELEASE_TOTAL, EndpointKey, IssueRow, ProcessRow, ReleaseRow
from .aggregate import Aggregate

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "Metric",
    "Regression",
    "ReleaseSummary",
    "failure_types",
    "find_regressions",
    "new_error_types",
    "queries_per_request",
    "summarize",
]


@dataclass
class ReleaseSummary:
    row: ReleaseRow
    processes: int  # alive now
    totals: dict[EndpointKey, Aggregate]
    previous: str | None = None
    regressions: list[Regression] = field(default_factory=list)
    new_error_types: list[str] = field(default_factory=list)
    #: issues first seen in this release (no release before it had them), most frequent first
    new_issues: list[IssueRow] = field(default_factory=list)

    @property
    def overall(self) -> Aggregate:
        return self.totals.get(ALL) or Aggregate()


def failure_types(agg: Aggregate) -> set[str]:
    """Error types that are failures: exceptions and 5xx, not the client's 4xx."""
    return {name for name in agg.error_types if not (name[:3].isdigit() and int(name[:3]) < 500)}


def summarize(store: Store, config: Config, alive: list[ProcessRow], limit: int) -> list[ReleaseSummary]:
    """The newest ``limit`` releases, newest first, each compared with the one before it."""
    rows = store.releases()
    live: dict[str, int] = {}
    for process in alive:
        if process.release is not None:
            live[process.release] = live.get(process.release, 0) + 1
    shown = rows[: limit + 1]
    totals = {row.release: store.release_totals(row.release, None, 0.0) for row in shown}
    # Error types of older releases come from their all-time ALL row only.
    seen_types: list[set[str]] = []
    for row in rows:
        if row.release in totals:
            seen_types.append(failure_types(totals[row.release].get(ALL) or Aggregate()))
        else:
            older = list(store.release_buckets(row.release, RELEASE_TOTAL, RELEASE_TOTAL + 1, ALL))
            seen_types.append(failure_types(older[0][2]) if older else set())
    summaries = []
    for index, row in enumerate(rows[:limit]):
        summary = ReleaseSummary(row, live.get(row.release, 0), totals[row.release])
        if index + 1 < len(rows):
            previous = rows[index + 1]
            summary.previous = previous.release
            summary.regressions = find_regressions(
                totals[previous.release],
                summary.totals,
                min_requests=config.regression_min_requests,
                p95_ratio=config.regression_p95_ratio,
                p95_margin_ms=config.regression_p95_margin_ms,
            )
            before = set().union(*seen_types[index + 1 :])
            summary.new_error_types = new_error_types(seen_types[index], before)
        summaries.append(summary)
    _attach_new_issues(store, rows, summaries)
    return summaries


def _attach_new_issues(store: Store, rows: list[ReleaseRow], summaries: list[ReleaseSummary]) -> None:
    """Each issue belongs to the earliest release it was seen in; a release with one before it lists its own."""
    compared = {summary.row.release: summary for summary in summaries if summary.previous is not None}
    if not compared:
        return
    order = {row.release: row.first_seen for row in rows}
    since = min(compared[name].row.first_seen for name in compared)
    for issue in store.issues(since):
        known = [name for name, *_ in issue.releases if name in order]
        if known:
            first = min(known, key=order.__getitem__)
            if first in compared:
                compared[first].new_issues.append(issue)
    for summary in compared.values():
        summary.new_issues.sort(key=lambda issue: -issue.count)


Metric = Literal["p95", "error_rate", "queries"]
#: the order regressions are listed in: failures, then slowness, then more queries
_METRIC_RANK = {"error_rate": 0, "p95": 1, "queries": 2}


@dataclass(frozen=True)
class Regression:
    """One endpoint's metric that is worse after than before."""

    endpoint: str
    method: str
    metric: Metric
    #: p95 in ms, the error rate as a fraction (0.05 is 5 %), or queries per request on average
    before: float
    after: float
    requests_before: int
    requests_after: int

    @property
    def ratio(self) -> float:
        """How many times worse: ``after / before``, infinite when there was nothing before."""
        return self.after / self.before if self.before > 0 else math.inf

    @property
    def change(self) -> str:
        """The change in words, as alerts and reports say it: ``p95 12.0 ms → 90.0 ms``,
        ``error rate 1.00 % → 5.00 %``, ``1 → 51 queries per request``."""
        if self.metric == "p95":
            return f"p95 {self.before:.1f} ms → {self.after:.1f} ms"
        if self.metric == "queries":
            return f"{queries_per_request(self.before)} → {queries_per_request(self.after)} queries per request"
        return f"error rate {self.before * 100:.2f} % → {self.after * 100:.2f} %"


def queries_per_request(value: float) -> str:
    """An average number of queries as a reader counts them: ``51``, ``1.5`` (one decimal at most)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def find_regressions(
    before: Mapping[EndpointKey, Aggregate],
    after: Mapping[EndpointKey, Aggregate],
    *,
    min_requests: int = 200,
    p95_ratio: float = 1.25,
    p95_margin_ms: float = 10.0,
    p_value: float = 0.01,
    error_rate_margin: float = 0.001,
    queries_ratio: float = 2.0,
    queries_margin: float = 5.0,
    include_all: bool = False,
) -> list[Regression]:
    """The regressions of ``after`` against ``before``, worst first.

    Failures come before slowness (a failed request is worse than a slow one), slowness
    before more queries per request (often its cause, named beside it); then the most times
    worse, then the busiest; ties by endpoint and method, so the same numbers always give
    the same list. An endpoint seen on one side only has nothing to compare with and is
    left out.
    """
    if min_requests < 1:
        raise ValueError(f"min_requests must be at least 1, got {min_requests!r}")
    if not (math.isfinite(p95_ratio) and p95_ratio >= 1.0):
        raise ValueError(f"p95_ratio must be 1 or more, got {p95_ratio!r}")
    if not (math.isfinite(p95_margin_ms) and p95_margin_ms >= 0.0):
        raise ValueError(f"p95_margin_ms must be 0 or more, got {p95_margin_ms!r}")
    if not 0.0 < p_value < 1.0:
        raise ValueError(f"p_value must be between 0 and 1, got {p_value!r}")
    if not 0.0 <= error_rate_margin < 1.0:
        raise ValueError(f"error_rate_margin must be between 0 and 1, got {error_rate_margin!r}")
    if not (math.isfinite(queries_ratio) and queries_ratio >= 1.0):
        raise ValueError(f"queries_ratio must be 1 or more, got {queries_ratio!r}")
    if not (math.isfinite(queries_margin) and queries_margin > 0.0):
        raise ValueError(f"queries_margin must be more than 0, got {queries_margin!r}")
    # Without a query anywhere before, capture was off (or older): 0 queries would be a guess.
    queries_known = any(agg.spent is not None and agg.spent.queries for agg in before.values())
    found: list[Regression] = []
    for key, new in after.items():
        old = before.get(key)
        if old is None or (key == ALL and not include_all):
            continue
        if old.count < min_requests or new.count < min_requests:
            continue
        endpoint, method = key
        rate_before, rate_after = old.errors / old.count, new.errors / new.count
        if (
            _p_value_higher(old.errors, old.count, new.errors, new.count) < p_value
            and rate_after > rate_before
            and rate_after - rate_before >= error_rate_margin
        ):
            found.append(Regression(endpoint, method, "error_rate", rate_before, rate_after, old.count, new.count))
        p95_before, p95_after = old.latency_ms()["p95"], new.latency_ms()["p95"]
        if (
            p95_before is not None
            and p95_after is not None
            and p95_after > p95_before
            and p95_after >= p95_before * p95_ratio
            and p95_after - p95_before >= p95_margin_ms
        ):
            found.append(Regression(endpoint, method, "p95", p95_before, p95_after, old.count, new.count))
        if queries_known:
            queries_before = (old.spent.queries if old.spent is not None else 0) / old.count
            queries_after = (new.spent.queries if new.spent is not None else 0) / new.count
            if queries_after >= queries_before * queries_ratio and queries_after - queries_before >= queries_margin:
                found.append(
                    Regression(endpoint, method, "queries", queries_before, queries_after, old.count, new.count)
                )
    found.sort(key=lambda r: (_METRIC_RANK[r.metric], -r.ratio, -r.requests_after, r.endpoint, r.method))
    return found


def new_error_types(current: Iterable[str], previous: Iterable[str]) -> list[str]:
    """Error types of this release that no previous one had, sorted: what the deploy introduced."""
    return sorted(set(current).difference(previous))


def _p_value_higher(errors_before: int, n_before: int, errors_after: int, n_after: int) -> float:
    """One-sided p-value that the failure share after is higher (pooled two-proportion z-test).

    With no failures at all, or nothing but failures, on both sides the shares
    are equal and nothing varies: 1.0, no evidence of a change.
    """
    pooled = (errors_before + errors_after) / (n_before + n_after)
    variance = pooled * (1.0 - pooled) * (1.0 / n_before + 1.0 / n_after)
    if variance <= 0.0:
        return 1.0
    z = (errors_after / n_after - errors_before / n_before) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))
