"""``/health``: the application's health, from built-in thresholds and the user's checks.

Answered within a fixed budget whatever the store does: a load balancer that
waits too long takes a healthy host out. What the store cannot say in time is
reported as a degraded store, not waited for.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from .._version import __version__
from ..internal_errors import internal_error_count
from ..recording.process_info import pid_exists, process_info
from ..stats.aggregate import Aggregate
from ..stores.contract import StoreUnavailable
from ..stores.records import ProcessRow
from .access import failed_attempts
from .checks import DEGRADED, FAIL, OK, CheckResult, overall_status
from .context import HEALTH_FLUSH_S, Context
from .params import Query
from .values import iso

__all__ = ["BUDGET_S", "PARAMETERS", "answer", "status_only"]

PARAMETERS: set[str] = set()
BUDGET_S = 0.06  # all the store reads of one health answer
ALIVE_S = 60.0  # a process that flushed this recently is alive (it flushes at least every 10 s)
MIN_REQUESTS_FOR_THRESHOLDS = 20
_HOST = socket.gethostname()


def answer(ctx: Context, query: Query) -> tuple[dict[str, Any], int]:
    ctx.flush_own(HEALTH_FLUSH_S)
    checks: dict[str, CheckResult] = {}
    checks.update(_builtin_checks(ctx))
    checks.update(ctx.health.run_all())
    status = overall_status(checks)
    now = time.time()
    processes = alive_processes(ctx, now)
    body = {
        "status": status,
        "checks": {name: result.to_json() for name, result in checks.items()},
        "uptime_s": round(now - ctx.deployment_started(), 3),
        "version": __version__,
        "process": {**process_info(), "uptime_s": round(now - ctx.recorder.started_at, 3)},
        "deployment": {
            "processes": [
                {
                    "host": p.host,
                    "pid": p.pid,
                    "started": iso(p.started),
                    "last_flush": iso(p.last_flush),
                    "requests": p.requests,
                    "in_flight": p.in_flight,
                }
                for p in processes
            ],
        },
    }
    return body, 503 if status == FAIL else 200


def status_only(ctx: Context, query: Query) -> tuple[dict[str, Any], int]:
    """What ``health_path`` tells anyone, load balancers included: the status and nothing else."""
    body, code = answer(ctx, query)
    return {"status": body["status"]}, code


def alive_processes(ctx: Context, now: float) -> list[ProcessRow]:
    """The deployment's processes now (none when the store cannot be read)."""
    try:
        return _alive(ctx.store.processes(now - ALIVE_S))
    except StoreUnavailable:
        return []


def is_this_process(row: ProcessRow) -> bool:
    return row.host == _HOST and row.pid == os.getpid()


def _alive(processes: list[ProcessRow]) -> list[ProcessRow]:
    """Processes of this host that are gone (killed, no clean exit) are dropped at once, not after ALIVE_S."""
    return [p for p in processes if p.host != _HOST or pid_exists(p.pid)]


def _builtin_checks(ctx: Context) -> dict[str, CheckResult]:
    config = ctx.config
    store = ctx.store
    recorder = ctx.recorder
    results: dict[str, CheckResult] = {}
    healthy, detail = store.health()
    if recorder.store_error is not None:
        healthy = False
        detail = f"writes failing ({recorder.store_error})"
    if not healthy and recorder.unsent_requests:
        detail += f"; {recorder.unsent_requests} requests kept in memory and retried"
    results["store"] = CheckResult(OK if healthy else DEGRADED, detail, 0.0)
    now = time.time()
    window = f"last {config.health_window_s:g} s"
    try:
        recent = store.overall(now - config.health_window_s, now)
    except StoreUnavailable as exc:
        results["store"] = CheckResult(DEGRADED, f"{detail}; reads failing: {exc}", 0.0)
        recent = Aggregate()
    error_rate = recent.error_rate
    if recent.count >= MIN_REQUESTS_FOR_THRESHOLDS and error_rate > config.degraded_error_rate:
        results["error_rate"] = CheckResult(
            DEGRADED,
            f"{error_rate:.1%} of {recent.count} requests failed in the {window} "
            f"(threshold {config.degraded_error_rate:.1%})",
            0.0,
        )
    else:
        results["error_rate"] = CheckResult(OK, f"{error_rate:.1%} of {recent.count} requests in the {window}", 0.0)
    if config.degraded_p95_ms is not None:
        p95 = recent.latency_ms()["p95"]
        slow = recent.count >= MIN_REQUESTS_FOR_THRESHOLDS and p95 is not None and p95 > config.degraded_p95_ms
        detail = f"p95 {p95} ms in the {window} (threshold {config.degraded_p95_ms:g} ms)"
        results["latency_p95"] = CheckResult(DEGRADED if slow else OK, detail, 0.0)
    problems = []
    if recorder.dropped:
        problems.append(f"{recorder.dropped} records dropped (flusher behind)")
    if recorder.lost_to_store:
        problems.append(f"{recorder.lost_to_store} requests lost while the store was unavailable")
    errors = internal_error_count() - ctx.internal_errors_before
    if errors:
        problems.append(f"{errors} internal errors logged")
    # Reported, but never degrading: anyone could otherwise degrade health with bad tokens.
    notes = [f"{failed} failed authentication attempts on the monitoring API"] if (failed := failed_attempts()) else []
    detail = "; ".join(problems + notes) or "ok"
    results["wsgimon"] = CheckResult(DEGRADED if problems else OK, detail, 0.0)
    results["in_flight"] = _in_flight_check(ctx)
    alerts = ctx.alerts
    if alerts is not None:
        results["alerts"] = _alerts_check(alerts.status())
        results["incidents"] = _incidents_check(ctx)
    if ctx.report is not None:
        results["report"] = _report_check(ctx)
    return results


def _in_flight_check(ctx: Context) -> CheckResult:
    """A request running longer than stuck_request_s, in any process, degrades health, named, while it runs."""
    from ..recording.sampler import sampling_unavailable

    now = time.perf_counter()
    running = ctx.in_flight.requests()
    limit = ctx.config.stuck_request_s
    stuck = sorted((r for r in running if now - r.started > limit), key=lambda r: r.started)
    unavailable = sampling_unavailable()
    note = f"; stack sampling unavailable: {unavailable}" if unavailable else ""
    if stuck:
        request = stuck[0]
        age = now - request.started
        what = request.description
        return CheckResult(
            DEGRADED,
            f"{len(stuck)} of {len(running)} requests in flight for more than {limit:g} s; the oldest, {what}, "
            f"for {age:.0f} s{note}",
            0.0,
        )
    wall = time.time()
    others = [row for row in alive_processes(ctx, wall) if not is_this_process(row)]
    elsewhere = sum(row.in_flight for row in others)
    for row in sorted(others, key=lambda row: row.oldest_in_flight or wall):
        if row.in_flight and row.oldest_in_flight is not None and wall - row.oldest_in_flight > limit:
            return CheckResult(
                DEGRADED,
                f"a request in flight for more than {limit:g} s in process {row.pid} on {row.host}: "
                f"{row.oldest_request or '?'}, for {wall - row.oldest_in_flight:.0f} s{note}",
                0.0,
            )
    return CheckResult(
        OK, f"{len(running)} in flight in this process, {len(running) + elsewhere} in the deployment{note}", 0.0
    )


def _report_check(ctx: Context) -> CheckResult:
    """The latest period's report: a failed one degrades health until a later one is sent."""
    try:
        runs = ctx.store.report_runs(1)
    except StoreUnavailable:
        return CheckResult(OK, "report state unknown (store unavailable)", 0.0)
    if not runs:
        return CheckResult(OK, "no report sent yet", 0.0)
    key, state, when, detail = runs[0]
    if state == "failed":
        return CheckResult(DEGRADED, f"the report for {key} failed: {detail}", 0.0)
    return CheckResult(OK, f"the report for {key}: {state} at {iso(when)}", 0.0)


def _incidents_check(ctx: Context) -> CheckResult:
    """An open incident (something firing, told or about to be) is not "ok"."""
    try:
        state = ctx.store.alerting_view(time.time())
    except StoreUnavailable:
        return CheckResult(OK, "incidents unknown (store unavailable)", 0.0)
    open_ones = sorted((i for i in state.incidents.values() if i.status == "open"), key=lambda i: i.id)
    if not open_ones:
        return CheckResult(OK, "no open incident", 0.0)
    named = "; ".join(f"#{i.id} since {iso(i.opened)}" + (f": {i.title}" if i.title else "") for i in open_ones[:3])
    return CheckResult(DEGRADED, f"{len(open_ones)} open incident(s): {named}", 0.0)


def _alerts_check(status: dict[str, Any]) -> CheckResult:
    """Queue depth, drops and each channel's state: a stopped channel (webhook gone), or one failing for
    minutes, degrades health."""
    parts = [f"queue {status['queue']}"]
    if status["dropped"]:
        parts.append(f"{status['dropped']} dropped (queue full)")
    degraded = bool(status["dropped"])
    for name, channel in status["channels"].items():
        if channel["stopped"]:
            degraded = True
            parts.append(f"{name} stopped: {channel['stopped']}")
        elif name in status["outages"]:
            degraded = True
            parts.append(f"{name} failing since {iso(channel['failing_since'])}: {channel['last_error']}")
        elif channel["last_error"]:
            parts.append(f"{name}: {channel['delivered']} delivered, last error: {channel['last_error']}")
        else:
            parts.append(f"{name}: {channel['delivered']} delivered")
    return CheckResult(DEGRADED if degraded else OK, "; ".join(parts), 0.0)
