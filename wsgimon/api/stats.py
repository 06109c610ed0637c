"""``/stats``: totals and latency over all endpoints."""

from __future__ import annotations

from typing import Any

from ..stats.aggregate import Aggregate
from ..stats.spent import spent_summary
from ..stats.time_windows import DAY
from ..stores.contract import StoreUnavailable
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
        "saturation": saturation(ctx, now),
        "lost_requests": lost_requests(ctx, window.since(now), now),
    }


def saturation(ctx: Context, now: float) -> dict[str, Any]:
    """Requests running against what the workers can run at once, per host (as of each worker's last
    flush; this process's own count is live). Capacity is null where a worker's server did not say."""
    from .health import alive_processes, is_this_process

    own = len(ctx.in_flight.requests())
    hosts: dict[str, dict[str, Any]] = {}
    for row in alive_processes(ctx, now):
        host = hosts.setdefault(row.host, {"host": row.host, "workers": 0, "busy": 0, "capacity": 0})
        host["workers"] += 1
        host["busy"] += own if is_this_process(row) else row.in_flight
        if row.capacity is None or host["capacity"] is None:
            host["capacity"] = None
        else:
            host["capacity"] += row.capacity
    listed = sorted(hosts.values(), key=lambda host: str(host["host"]))
    capacities = [host["capacity"] for host in listed]
    return {
        "busy": sum(int(host["busy"]) for host in listed),
        "capacity": None if not listed or None in capacities else sum(capacities),
        "hosts": listed,
    }


def lost_requests(ctx: Context, since: float | None, now: float) -> dict[str, Any]:
    """Requests that were in flight in a worker that vanished (SIGKILL, out of memory), within the
    window (a day at most: how long a gone process's row is kept)."""
    try:
        gone = ctx.store.lost_processes(max(since or 0.0, now - DAY))
    except StoreUnavailable:
        gone = []
    return {
        "count": sum(row.lost for row in gone),
        "recent": [
            {
                "host": row.host,
                "pid": row.pid,
                "requests": row.lost,
                "request": row.oldest_request,
                "at": iso(row.last_flush),
            }
            for row in gone[:20]
        ],
    }
