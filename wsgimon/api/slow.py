"""``/slow``: the slowest requests whose stacks were sampled while they ran, with their profiles."""

from __future__ import annotations

import time
from typing import Any

from .context import Context
from .params import Query
from .values import request_json

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
        rows.append({**request_json(entry, brief=True), **slow.profile.to_json(), "queries": slow.queries})
    return {"slow": rows, "in_flight": in_flight(ctx)}


def in_flight(ctx: Context) -> dict[str, Any]:
    """Requests running now in this process, and in every live process of the deployment.

    Other processes' counts are as of their last flush (within ``flush_interval``).
    """
    from .health import alive_processes, is_this_process

    now = time.perf_counter()
    running = ctx.in_flight.requests()
    oldest = max((now - request.started for request in running), default=None)
    wall = time.time()
    deployment, deployment_oldest = len(running), oldest
    for row in alive_processes(ctx, wall):
        if is_this_process(row) or not row.in_flight:
            continue
        deployment += row.in_flight
        if row.oldest_in_flight is not None:
            age = wall - row.oldest_in_flight
            deployment_oldest = age if deployment_oldest is None else max(deployment_oldest, age)
    return {
        "process": len(running),
        "oldest_s": None if oldest is None else round(oldest, 3),
        "deployment": deployment,
        "deployment_oldest_s": None if deployment_oldest is None else round(deployment_oldest, 3),
    }
