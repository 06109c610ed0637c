"""Service level objectives: error budgets and burn rates, the way the SRE workbook alerts on them.

An objective says what share of requests must be good: ``slo_availability``
(not a 5xx or an exception) and, optionally, ``slo_latency_target`` of them
faster than ``slo_latency_ms``. The burn rate over a window is the bad share
divided by the budget (1 - target): 1 spends the budget exactly over the
30-day period. Multi-window, multi-burn-rate alerting, the SRE workbook's tiers:
a page when both the 1 h and 5 min burn rates exceed 14.4 (2 % of a month's
budget in an hour, and still burning) or both the 6 h and 30 min exceed 6 (5 %
in six hours); a ticket when both the 3 day and 6 h exceed 1 (10 % in three days).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .aggregate import Aggregate

if TYPE_CHECKING:
    from ..config import Config
    from ..stores.contract import Store

__all__ = ["BURN_WINDOWS", "PERIOD_S", "Objective", "SLOStatus", "objectives", "slo_status"]

PERIOD_S = 30 * 86400.0
#: (severity, long window s, short window s, burn rate threshold), loudest first
BURN_WINDOWS = (
    ("page", 3600.0, 300.0, 14.4),
    ("page", 21600.0, 1800.0, 6.0),
    ("ticket", 259200.0, 21600.0, 1.0),
)
_WINDOW_LABELS = {300.0: "5m", 1800.0: "30m", 3600.0: "1h", 21600.0: "6h", 259200.0: "3d"}


@dataclass(frozen=True)
class Objective:
    name: str  # "availability" or "latency"
    target: float  # percent of requests that must be good
    latency_ms: float | None = None

    def bad(self, agg: Aggregate) -> int:
        if self.latency_ms is None:
            return agg.errors
        return agg.sketch.count_above(self.latency_ms)

    @property
    def budget(self) -> float:
        return 1.0 - self.target / 100.0

    def describe(self) -> str:
        if self.latency_ms is None:
            return f"{self.target:g} % of requests succeed"
        return f"{self.target:g} % of requests are faster than {self.latency_ms:g} ms"


@dataclass(frozen=True)
class SLOStatus:
    objective: Objective
    burn_rates: dict[str, float | None]  # by window label; None without requests
    budget_remaining: float | None  # of the last 30 days' budget, 1.0 = untouched, < 0 = overspent
    requests_30d: int
    firing: str | None  # "page", "ticket" or None

    def to_json(self) -> dict[str, object]:
        return {
            "objective": self.objective.name,
            "target": self.objective.target,
            "latency_ms": self.objective.latency_ms,
            "description": self.objective.describe(),
            "burn_rates": self.burn_rates,
            "error_budget_remaining": self.budget_remaining,
            "requests_30d": self.requests_30d,
            "firing": self.firing,
        }


def objectives(config: Config) -> list[Objective]:
    found = []
    if config.slo_availability is not None:
        found.append(Objective("availability", config.slo_availability))
    if config.slo_latency_ms is not None and config.slo_latency_target is not None:
        found.append(Objective("latency", config.slo_latency_target, config.slo_latency_ms))
    return found


def slo_status(store: Store, objective: Objective, now: float, min_requests: int = 1) -> SLOStatus:
    """Burn rates over the alerting windows and the budget left over 30 days, deployment-wide."""
    windows = sorted(_WINDOW_LABELS)
    aggregates = {seconds: store.overall(now - seconds, now) for seconds in windows}
    burn: dict[float, float | None] = {}
    for seconds, agg in aggregates.items():
        burn[seconds] = objective.bad(agg) / agg.count / objective.budget if agg.count else None
    month = store.overall(now - PERIOD_S, now)
    remaining = None
    if month.count:
        remaining = round(1.0 - objective.bad(month) / month.count / objective.budget, 6)
    firing = None
    for severity, long_s, short_s, threshold in BURN_WINDOWS:
        long_burn, short_burn = burn[long_s], burn[short_s]
        enough = aggregates[long_s].count >= min_requests
        if enough and long_burn is not None and short_burn is not None and min(long_burn, short_burn) > threshold:
            firing = severity
            break
    return SLOStatus(
        objective,
        {_WINDOW_LABELS[s]: None if b is None else round(b, 3) for s, b in burn.items()},
        remaining,
        month.count,
        firing,
    )
