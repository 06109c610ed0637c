"""``/timeseries``: requests, errors and latency per step over a window, empty steps as zeros."""

from __future__ import annotations

from typing import Any

from ..stats.time_windows import HOUR, parse_duration
from ..stores.records import ALL
from .context import Context
from .params import BadRequest, Query
from .values import iso

__all__ = ["PARAMETERS", "STEPS", "answer"]

PARAMETERS = {"window", "step", "endpoint", "method", "release"}
MAX_POINTS = 1500
STEPS = {
    60: "1m",
    300: "5m",
    600: "10m",
    900: "15m",
    1800: "30m",
    3600: "1h",
    21600: "6h",
    43200: "12h",
    86400: "1d",
}


def default_step(span_s: float, minute_retention_s: float) -> str:
    """At most 200 points, from buckets the store still has."""
    for seconds, label in STEPS.items():
        if span_s / seconds <= 200 and (seconds >= HOUR or span_s <= minute_retention_s):
            return label
    return "1d"


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    window = query.window()
    now = ctx.now()
    store = ctx.store
    since = window.since(now)
    if since is None:
        since = min(ctx.deployment_started(), now - 60)
    step_text = query.text("step", max_chars=8) or default_step(now - since, store.minute_retention_s)
    try:
        step = parse_duration(step_text, "step")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if step not in STEPS:
        raise BadRequest(f"step must be one of {', '.join(STEPS.values())}, got {step_text!r}")
    if step < HOUR and since < now - store.minute_retention_s:
        raise BadRequest(
            f"step {step_text} needs minute data, kept for {store.minute_retention_s / 3600:g} h; "
            "use a shorter window or a step of 1h or more"
        )
    if (now - since) / step > MAX_POINTS:
        raise BadRequest(f"window/step gives more than {MAX_POINTS} points; use a larger step")
    endpoint = query.text("endpoint")
    method = query.text("method", max_chars=32)
    if (endpoint is None) != (method is None):
        raise BadRequest("endpoint and method must be given together")
    key = ALL if endpoint is None or method is None else (endpoint, method)
    known = store.releases()
    release = query.release([row.release for row in known]) if "release" in query else None
    if release is not None and step % HOUR:
        raise BadRequest("with release=, step must be 1h or more (releases are kept per hour)")
    ctx.flush_own()
    points = []
    series = (
        store.series(since, now, step, key) if release is None else store.release_series(release, since, now, step, key)
    )
    for start, agg in series:
        latency = agg.latency_ms()
        points.append(
            {
                "time": iso(start),
                "requests": agg.count,
                "errors": agg.errors,
                "client_errors": agg.client_errors,
                "avg": latency["avg"],
                "p50": latency["p50"],
                "p95": latency["p95"],
                "p99": latency["p99"],
            }
        )
    # Deploys in the window, for charts to mark.
    started = [{"release": row.release, "first_seen": iso(row.first_seen)} for row in known if row.first_seen >= since]
    return {
        "window": window.label,
        "step_s": step,
        **({} if release is None else {"release": release}),
        "points": points,
        "releases": sorted(started, key=lambda row: row["first_seen"]),
    }
