"""When something is worth telling: each rule reads the store and gives verdicts (see :mod:`.incidents`).

- ``exception``: an issue (a failure grouped by cause, see :mod:`wsgimon.recording.fingerprint`) that is
  happening: seen within ``alert_resolve_after_s``, not ignored, not resolved (a resolved issue seen
  again is ``regressed`` and fires as a regression).
- ``error_rate``: more than ``alert_error_rate`` of at least ``alert_min_requests`` requests failed over
  ``alert_window_s``, deployment-wide and per endpoint.
- ``latency_p95``: the p95 over that window above ``alert_p95_ms`` (off unless set).
- ``health``: a user health check fails.
- ``slo``: one verdict per objective, ``page`` (critical) or ``ticket`` (warning) by the SRE workbook's
  multi-window burn rates (see :mod:`wsgimon.stats.slo`).
- ``regression`` and ``new_error``: events of the newest release against the one before it (an
  endpoint got slower or fails more; an issue no release before it had), told once.
- ``checkin``: a job beside the app (see :mod:`wsgimon.stats.checkins`) that is down (missed a run),
  failed, or running too long; its next success resolves it at once.
- ``n_plus_one``: a statement that ran ``n_plus_one_repeats`` times or more in one request (see
  :mod:`wsgimon.stats.dependencies`), told once per statement.

Every process reads the same flushed data over the same window (``at`` is the evaluation's time,
the same for every process in one evaluation interval), so they agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stats.aggregate import Aggregate
from ..stats.checkins import ALERTING, DOWN, FAILED, RUNNING_TOO_LONG, state_of
from ..stats.issues import IGNORED, REGRESSED, RESOLVED
from ..stats.slo import objectives, slo_status
from .state import EVENT_PREFIX, Verdict

if TYPE_CHECKING:
    from ..api.checks import CheckResult
    from ..config import Config
    from ..stores.contract import Store
    from ..stores.records import IssueRow

__all__ = ["checkin_verdicts", "issue_verdict", "query_events", "release_events", "verdicts", "where_seen"]

TRACEBACK_CHARS = 3000
_MAX_ISSUES = 200  # issues evaluated per evaluation (the most recently seen)


def where_seen(issue: IssueRow, limit: int = 10) -> str:
    """ "GET /a, POST /b and 3 more endpoints": the routes one bug broke."""
    names = [f"{method} {endpoint}" for endpoint, method, _n in issue.endpoints]
    if not names:
        return "no endpoint"
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more endpoint{'s' if more > 1 else ''}" if more > 0 else "")


def verdicts(config: Config, store: Store, checks: dict[str, CheckResult], at: float) -> list[Verdict]:
    """Every rule's verdicts at ``at``, deployment-wide (events excluded: see :func:`release_events`)."""
    rules = set(config.alert_rules)
    found: list[Verdict] = []
    window = config.alert_window_s
    if "error_rate" in rules or ("latency_p95" in rules and config.alert_p95_ms is not None):
        overall = store.overall(at - window, at)
        per_endpoint = store.endpoint_totals(at - window, at)
        scopes: list[tuple[str, str | None, str | None, Aggregate]] = [("all endpoints", None, None, overall)]
        scopes += [(f"{m} {e}", e, m, agg) for (e, m), agg in per_endpoint.items() if agg.count]
        for label, endpoint, method, agg in scopes:
            if "error_rate" in rules:
                found.append(_error_rate(config, label, endpoint, method, agg))
            if "latency_p95" in rules and config.alert_p95_ms is not None:
                found.append(_latency(config, label, endpoint, method, agg))
    if "health" in rules:
        for name, result in checks.items():
            failing = result.status == "fail"
            found.append(
                Verdict(
                    f"health|{name}",
                    "health",
                    failing,
                    "critical",
                    f"Health check {name} fails",
                    f"{name}: {result.detail}",
                    {"check": name},
                )
            )
    if "slo" in rules:
        for objective in objectives(config):
            status = slo_status(store, objective, at, config.alert_min_requests)
            burns = ", ".join(f"{w}: {rate:g}×" for w, rate in status.burn_rates.items() if rate is not None)
            left = "unknown" if status.budget_remaining is None else f"{status.budget_remaining:.1%}"
            found.append(
                Verdict(
                    f"slo|{objective.name}",
                    "slo",
                    status.firing is not None,
                    "critical" if status.firing == "page" else "warning",
                    f"SLO {objective.describe()}: burning the error budget"
                    + (f" ({status.firing})" if status.firing else ""),
                    f"Burn rates {burns or 'unknown'}; error budget left over 30 days: {left}.",
                    {"tier": status.firing, "fields": [("burn rates", burns or "-"), ("budget left", left)]},
                )
            )
    if "checkin" in rules:
        found += checkin_verdicts(store, at)
    if "exception" in rules:
        horizon = at - 2 * config.alert_resolve_after_s
        issues = sorted(store.issues(horizon), key=lambda issue: -issue.last_seen)[:_MAX_ISSUES]
        found += [issue_verdict(issue, at, config.alert_resolve_after_s) for issue in issues]
    return found


def issue_verdict(issue: IssueRow, at: float, resolve_after_s: float) -> Verdict:
    """An issue is happening while it was seen within ``resolve_after_s``. One somebody resolved is
    over at once; one they ignore may happen, but is muted (see :mod:`.incidents`)."""
    happening = issue.status != RESOLVED and at - issue.last_seen < resolve_after_s
    where = where_seen(issue)
    regressed = issue.status == REGRESSED
    title = f"{'Regression: ' if regressed else ''}{issue.type} in {where}"
    return Verdict(
        f"issue|{issue.id}",
        "exception",
        happening,
        "critical",
        title,
        f"{issue.type}: {issue.title}. Seen {issue.count} time(s) in all, on {len(issue.endpoints)} endpoint(s)"
        + (f"; it breaks in {issue.culprit}" if issue.culprit else "")
        + (" (it was resolved, and came back)" if regressed else "")
        + ".",
        {
            "issue": issue.id,
            "endpoint": issue.endpoints[0][0] if len(issue.endpoints) == 1 else None,
            "method": issue.endpoints[0][1] if len(issue.endpoints) == 1 else None,
            "endpoints": [f"{m} {e}" for e, m, _n in issue.endpoints],
            "error_type": issue.type,
            "message": issue.message,
            "traceback": None if issue.traceback is None else issue.traceback[-TRACEBACK_CHARS:],
            "count": issue.count,
            "first_seen": issue.first_seen,
            "last_seen": issue.last_seen,
            "regressed": regressed,
            "ignored": issue.status == IGNORED,
        },
        clear_since=0.0 if issue.status == RESOLVED else issue.last_seen,
    )


def _error_rate(config: Config, label: str, endpoint: str | None, method: str | None, agg: Aggregate) -> Verdict:
    rate = agg.error_rate
    firing = agg.count >= config.alert_min_requests and rate > config.alert_error_rate
    minutes = f"{config.alert_window_s / 60:g} min"
    return Verdict(
        f"error_rate|{method or '*'}|{endpoint or '*'}",
        "error_rate",
        firing,
        "critical",
        f"Error rate of {label} above {config.alert_error_rate:.1%}",
        f"{agg.errors} of {agg.count} requests failed ({rate:.1%}) in the last {minutes}.",
        {
            "endpoint": endpoint,
            "method": method,
            "count": agg.errors,
            "fields": [("error rate", f"{rate:.2%}"), ("requests", str(agg.count))],
        },
    )


def _latency(config: Config, label: str, endpoint: str | None, method: str | None, agg: Aggregate) -> Verdict:
    assert config.alert_p95_ms is not None
    p95 = agg.latency_ms()["p95"]
    firing = agg.count >= config.alert_min_requests and p95 is not None and p95 > config.alert_p95_ms
    minutes = f"{config.alert_window_s / 60:g} min"
    return Verdict(
        f"latency_p95|{method or '*'}|{endpoint or '*'}",
        "latency_p95",
        firing,
        "warning",
        f"p95 latency of {label} above {config.alert_p95_ms:g} ms",
        f"p95 {p95} ms over {agg.count} requests in the last {minutes}.",
        {"endpoint": endpoint, "method": method, "fields": [("p95", f"{p95} ms"), ("requests", str(agg.count))]},
    )


def release_events(config: Config, store: Store) -> list[Verdict]:
    """The newest release's regressions and new issues against the release before it: events."""
    from ..stats.releases import summarize

    rules = set(config.alert_rules)
    if not {"regression", "new_error"} & rules:
        return []
    summaries = summarize(store, config, [], 1)
    if not summaries or summaries[0].previous is None:
        return []
    latest = summaries[0]
    release, previous = latest.row.release, latest.previous or ""
    found: list[Verdict] = []
    if "regression" in rules:
        for r in latest.regressions:
            what = r.change
            found.append(
                Verdict(
                    f"{EVENT_PREFIX}regression|{release}|{r.endpoint}|{r.method}|{r.metric}",
                    "regression",
                    True,
                    "warning",
                    f"Release {release} made {r.method} {r.endpoint} worse: {what}",
                    f"{what} against release {previous} "
                    f"({r.requests_before} requests before, {r.requests_after} after).",
                    {
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "release": release,
                        "fields": [("release", release), ("compared with", previous), ("change", what)],
                    },
                    event=True,
                )
            )
    if "new_error" in rules:
        for issue in latest.new_issues:
            count = next((n for name, n, *_ in issue.releases if name == release), issue.count)
            facts: dict[str, Any] = issue_verdict(issue, 0.0, 0.0).facts
            facts["release"] = release
            facts["fields"] = [("release", release), ("compared with", previous), ("issue", issue.id)]
            found.append(
                Verdict(
                    f"{EVENT_PREFIX}new_issue|{release}|{issue.id}",
                    "new_error",
                    True,
                    "warning",
                    f"New in release {release}: {issue.type} in {where_seen(issue, 3)}",
                    f"{issue.type} ({issue.title}) occurred {count} time(s) in release {release}; "
                    "no release before it had this issue.",
                    facts,
                    event=True,
                )
            )
    return found


def query_events(config: Config, store: Store, at: float) -> list[Verdict]:
    """Statements that repeated within a request over the alert window: an N+1 each, an event."""
    from ..stats.dependencies import DB, dependencies_in

    if "n_plus_one" not in config.alert_rules or not config.capture_db:
        return []
    found: list[Verdict] = []
    for row in dependencies_in(store, DB, at - config.alert_window_s, at):
        use = row.use
        if not use.repeated:
            continue
        where = ", ".join(f"{method} {endpoint}" for (endpoint, method) in list(row.endpoints)[:3])
        statement = row.dependency.text
        frame = row.dependency.frame
        found.append(
            Verdict(
                f"{EVENT_PREFIX}n_plus_one|{row.dependency.id}",
                "n_plus_one",
                True,
                "warning",
                f"N+1 queries in {where}",
                f"{statement[:300]} ran {config.n_plus_one_repeats} times or more in each of "
                f"{use.repeated} request(s)" + (f", from {frame}" if frame else "") + ".",
                {
                    "statement": statement,
                    "frame": frame,
                    "requests": use.repeated,
                    "endpoints": [f"{m} {e}" for (e, m) in row.endpoints],
                    "fields": [("statement", statement[:200]), ("called from", frame or "-")],
                },
                event=True,
            )
        )
    return found


_CHECKIN_WORDS = {DOWN: "is down", FAILED: "failed", RUNNING_TOO_LONG: "is running too long"}


def checkin_verdicts(store: Store, at: float) -> list[Verdict]:
    """One verdict per monitor: true while it is down, failed or running too long (one query when
    there is none)."""
    monitors = store.checkin_monitors()
    if not monitors:
        return []
    runs = store.all_checkin_runs(10)
    found = []
    for monitor in monitors:
        state = state_of(monitor, runs.get(monitor.name, []), at)
        firing = state.state in ALERTING
        last = state.last
        schedule = f"{monitor.schedule.describe()}, grace {monitor.grace_s:g} s"
        fields = [("schedule", schedule), ("state", state.state)]
        if last is not None and last.exit_code is not None:
            fields.append(("exit code", str(last.exit_code)))
        found.append(
            Verdict(
                f"checkin|{monitor.name}",
                "checkin",
                firing,
                "warning" if state.state == RUNNING_TOO_LONG else "critical",
                f"Check-in {monitor.name} {_CHECKIN_WORDS.get(state.state, 'is ' + state.state)}",
                f"{monitor.name} ({schedule}): {state.detail or state.state}.",
                {"checkin": monitor.name, "state": state.state, "fields": fields},
                # A success is a clear answer: resolved at once, no hold-down.
                clear_since=None if firing else 0.0,
            )
        )
    return found
