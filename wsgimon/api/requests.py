"""``/requests``: the live request log, newest first, filtered."""

from __future__ import annotations

from typing import Any

from .context import Context
from .params import Query
from .values import request_json

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]

PARAMETERS = {"limit", "status", "endpoint", "min_ms"}
MAX_LIMIT = 1_000_000  # the most rows asked for; the log holds recent_requests at most


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    cap = ctx.config.recent_requests
    limit = query.integer("limit", default=min(100, cap), maximum=MAX_LIMIT)
    status_filter = query.status_filter()
    endpoint = query.text("endpoint")
    min_ms = query.number("min_ms")
    ctx.flush_own()
    rows = []
    for entry in ctx.store.recent_requests(cap):
        if status_filter is not None and not status_filter(entry.status):
            continue
        if endpoint is not None and entry.endpoint != endpoint:
            continue
        if min_ms is not None and entry.duration_ms < min_ms:
            continue
        rows.append(request_json(entry))
        if len(rows) >= limit:
            break
    return {"requests": rows}
