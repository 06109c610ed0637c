"""The weekly (or daily) report: what a team lead wants to read on Monday morning.

:func:`build_report` reads one period from the store (every worker's and
host's numbers) and the period before it; :func:`render_report` turns it into
the two parts of an e-mail (plain text, and HTML with inline styles and bars
drawn with tables: no image, no external URL) and :func:`report_email` into
the message. Every number is the period's: the SLOs' error budget is the one
the period's requests allowed, and a period without a request says so instead
of showing numbers. Failures are told as issues (grouped by cause): the ones
new in the period, the ones that came back after being resolved, and the
period's most frequent. Alerts are told as incidents: how many opened, the
longest, how long they took to resolve, and what was silenced. Where the time
went (the database, outbound calls, the app's own code, the statements and
targets that took most of it, N+1s flagged) is told only when queries or calls
were captured in the period. Check-ins (the jobs beside the app) are told per
monitor: its runs that succeeded, failed and were missed, and its state at the
end of the period; only when a monitor exists. Sending once
per period across a deployment is :mod:`wsgimon.reporting.schedule`'s job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from ..alerts.text import duration_words
from ..rendering import templates
from ..secret_text import without_secrets
from ..stats.aggregate import Aggregate
from ..stats.slo import Objective, objectives
from ..stats.time_windows import DAY
from .period import Period, period_before
from .sections import (
    PeriodCheckIns,
    PeriodIncidents,
    PeriodIssues,
    PeriodTimeSpent,
    checkins_in,
    incidents_in,
    issues_in,
    releases_in,
    time_spent_in,
    totals_of,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..stores.contract import Store

__all__ = [
    "Period",
    "PeriodCheckIns",
    "PeriodIncidents",
    "PeriodIssues",
    "PeriodTimeSpent",
    "Report",
    "build_report",
    "period_before",
    "render_report",
    "report_email",
]

_TOP = 5
#: new issues and regressions listed; more are counted, not listed
_MAX_LISTED = 10
#: endpoints named per issue; more are counted ("+2 more")
_ENDPOINTS_NAMED = 3
#: a write may bring occurrences late (a process's spool): an issue last seen this long before
#: the period may still have regressed in it
_LATE_S = DAY
_MIN_REQUESTS_FOR_SLOWEST = 20


@dataclass
class Report:
    period: Period
    totals: dict[str, Any]
    previous: dict[str, Any]
    changes: dict[str, float | None]
    busiest: list[dict[str, Any]]
    slowest: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    error_types: list[dict[str, Any]]
    days: list[dict[str, Any]]
    slo: list[dict[str, Any]] = field(default_factory=list)
    dashboard_url: str | None = None
    #: releases first seen in the period, oldest first, with what each changed against the one before
    releases: list[dict[str, Any]] = field(default_factory=list)
    #: failures grouped by cause: new in the period, regressed in it, and its most frequent
    issues: PeriodIssues = field(default_factory=PeriodIssues)
    incidents: PeriodIncidents = field(default_factory=PeriodIncidents)
    #: where the requests' time went; None when no query or call was captured (no section)
    time_spent: PeriodTimeSpent | None = None
    #: the jobs beside the app, per monitor; None when there is none (no section)
    checkins: PeriodCheckIns | None = None
    generated_at: float = field(default_factory=time.time)

    @property
    def traffic(self) -> bool:
        """Whether the period had any request: without one there is no availability, latency nor SLO."""
        return bool(self.totals["requests"])


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return round(now / before - 1, 4)


def build_report(store: Store, period: Period, config: Config, now: float | None = None) -> Report:
    """The period's numbers from the store, with the previous period's to compare."""
    start, end = period.start.timestamp(), period.end.timestamp()
    # Stored buckets start at whole seconds: [start, end - 1] covers exactly [start, end).
    overall = store.overall(start, end - 1)
    totals = totals_of(overall)
    previous_period = period.previous()
    previous = totals_of(store.overall(previous_period.start.timestamp(), start - 1))
    rows = [
        {"endpoint": e, "method": m, **totals_of(agg)} for (e, m), agg in store.endpoint_totals(start, end - 1).items()
    ]
    busiest = sorted(rows, key=lambda r: (-r["requests"], r["endpoint"]))[:_TOP]
    slowest = sorted(
        (r for r in rows if r["requests"] >= _MIN_REQUESTS_FOR_SLOWEST and r["p95"] is not None),
        key=lambda r: (-r["p95"], r["endpoint"]),
    )[:_TOP]
    failing = sorted((r for r in rows if r["errors"]), key=lambda r: (-r["errors"], r["endpoint"]))[:_TOP]
    samples = store.error_samples()
    types: list[dict[str, Any]] = []
    for (endpoint, method), (counts, last_seen) in store.error_totals(start, end - 1).items():
        for error_type, count in counts.items():
            sample = samples.get((error_type, endpoint, method))
            code = error_type[:3]
            types.append(
                {
                    "type": error_type,
                    "endpoint": endpoint,
                    "method": method,
                    "count": count,
                    "client": code.isdigit() and int(code) < 500,
                    "first_seen": sample.first_seen if sample else None,
                    "last_seen": sample.last_seen if sample else last_seen,
                    "message": without_secrets(sample.message) if sample else error_type,
                }
            )
    types.sort(key=lambda t: (t["client"], -t["count"], t["type"]))
    zone = period.start.tzinfo
    per_day: dict[date, list[int]] = {day: [0, 0] for day in period.days()}
    moment = time.time() if now is None else now
    # Hours give the zone's own days; past the hours' retention, UTC days are what is left.
    step = 3600 if start >= moment - store.hour_retention_s else 86400
    for slot, agg in store.series(start, end - 1, step):
        day = datetime.fromtimestamp(slot, zone).date()
        if day in per_day:
            per_day[day][0] += agg.count
            per_day[day][1] += agg.errors
    busiest_day = max((n for n, _ in per_day.values()), default=0) or 1
    days = [
        {"date": day, "requests": n, "errors": e, "width": round(100 * n / busiest_day), "error_width": _share(e, n)}
        for day, (n, e) in per_day.items()
    ]
    slo = [_slo_in(objective, overall) for objective in objectives(config)] if overall.count else []
    releases = releases_in(store, config, start, end)
    dashboard = config.public_url.rstrip("/") + config.prefix + "/" if config.public_url else None
    return Report(
        period,
        totals,
        previous,
        # Without a request in the period nothing changed in a way worth an arrow.
        {
            name: _change(totals[name], previous[name]) if overall.count else None
            for name in ("requests", "error_rate", "p50", "p95", "p99")
        },
        busiest,
        slowest,
        failing,
        types[:10],
        days,
        slo,
        dashboard,
        releases,
        issues=issues_in(store, start, end, moment, dashboard),
        incidents=incidents_in(store, start, end, moment),
        time_spent=time_spent_in(store, overall, start, end, config.n_plus_one_repeats) if overall.count else None,
        checkins=checkins_in(store, start, end, moment),
    )


def _slo_in(objective: Objective, agg: Aggregate) -> dict[str, Any]:
    """The objective over the period: the share of good requests and how much of the period's
    error budget (the bad requests its traffic allowed) the bad ones used."""
    bad = objective.bad(agg)
    allowed = agg.count * objective.budget
    return {
        "objective": objective.name,
        "target": objective.target,
        "latency_ms": objective.latency_ms,
        "description": objective.describe(),
        "requests": agg.count,
        "good": round(1 - bad / agg.count, 6),
        "bad": bad,
        "allowed": allowed,
        "budget_used": round(bad / allowed, 4) if allowed else None,
    }


def _share(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0


def render_report(report: Report) -> tuple[str, str]:
    """(plain text, HTML) of the report."""
    context = {"r": report, "fmt": _Formats(report.period.start.tzinfo)}
    text = templates().get_template("report.txt").render(**context)
    html = templates().get_template("report.html").render(**context)
    return text, html


def subject(report: Report) -> str:
    totals = report.totals
    kind = "Weekly" if report.period.kind == "week" else "Daily"
    if not report.traffic:
        return f"[wsgimon] {kind} report {report.period.label()}: no traffic"
    available = f"{totals['availability']:.2%} available"
    return f"[wsgimon] {kind} report {report.period.label()}: {totals['requests']:,} requests, {available}"


def report_email(report: Report, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    text, html = render_report(report)
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class _Formats:
    """Number and time formats shared by both parts."""

    def __init__(self, zone: tzinfo | None) -> None:
        self.zone = zone

    @staticmethod
    def count(value: int | None) -> str:
        return "–" if value is None else f"{value:,}"

    @staticmethod
    def pct(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value * 100:.{digits}f} %"

    @staticmethod
    def ms(value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"

    @classmethod
    def total_ms(cls, value: float | None) -> str:
        """A sum of time: ms under ten seconds, then seconds, minutes, hours."""
        if value is None or value < 10_000:
            return cls.ms(value)
        seconds = value / 1000
        if seconds < 600:
            return f"{seconds:.1f} s"
        return f"{seconds / 60:.0f} min" if seconds < 3 * 3600 else f"{seconds / 3600:,.1f} h"

    @staticmethod
    def per_request(value: float | None) -> str:
        """A count per request: ``12``, ``1.5``, ``0.25``."""
        if value is None:
            return "–"
        return f"{value:.2g}" if 0 < value < 1 else f"{value:,.1f}".rstrip("0").rstrip(".")

    @staticmethod
    def change(value: float | None, lower_is_better: bool = True) -> str:
        if value is None:
            return ""
        arrow = "▲" if value > 0 else "▼" if value < 0 else "="
        return f"{arrow} {abs(value) * 100:.0f} %"

    @staticmethod
    def worse(value: float | None, lower_is_better: bool = True) -> bool:
        return value is not None and (value > 0.05 if lower_is_better else value < -0.05)

    @staticmethod
    def span(seconds: float) -> str:
        """A schedule's time as its monitor declares it: ``30s``, ``5m``, ``1h``, ``1d``, ``1.5h``."""
        for unit, size in (("d", DAY), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
        if seconds >= 3600:
            return f"{seconds / 3600:.1f}h"
        return f"{seconds / 60:.1f}m" if seconds >= 60 else f"{seconds:g}s"

    def when(self, epoch: float | None) -> str:
        if not epoch:
            return "–"
        return f"{datetime.fromtimestamp(epoch, self.zone):%a %d %b %H:%M}"

    @staticmethod
    def duration(seconds: float | None) -> str:
        """As the alert messages say it (``20 min``, ``2 h 5 min``), in days past two of them."""
        if seconds is None:
            return "–"
        if seconds < 2 * DAY:
            return duration_words(seconds)
        days, rest = divmod(int(seconds), DAY)
        return f"{days} d {rest // 3600} h"
