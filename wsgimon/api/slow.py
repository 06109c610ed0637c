"""``/slow``: the slowest requests whose stacks were sampled while they ran, with their profiles."""

from __future__ import annotations

from typing import Any

from .context import Context
from .params import Query
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer", "in_flight"]

PARAMETERS = {"endpoint", "limit"}
MAX_LIMIT = 100


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    endpoint = query.text("endpoint")
    limit = query.integer("limit", default=20, maximum=MAX_LIMIT)
    ctx.flush_own()
    rows = []
    for slow in ctx.store.slow_requests(endpoint, limit):
        entry = slow.request
        rows.append(
            {
                "time": iso(entry.time),
                "method": entry.method,
                "path": entry.path,
                "endpoint": entry.endpoint,
                "status": entry.status,
                "duration_ms": round(entry.duration_ms, 3),
                **slow.profile.to_json(),
            }
        )
    return {"slow": rows, "in_flight": in_flight(ctx)}


def in_flight(ctx: Context) -> dict[str, Any]:
    """Requests running in this process now, and how long the oldest has run."""
    import time

    now = time.perf_counter()
    running = list(ctx.monitor._in_flight.values())
    oldest = max((now - request.started for request in running), default=None)
    return {"process": len(running), "oldest_s": None if oldest is None else round(oldest, 3)}
