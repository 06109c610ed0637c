"""What each release changed: the comparison that ``/releases``, the alerts and the report share.

Every release is compared with the one before it (by first_seen) on its
all-time rows: the store keeps them exact and merged across every process and
host, so a rolling deploy compares the two releases live while both serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .aggregate import Aggregate
from .regressions import Regression, find_regressions, new_error_types
from .stores.base import ALL, RELEASE_TOTAL, EndpointKey, IssueRow, ProcessRow, ReleaseRow, Store

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ReleaseSummary", "failure_types", "summarize"]


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
