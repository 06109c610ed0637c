"""``/releases``: every release, newest first, compared with the one before it."""

from __future__ import annotations

import time
from typing import Any

from ..stats.releases import summarize
from .context import Context
from .health import alive_processes
from .params import Query
from .values import iso, rate

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]

PARAMETERS = {"limit"}
MAX_LIMIT = 100


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    limit = query.integer("limit", default=20, maximum=MAX_LIMIT)
    ctx.flush_own()
    alive = alive_processes(ctx, time.time())
    rows = []
    for summary in summarize(ctx.store, ctx.config, alive, limit):
        overall = summary.overall
        latency = overall.latency_ms()
        rows.append(
            {
                "release": summary.row.release,
                "first_seen": iso(summary.row.first_seen),
                "last_seen": iso(summary.row.last_seen),
                "processes": summary.processes,
                "requests": overall.count,
                "errors": overall.errors,
                "error_rate": rate(overall.errors, overall.count),
                "latency_ms": {name: latency[name] for name in ("p50", "p95", "p99")},
                "compared_with": summary.previous,
                "new_error_types": summary.new_error_types,
                "regressions": [
                    {
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "metric": r.metric,
                        "before": round(r.before, 6 if r.metric == "error_rate" else 3),
                        "after": round(r.after, 6 if r.metric == "error_rate" else 3),
                        "requests_before": r.requests_before,
                        "requests_after": r.requests_after,
                    }
                    for r in summary.regressions
                ],
            }
        )
    return {"current": ctx.release, "releases": rows}
