"""What ``/queries`` and ``/outbound`` share: a window, an endpoint, a release, and dependencies ranked by time."""

from __future__ import annotations

from typing import Any

from ..stats.dependencies import dependencies_in
from .context import Context
from .params import Query
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "dependency_answer"]

PARAMETERS = {"window", "endpoint", "method", "release", "limit"}
MAX_LIMIT = 1000


def dependency_answer(ctx: Context, query: Query, kind: str, key: str) -> dict[str, Any]:
    window = query.window()
    endpoint = query.text("endpoint")
    method = query.text("method", max_chars=32)
    limit = query.integer("limit", default=50, maximum=MAX_LIMIT)
    now = ctx.now()
    ctx.flush_own()
    release = query.release([row.release for row in ctx.store.releases()]) if "release" in query else None
    found = dependencies_in(ctx.store, kind, window.since(now), now, endpoint=endpoint, method=method, release=release)
    rows = []
    for row in found[:limit]:
        shown = row.to_json()
        shown["first_seen"] = iso(shown["first_seen"])
        shown["last_seen"] = iso(shown["last_seen"])
        rows.append(shown)
    answer: dict[str, Any] = {"window": window.label, key: rows}
    if release is not None:
        answer["release"] = release
    if endpoint is not None:
        answer["endpoint"] = endpoint
    return answer
