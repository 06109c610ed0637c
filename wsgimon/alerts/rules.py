"""When something is worth telling: the alert rules, as pure functions of what the store says.

- ``exception``: a failure (an exception, or a 5xx) per issue (see :mod:`wsgimon.stats.fingerprint`),
  from each flush, naming every endpoint it was seen on; the store's cooldown makes it one alert
  per issue per ``alert_cooldown_s``. A resolved issue seen again is told as a regression.
- ``error_rate``: more than ``alert_error_rate`` of at least ``alert_min_requests``
  requests failed in the last ``alert_window_s``, deployment-wide and per endpoint.
- ``latency_p95``: the p95 over that window above ``alert_p95_ms`` (off unless set).
- ``health``: a user health check fails.
- ``slo``: multi-window burn rates (see :mod:`wsgimon.slo`), page and ticket.

Threshold, health and SLO rules give conditions (firing or not); the engine
tells only when the store says the state changed, so each start and each end
(the "resolved" message) is told once per deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aggregate import Aggregate
from ..slo import SLOStatus, objectives, slo_status
from .model import Alert
from .webhook import iso_utc

if TYPE_CHECKING:
    from ..config import Config
    from ..health import CheckResult
    from ..stores.base import ErrorSample, IssueRow, Store

__all__ = ["Condition", "conditions", "issue_alert", "is_failure", "release_alerts"]

_TRACEBACK_CHARS = 3000


@dataclass(frozen=True)
class Condition:
    """A rule's verdict now: ``alert`` describes it either way (firing, or what it was about)."""

    key: str
    firing: bool
    alert: Alert


def is_failure(sample: ErrorSample) -> bool:
    """An exception, or a 5xx: what the exception rule tells (a 404 is the client's business)."""
    if not sample.failed:
        return False
    code = sample.type[:3]
    return not (code.isdigit() and int(code) < 500)


def where_seen(issue: IssueRow, limit: int = 10) -> str:
    """ "GET /a, POST /b and 3 more endpoints": the routes one bug broke."""
    names = [f"{method} {endpoint}" for endpoint, method, _n in issue.endpoints]
    if not names:
        return "no endpoint"
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more endpoint{'s' if more > 1 else ''}" if more > 0 else "")


def issue_key(issue_id: str) -> str:
    return f"issue|{issue_id}"


def issue_alert(
    issue: IssueRow, count: int, suppressed: int, dashboard_url: str | None, *, regressed: bool = False
) -> Alert:
    """One issue: what broke, where (every endpoint it was seen on), how often in this flush."""
    where = where_seen(issue)
    times = "once" if count == 1 else f"{count} times"
    if regressed:
        when = "" if issue.resolved_at is None else " after it was resolved"
        title = f"Regression: {issue.type} is back{when}"
        summary = f"{issue.type} ({issue.title}) was resolved and happened again, {times}, in {where}."
    else:
        title = f"{issue.type} in {where}"
        summary = f"{issue.type} raised {times} in {where}."
    if issue.culprit:
        summary += f" It breaks in {issue.culprit}."
    if suppressed:
        summary += f" {suppressed} more occurrence(s) were not alerted during the cooldown."
    first_endpoint = issue.endpoints[0] if issue.endpoints else None
    return Alert(
        key=issue_key(issue.id),
        rule="exception",
        severity="critical",
        state="firing",
        title=title,
        summary=summary,
        opened_at=issue.first_seen,
        endpoint=None if first_endpoint is None else first_endpoint[0],
        method=None if first_endpoint is None else first_endpoint[1],
        error_type=issue.type,
        message=issue.message,
        traceback=None if issue.traceback is None else issue.traceback[-_TRACEBACK_CHARS:],
        count=count,
        suppressed=suppressed,
        first_seen=issue.first_seen,
        last_seen=issue.last_seen,
        fields=(
            ("issue", issue.id),
            ("occurrences in all", str(issue.count)),
            ("endpoints", str(len(issue.endpoints))),
        ),
        dashboard_url=dashboard_url,
    )


def followup_alert(key: str, suppressed: int, now: float, dashboard_url: str | None, issue: IssueRow | None) -> Alert:
    what = "an error" if issue is None else issue.type
    where = "" if issue is None else f" in {where_seen(issue, 3)}"
    return Alert(
        key=key,
        rule="exception",
        severity="warning",
        state="firing",
        title=f"{what}{where}: {suppressed} more",
        summary=f"{suppressed} more occurrence(s) of {what}{where} during the cooldown."
        + ("" if issue is None else f" Last seen {iso_utc(issue.last_seen)}."),
        opened_at=now,
        error_type=None if issue is None else issue.type,
        count=suppressed,
        suppressed=suppressed,
        last_seen=None if issue is None else issue.last_seen,
        dashboard_url=dashboard_url,
    )


def conditions(
    config: Config, store: Store, checks: dict[str, CheckResult], now: float, dashboard_url: str | None
) -> list[Condition]:
    """Every threshold, health and SLO condition now, deployment-wide."""
    rules = set(config.alert_rules)
    found: list[Condition] = []
    window = config.alert_window_s
    if "error_rate" in rules or ("latency_p95" in rules and config.alert_p95_ms is not None):
        overall = store.overall(now - window, now)
        per_endpoint = store.endpoint_totals(now - window, now)
        scopes: list[tuple[str, str | None, str | None, Aggregate]] = [("all endpoints", None, None, overall)]
        scopes += [(f"{m} {e}", e, m, agg) for (e, m), agg in per_endpoint.items() if agg.count]
        for label, endpoint, method, agg in scopes:
            if "error_rate" in rules:
                found.append(_error_rate(config, label, endpoint, method, agg, now, dashboard_url))
            if "latency_p95" in rules and config.alert_p95_ms is not None:
                found.append(_latency(config, label, endpoint, method, agg, now, dashboard_url))
    if "health" in rules:
        for name, result in checks.items():
            failing = result.status == "fail"
            found.append(
                Condition(
                    f"health|{name}",
                    failing,
                    Alert(
                        key=f"health|{name}",
                        rule="health",
                        severity="critical",
                        state="firing" if failing else "resolved",
                        title=f"Health check {name} {'fails' if failing else 'passes again'}",
                        summary=f"{name}: {result.detail}",
                        opened_at=now,
                        dashboard_url=dashboard_url,
                    ),
                )
            )
    if "slo" in rules:
        for objective in objectives(config):
            status = slo_status(store, objective, now, config.alert_min_requests)
            found += [_slo(status, severity, now, dashboard_url) for severity in ("page", "ticket")]
    return found


def _slo(status: SLOStatus, severity: str, now: float, url: str | None) -> Condition:
    objective = status.objective
    key = f"slo|{objective.name}|{severity}"
    firing = status.firing == severity
    burns = ", ".join(f"{window}: {rate:g}" for window, rate in status.burn_rates.items() if rate is not None)
    left = status.budget_remaining
    budget = "unknown" if left is None else f"{left:.1%}"
    return Condition(
        key,
        firing,
        Alert(
            key=key,
            rule=f"slo_{severity}",
            severity="critical" if severity == "page" else "warning",
            state="firing" if firing else "resolved",
            title=f"SLO ({objective.describe()}): "
            + ("burning the error budget fast" if firing else "burn rate back to normal"),
            summary=f"Burn rates {burns or 'unknown'}; error budget left over 30 days: {budget}.",
            opened_at=now,
            fields=(("burn rates", burns or "-"), ("budget left", budget)),
            dashboard_url=url,
        ),
    )


def _error_rate(
    config: Config, label: str, endpoint: str | None, method: str | None, agg: Aggregate, now: float, url: str | None
) -> Condition:
    key = f"error_rate|{method or '*'}|{endpoint or '*'}"
    rate = agg.error_rate
    firing = agg.count >= config.alert_min_requests and rate > config.alert_error_rate
    minutes = f"{config.alert_window_s / 60:g} min"
    return Condition(
        key,
        firing,
        Alert(
            key=key,
            rule="error_rate",
            severity="critical",
            state="firing" if firing else "resolved",
            title=f"Error rate of {label} {'above' if firing else 'back under'} {config.alert_error_rate:.1%}",
            summary=f"{agg.errors} of {agg.count} requests failed ({rate:.1%}) in the last {minutes}.",
            opened_at=now,
            endpoint=endpoint,
            method=method,
            count=agg.errors,
            fields=(("error rate", f"{rate:.2%}"), ("requests", str(agg.count))),
            dashboard_url=url,
        ),
    )


def _latency(
    config: Config, label: str, endpoint: str | None, method: str | None, agg: Aggregate, now: float, url: str | None
) -> Condition:
    assert config.alert_p95_ms is not None
    key = f"latency_p95|{method or '*'}|{endpoint or '*'}"
    p95 = agg.latency_ms()["p95"]
    firing = agg.count >= config.alert_min_requests and p95 is not None and p95 > config.alert_p95_ms
    minutes = f"{config.alert_window_s / 60:g} min"
    return Condition(
        key,
        firing,
        Alert(
            key=key,
            rule="latency_p95",
            severity="warning",
            state="firing" if firing else "resolved",
            title=f"p95 latency of {label} {'above' if firing else 'back under'} {config.alert_p95_ms:g} ms",
            summary=f"p95 {p95} ms over {agg.count} requests in the last {minutes}.",
            opened_at=now,
            endpoint=endpoint,
            method=method,
            fields=(("p95", f"{p95} ms"), ("requests", str(agg.count))),
            dashboard_url=url,
        ),
    )


def release_alerts(config: Config, store: Store, now: float, dashboard_url: str | None) -> list[Alert]:
    """The newest release's regressions and new error types against the release before it.

    Each is an event, told once per release (the engine claims its key for good), not a
    condition that resolves.
    """
    from ..deploys import summarize

    rules = set(config.alert_rules)
    if not {"regression", "new_error"} & rules:
        return []
    summaries = summarize(store, config, [], 1)
    if not summaries or summaries[0].previous is None:
        return []
    latest = summaries[0]
    release, previous = latest.row.release, summaries[0].previous or ""
    found: list[Alert] = []
    if "regression" in rules:
        for r in latest.regressions:
            if r.metric == "p95":
                what = f"p95 {r.before:.1f} ms → {r.after:.1f} ms"
            else:
                what = f"error rate {r.before * 100:.2f} % → {r.after * 100:.2f} %"
            found.append(
                Alert(
                    key=f"regression|{release}|{r.endpoint}|{r.method}|{r.metric}",
                    rule="regression",
                    severity="warning",
                    state="firing",
                    title=f"Release {release} made {r.method} {r.endpoint} worse",
                    summary=f"{what} against release {previous} "
                    f"({r.requests_before} requests before, {r.requests_after} after).",
                    opened_at=latest.row.first_seen,
                    endpoint=r.endpoint,
                    method=r.method,
                    fields=(("release", release), ("compared with", previous), ("change", what)),
                    dashboard_url=dashboard_url,
                )
            )
    if "new_error" in rules:
        for issue in latest.new_issues:
            count = next((n for name, n, *_ in issue.releases if name == release), issue.count)
            found.append(
                Alert(
                    key=f"new_issue|{release}|{issue.id}",
                    rule="new_error",
                    severity="warning",
                    state="firing",
                    title=f"New in release {release}: {issue.type}",
                    summary=f"{issue.type} ({issue.title}) occurred {count} time(s) in release {release}, in "
                    f"{where_seen(issue)}; no release before it had this issue.",
                    opened_at=latest.row.first_seen,
                    endpoint=issue.endpoints[0][0] if issue.endpoints else None,
                    method=issue.endpoints[0][1] if issue.endpoints else None,
                    error_type=issue.type,
                    message=issue.message,
                    traceback=None if issue.traceback is None else issue.traceback[-_TRACEBACK_CHARS:],
                    count=count,
                    first_seen=issue.first_seen,
                    last_seen=issue.last_seen,
                    fields=(("release", release), ("compared with", previous), ("issue", issue.id)),
                    dashboard_url=dashboard_url,
                )
            )
    return found
