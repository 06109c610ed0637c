"""``/endpoints``: statistics per endpoint and method, with optional latency sparklines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..stores.records import ALL
from .context import Context
from .params import BadRequest, Query
from .stats import totals
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "SORT_KEYS", "answer"]

PARAMETERS = {"sort", "limit", "window", "sparkline", "release"}
MAX_LIMIT = 10_000
MAX_SPARKLINE = 60
SORT_KEYS: dict[str, Callable[[dict[str, Any]], float]] = {
    "requests": lambda e: e["requests"],
    "errors": lambda e: e["errors"],
    "p95": lambda e: e["latency_ms"]["p95"] or 0.0,
    "avg": lambda e: e["latency_ms"]["avg"] or 0.0,
}


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    points = query.integer("sparkline", default=0, maximum=MAX_SPARKLINE) if "sparkline" in query else 0
    sort = query.choice("sort", SORT_KEYS, "requests")
    limit = query.integer("limit", default=MAX_LIMIT, maximum=MAX_LIMIT)
    window = query.window()
    now = ctx.now()
    ctx.flush_own()
    since = window.since(now)
    release = query.release([row.release for row in ctx.store.releases()]) if "release" in query else None
    if release is not None and points:
        raise BadRequest("sparkline is not available with release= (releases are kept per hour)")
    if release is None:
        per_key = ctx.store.endpoint_totals(since, now)
    else:
        per_key = {k: agg for k, agg in ctx.store.release_totals(release, since, now).items() if k != ALL}
    rows: list[dict[str, Any]] = [
        {"endpoint": endpoint, "method": method, **totals(agg, ctx.capturing), "last_seen": iso(agg.last_seen)}
        for (endpoint, method), agg in per_key.items()
    ]
    key = SORT_KEYS[sort]
    rows.sort(key=lambda row: (-key(row), row["endpoint"], row["method"]))
    rows = rows[:limit]
    if points:
        if since is None:
            since = min(ctx.deployment_started(), now - 60)
        lines = ctx.store.average_lines(since, now, points)
        for row in rows:
            row["sparkline"] = lines.get((row["endpoint"], row["method"]), [None] * points)
    return {"window": window.label, **({} if release is None else {"release": release}), "endpoints": rows}
