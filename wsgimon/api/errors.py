"""``/errors``: error types per endpoint, counted in the window, with the latest message and traceback."""

from __future__ import annotations

from typing import Any

from ..stores.records import ALL
from .context import Context
from .params import Query
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]

PARAMETERS = {"limit", "window", "release"}
MAX_LIMIT = 10_000


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    limit = query.integer("limit", default=MAX_LIMIT, maximum=MAX_LIMIT)
    window = query.window()
    now = ctx.now()
    ctx.flush_own()
    store = ctx.store
    release = query.release([row.release for row in store.releases()]) if "release" in query else None
    samples = store.error_samples()
    rows = []
    if release is None:
        counted = store.error_totals(window.since(now), now)
    else:
        counted = {
            key: (dict(agg.error_types), agg.last_seen)
            for key, agg in store.release_totals(release, window.since(now), now).items()
            if key != ALL and agg.error_types
        }
    # Counts in the window come from the buckets; message and traceback from the latest sample.
    for (endpoint, method), (error_types, last_seen) in counted.items():
        for error_type, count in error_types.items():
            sample = samples.get((error_type, endpoint, method))
            rows.append(
                {
                    "type": error_type,
                    "endpoint": endpoint,
                    "method": method,
                    "count": count,
                    "first_seen": iso(sample.first_seen) if sample else None,
                    "last_seen": iso(sample.last_seen if sample else last_seen),
                    "message": sample.message if sample else error_type,
                    "traceback": sample.traceback if sample else None,
                }
            )
    rows.sort(key=lambda row: (row["last_seen"] or "", row["count"]), reverse=True)
    return {"window": window.label, **({} if release is None else {"release": release}), "errors": rows[:limit]}
