"""When something is worth telling: the alert rules, as pure functions of what the store says.

- ``exception``: a failure (an exception, or a 5xx) per error type and endpoint, from each
  flush; the store's cooldown makes it one alert per key per ``alert_cooldown_s``.
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

if TYPE_CHECKING:
    from ..config import Config
    from ..health import CheckResult
    from ..stores.base import ErrorSample, Store

__all__ = ["Condition", "conditions", "exception_alert", "is_failure", "release_alerts"]

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


def exception_alert(sample: ErrorSample, suppressed: int, dashboard_url: str | None) -> Alert:
    where = f"{sample.method} {sample.endpoint}"
    times = "once" if sample.count == 1 else f"{sample.count} times"
    summary = f"{sample.type} raised {times} in {where}."
    if suppressed:
        summary += f" {suppressed} more occurrence(s) were not alerted during the cooldown."
    return Alert(
        key=f"exception|{sample.type}|{sample.endpoint}|{sample.method}",
        rule="exception",
        severity="critical",
        state="firing",
        title=f"{sample.type} in {where}",
        summary=summary,
        opened_at=sample.first_seen,
        endpoint=sample.endpoint,
        method=sample.method,
        error_type=sample.type,
        message=sample.message,
        traceback=None if sample.traceback is None else sample.traceback[-_TRACEBACK_CHARS:],
        count=sample.count,
        suppressed=suppressed,
        first_seen=sample.first_seen,
        last_seen=sample.last_seen,
        dashboard_url=dashboard_url,
    )


def followup_alert(key: str, suppressed: int, now: float, dashboard_url: str | None) -> Alert:
    _rule, error_type, endpoint, method = (key.split("|", 3) + ["", "", ""])[:4]
    return Alert(
        key=key,
        rule="exception",
        severity="warning",
        state="firing",
        title=f"{error_type} in {method} {endpoint}: {suppressed} more",
        summary=f"{suppressed} more occurrence(s) of {error_type} in {method} {endpoint} during the cooldown.",
        opened_at=now,
        endpoint=endpoint or None,
        method=method or None,
        error_type=error_type or None,
        count=suppressed,
        suppressed=suppressed,
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
        for error_type in latest.new_error_types:
            count = latest.overall.error_types.get(error_type, 0)
            found.append(
                Alert(
                    key=f"new_error|{release}|{error_type}",
                    rule="new_error",
                    severity="warning",
                    state="firing",
                    title=f"New in release {release}: {error_type}",
                    summary=f"{error_type} occurred {count} time(s) in release {release}, never in the releases "
                    f"before it.",
                    opened_at=latest.row.first_seen,
                    error_type=error_type,
                    count=count,
                    fields=(("release", release), ("compared with", previous)),
                    dashboard_url=dashboard_url,
                )
            )
    return found
