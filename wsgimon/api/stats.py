"""``/stats``: totals and latency over all endpoints."""

from __future__ import annotations

from typing import Any

from ..stats.aggregate import Aggregate
from ..stats.spent import spent_summary
from ..stores.records import ALL
from .context import Context
from .params import Query
from .slow import in_flight
from .values import iso, rate

__all__ = ["PARAMETERS", "answer", "totals"]

PARAMETERS = {"window", "release"}


def totals(agg: Aggregate, capturing: bool) -> dict[str, Any]:
    """What /stats and every row of /endpoints have in common; ``capturing``: queries and calls are
    timed, so their absence means none were made (else ``time_spent`` is null: not known)."""
    return {
        "requests": agg.count,
        "errors": agg.errors,
        "client_errors": agg.client_errors,
        "error_rate": rate(agg.errors, agg.count),
        "latency_ms": agg.latency_ms(),
        "status_codes": {str(k): v for k, v in sorted(agg.status_codes.items())},
        "time_spent": spent_summary(agg.spent, agg.count, agg.total_ms) if capturing or agg.spent else None,
    }


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    window = query.window()
    now = ctx.now()
    ctx.flush_own()
    store = ctx.store
    release = query.release([row.release for row in store.releases()]) if "release" in query else None
    if release is None:
        overall = store.overall(window.since(now), now)
    else:
        overall = store.release_totals(release, window.since(now), now).get(ALL) or Aggregate()
    started = ctx.deployment_started()
    uptime = max(0.0, now - started)
    rate_window = min(300.0, max(5.0, uptime))
    recent = store.overall(now - rate_window, now)
    return {
        "window": window.label,
        **({} if release is None else {"release": release}),
        **totals(overall, ctx.capturing),
        "error_types": dict(sorted(overall.error_types.items(), key=lambda kv: -kv[1])),
        "requests_per_minute": round(recent.count * 60.0 / rate_window, 3),
        "uptime_s": round(uptime, 3),
        "since": iso(started),
        "endpoints_overflowed": store.overflowed(),
        "in_flight": in_flight(ctx),
    }
