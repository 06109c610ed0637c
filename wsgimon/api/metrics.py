"""``/metrics``: the deployment's numbers in Prometheus's text format (or OpenMetrics when asked).

Every value is read from the store's all-time rows, which every worker and host
writes, so any worker answers the same, and a counter never goes down when a
worker restarts or is killed (its share stays in the store; only what it had
not flushed yet is lost). Histogram buckets are counted exactly at
``metrics_buckets`` when requests are folded. Labels are bounded by
``max_endpoints``, the standard methods and ``<unmatched>`` / ``<other>``.

Database queries and outbound HTTP calls (``Aggregate.spent``) are counted per
endpoint where any was captured; an endpoint that never made one has no such
series. Queries per request is a histogram read from the per-request sketch:
its fixed integer bounds (``_QUERY_BOUNDS``, all under 58) each fall in a
sketch bin of their own at its 1 % accuracy, so the counts are exact too.

The format is written here rather than with ``prometheus_client``: its
registry holds one process's live metrics, while these are a read of the store
(a custom collector would do, at the cost of a dependency for some 100 lines).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._version import __version__
from .access import failed_attempts

if TYPE_CHECKING:
    from ..stats.aggregate import Aggregate
    from ..stats.spent import Spent
    from .context import Context

__all__ = ["OPENMETRICS", "PROMETHEUS", "render"]

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_ALIVE_S = 60.0
#: le of the queries-per-request histogram: integers under 58, where the sketch (1 %) keeps each apart
_QUERY_BOUNDS = (0, 1, 2, 3, 5, 10, 20, 50)


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def render(ctx: Context, openmetrics: bool) -> str:
    ctx.flush_own()
    store = ctx.store
    now = time.time()
    totals = sorted(store.endpoint_totals(None, now).items())
    out = _Writer(openmetrics)
    out.family("wsgimon_http_requests", "counter", "Requests answered, by endpoint, method and status code.")
    for (endpoint, method), agg in totals:
        for status, n in sorted(agg.status_codes.items()):
            out.sample(
                "wsgimon_http_requests_total", {"endpoint": endpoint, "method": method, "status": str(status)}, n
            )
    out.family(
        "wsgimon_http_request_duration_seconds",
        "histogram",
        "Time from the request to the end of its response (the server's close()), by endpoint and method.",
    )
    for (endpoint, method), agg in totals:
        labels = {"endpoint": endpoint, "method": method}
        for le, cumulative in _cumulative(agg, ctx.config.metrics_buckets):
            out.sample("wsgimon_http_request_duration_seconds_bucket", {**labels, "le": le}, cumulative)
        out.sample("wsgimon_http_request_duration_seconds_sum", labels, round(agg.total_ms / 1000.0, 6))
        out.sample("wsgimon_http_request_duration_seconds_count", labels, agg.count)
    out.family("wsgimon_http_exceptions", "counter", "Exceptions raised (also those the framework turned into a 500).")
    for (endpoint, method), agg in totals:
        for name, n in sorted(agg.error_types.items()):
            if not name[:3].isdigit():  # "404 Not Found" is a status, counted above
                out.sample("wsgimon_http_exceptions_total", {"endpoint": endpoint, "method": method, "type": name}, n)
    _time_spent(out, [(key, agg, agg.spent) for key, agg in totals if agg.spent is not None])
    recorder = ctx.recorder
    out.family("wsgimon_records_dropped", "counter", "Requests this process could not record (its queue was full).")
    out.sample("wsgimon_records_dropped_total", {}, recorder.dropped)
    out.family(
        "wsgimon_store_waiting_requests", "gauge", "Requests of this process waiting to be written to the store."
    )
    out.sample("wsgimon_store_waiting_requests", {}, recorder.unsent_requests)
    out.family("wsgimon_processes", "gauge", "Processes that wrote to the store in the last minute.")
    out.sample("wsgimon_processes", {}, len(store.processes(now - _ALIVE_S)))
    out.family("wsgimon_endpoints_overflowed", "counter", "Requests counted under <other> (the endpoint cap).")
    out.sample("wsgimon_endpoints_overflowed_total", {}, store.overflowed())
    alerts = ctx.alerts
    failed = 0 if alerts is None else sum(state["failed"] for state in alerts.status()["channels"].values())
    out.family("wsgimon_alert_deliveries_failed", "counter", "Alert deliveries this process gave up on.")
    out.sample("wsgimon_alert_deliveries_failed_total", {}, failed)
    out.family("wsgimon_auth_failures", "counter", "Failed authentication attempts on the monitoring API here.")
    out.sample("wsgimon_auth_failures_total", {}, failed_attempts())
    if openmetrics:
        out.family("wsgimon_build", "info", "wsgimon's version.")
    else:
        out.family("wsgimon_build_info", "gauge", "wsgimon's version.")
    out.sample("wsgimon_build_info", {"version": __version__}, 1)
    return out.text()


def _time_spent(out: _Writer, captured: list[tuple[tuple[str, str], Aggregate, Spent]]) -> None:
    """Queries and outbound calls per endpoint and method, where any was captured."""
    if not captured:
        return
    counters = (
        ("wsgimon_db_queries", "Database queries run by requests, by endpoint and method.", "queries"),
        ("wsgimon_db_query_seconds", "Time requests spent in database queries.", "db_ms"),
        ("wsgimon_http_calls", "Outbound HTTP calls made by requests (not the requests answered).", "calls"),
        (
            "wsgimon_http_call_seconds",
            "Time requests waited on outbound HTTP calls (to the response's head).",
            "http_ms",
        ),
    )
    for family, help_text, field in counters:
        out.family(family, "counter", help_text)
        for (endpoint, method), _, spent in captured:
            value = getattr(spent, field)
            if field.endswith("_ms"):
                value = round(value / 1000.0, 6)
            out.sample(family + "_total", {"endpoint": endpoint, "method": method}, value)
    out.family(
        "wsgimon_db_queries_per_request",
        "histogram",
        "Database queries per request (a request that made none counts as 0), by endpoint and method.",
    )
    for (endpoint, method), agg, spent in captured:
        labels = {"endpoint": endpoint, "method": method}
        per_request = spent.per_queries  # requests that made at least one query
        for bound in _QUERY_BOUNDS:
            at_most = agg.count - per_request.count_above(bound)
            out.sample("wsgimon_db_queries_per_request_bucket", {**labels, "le": repr(float(bound))}, at_most)
        out.sample("wsgimon_db_queries_per_request_bucket", {**labels, "le": "+Inf"}, agg.count)
        out.sample("wsgimon_db_queries_per_request_sum", labels, spent.queries)
        out.sample("wsgimon_db_queries_per_request_count", labels, agg.count)


def _cumulative(agg: Aggregate, bounds: tuple[float, ...]) -> list[tuple[str, int]]:
    """(le, requests at or below it) for every configured bound (and any older one still stored),
    ending with +Inf = every request counted."""
    counts = {float(le): n for le, n in agg.histogram.items() if le != "+Inf"}
    running, out = 0, []
    for bound in sorted(set(bounds) | set(counts)):
        running += counts.get(bound, 0)
        out.append((repr(float(bound)), running))
    out.append(("+Inf", agg.count))
    return out


class _Writer:
    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        # Prometheus's text format names a counter's family with _total; OpenMetrics without.
        shown = name if self.openmetrics or kind != "counter" else name + "_total"
        self.lines.append(f"# HELP {shown} {help_text}")
        self.lines.append(f"# TYPE {shown} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        if self.openmetrics:
            self.lines.append("# EOF")
        return "\n".join(self.lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
