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
longest, how long they took to resolve, and what was silenced. Sending once
per period across a deployment is :mod:`wsgimon.reporting.schedule`'s job.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..alerts.incidents import KEEP_RESOLVED_S, OPEN, AlertingState, Condition, Incident, Silence, duration_words
from ..rendering import templates
from ..stats.aggregate import Aggregate
from ..stats.issues import REGRESSED
from ..stats.slo import Objective, objectives
from ..stats.time_windows import DAY, HOUR
from ..stores.records import MAX_ALERTS

if TYPE_CHECKING:
    from ..config import Config
    from ..stores.contract import Store
    from ..stores.records import AlertRow, IssueRow

__all__ = [
    "Period",
    "PeriodIncidents",
    "PeriodIssues",
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
#: the alert log's key of an incident's messages: "incident|12"
_INCIDENT_KEY = "incident|"
#: silences are kept this long after they end (then a newer silence's write drops them)
_SILENCES_KEPT_S = 30 * KEEP_RESOLVED_S
_SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}


@dataclass(frozen=True)
class Period:
    """[start, end) in a time zone: a whole week (from Monday 00:00) or a whole day."""

    kind: str  # "week" or "day"
    start: datetime  # aware, in the report's zone
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.start.date().isoformat()}"

    def previous(self) -> Period:
        length = self.end - self.start
        return Period(self.kind, _at_midnight(self.start - length, self.start.tzinfo), self.start)

    def label(self) -> str:
        last = (self.end - timedelta(seconds=1)).date()
        if self.kind == "day":
            return f"{self.start:%a %d %b %Y}"
        return f"{self.start:%d %b} – {last:%d %b %Y}"

    def days(self) -> list[date]:
        day, out = self.start.date(), []
        while day < self.end.date():
            out.append(day)
            day += timedelta(days=1)
        return out


def _at_midnight(moment: datetime, zone: tzinfo | None) -> datetime:
    return datetime(moment.year, moment.month, moment.day, tzinfo=zone)


def period_before(moment: datetime, kind: str) -> Period:
    """The whole week (or day) that ended last before ``moment`` (aware), in ``moment``'s zone."""
    zone = moment.tzinfo
    today = _at_midnight(moment, zone)
    if kind == "day":
        return Period("day", _at_midnight(today - timedelta(days=1), zone), today)
    this_monday = _at_midnight(today - timedelta(days=today.weekday()), zone)
    return Period("week", _at_midnight(this_monday - timedelta(days=7), zone), this_monday)


def period_from(day: date, kind: str, zone: tzinfo) -> Period:
    """The week (from the Monday on or before ``day``) or the day starting at ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    if kind == "week":
        start = _at_midnight(start - timedelta(days=start.weekday()), zone)
        return Period("week", start, _at_midnight(start + timedelta(days=7, hours=2), zone))
    return Period("day", start, _at_midnight(start + timedelta(days=1, hours=2), zone))


@dataclass
class PeriodIssues:
    """The period's issues, each a dict (see :func:`_issue`); ``count`` is its occurrences in the period."""

    #: first seen in the period, the most occurrences first
    new: list[dict[str, Any]] = field(default_factory=list)
    #: seen again in the period after being resolved, the latest first
    regressed: list[dict[str, Any]] = field(default_factory=list)
    #: the most occurrences in the period, from the hour rows
    top: list[dict[str, Any]] = field(default_factory=list)
    #: how many are new, and regressed, listed or not
    new_count: int = 0
    regressed_count: int = 0
    #: when the counted occurrences start if after the period's start (older hours are past the retention)
    counted_since: float | None = None


@dataclass
class PeriodIncidents:
    """The incidents opened in the period, from the alert log and the alerting state.

    An incident counts when a message told of it (it is in the alert log, or the state says it
    was sent) or when it is still open: one that resolved unseen (muted, or over within the
    group wait) is forgotten by the state within a day, so it cannot be counted all week.
    """

    #: opened in the period, oldest first, each a dict (see :func:`_incidents_in`)
    opened: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    still_open: int = 0
    #: the one that lasted (or has lasted so far) the longest
    longest: dict[str, Any] | None = None
    #: time to resolve, in seconds, over the ``resolved`` incidents whose resolve time is known
    resolved: int = 0
    resolve_median_s: float | None = None
    resolve_mean_s: float | None = None
    #: silences active at some time in the period, the earliest first
    silences: list[dict[str, Any]] = field(default_factory=list)
    #: when the alert log starts, if after the period's start while full: older messages are gone
    log_since: float | None = None
    #: silences that ended before this may have been forgotten (kept 30 days after they end)
    silences_since: float | None = None


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
    generated_at: float = field(default_factory=time.time)

    @property
    def traffic(self) -> bool:
        """Whether the period had any request: without one there is no availability, latency nor SLO."""
        return bool(self.totals["requests"])


def _totals(agg: Aggregate) -> dict[str, Any]:
    latency = agg.latency_ms()
    return {
        "requests": agg.count,
        "errors": agg.errors,
        "client_errors": agg.client_errors,
        "availability": None if not agg.count else round(1 - agg.errors / agg.count, 6),
        "error_rate": None if not agg.count else round(agg.errors / agg.count, 6),
        "p50": latency["p50"],
        "p95": latency["p95"],
        "p99": latency["p99"],
    }


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return round(now / before - 1, 4)


def build_report(store: Store, period: Period, config: Config, now: float | None = None) -> Report:
    """The period's numbers from the store, with the previous period's to compare."""
    start, end = period.start.timestamp(), period.end.timestamp()
    # Stored buckets start at whole seconds: [start, end - 1] covers exactly [start, end).
    overall = store.overall(start, end - 1)
    totals = _totals(overall)
    previous_period = period.previous()
    previous = _totals(store.overall(previous_period.start.timestamp(), start - 1))
    rows = [
        {"endpoint": e, "method": m, **_totals(agg)} for (e, m), agg in store.endpoint_totals(start, end - 1).items()
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
                    "message": sample.message if sample else error_type,
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
    releases = _releases_in(store, config, start, end)
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
        issues=_issues_in(store, start, end, moment, dashboard),
        incidents=_incidents_in(store, start, end, moment),
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


def _incidents_in(store: Store, start: float, end: float, now: float) -> PeriodIncidents:
    log: dict[int, list[AlertRow]] = {}
    rows = store.recent_alerts(MAX_ALERTS)
    for row in rows:
        digits = row.key.removeprefix(_INCIDENT_KEY)
        if row.key.startswith(_INCIDENT_KEY) and digits.isdigit():
            log.setdefault(int(digits), []).append(row)
    # Silences are read as of the period's start: the state as of now leaves out those over for a day.
    state = store.alerting_view(min(start, now))
    found: list[dict[str, Any]] = []
    for number in sorted(set(log) | set(state.incidents)):
        incident = _incident(number, sorted(log.get(number, []), key=lambda r: (r.sent_at, r.id)), state, now)
        if incident is not None and start <= incident["opened"] < end:
            found.append(incident)
    found.sort(key=lambda x: (x["opened"], x["id"]))
    lasted = [x for x in found if x["duration"] is not None]
    times = [x["duration"] for x in found if x["status"] != OPEN and x["duration"] is not None]
    silences = sorted(
        (_silence(s) for s in state.silences if s.starts < end and s.ends > start),
        key=lambda s: (s["starts"], s["id"]),
    )
    oldest = min((row.sent_at for row in rows), default=None)
    full = len(rows) >= MAX_ALERTS
    return PeriodIncidents(
        found[:_MAX_LISTED],
        len(found),
        sum(x["status"] == OPEN for x in found),
        max(lasted, key=lambda x: (x["duration"], -x["id"]), default=None),
        len(times),
        statistics.median(times) if times else None,
        statistics.fmean(times) if times else None,
        silences,
        oldest if full and oldest is not None and oldest > start else None,
        now - _SILENCES_KEPT_S if start < now - _SILENCES_KEPT_S else None,
    )


def _incident(number: int, messages: list[AlertRow], state: AlertingState, now: float) -> dict[str, Any] | None:
    """One incident from its messages (oldest first) and, while the state keeps it, the state's record.

    The state keeps every open incident, and a resolved one for a day: one that only the log
    knows was resolved, its time told by its "resolved" message (none recorded: unknown).
    """
    known = state.incidents.get(number)
    members = [c for c in state.conditions.values() if c.incident == number]
    resolved: float | None = None
    if known is not None and known.status == OPEN:
        status = OPEN
    elif messages or (known is not None and known.first_sent is not None):
        status = "resolved"
        ends = [row.sent_at for row in messages if row.state == "resolved"]
        resolved = known.resolved if known is not None and known.resolved is not None else max(ends, default=None)
    else:
        return None  # resolved without a message: muted, or over within the group wait
    opened = known.opened if known is not None else min(row.opened_at for row in messages)
    until = now if status == OPEN else resolved
    severities = [row.severity for row in messages] or [c.severity for c in members]
    return {
        "id": number,
        "title": _incident_title(number, messages, known, members),
        "severity": max(severities, key=lambda s: _SEVERITY_RANK.get(s, 0), default=None),
        "status": status,
        "opened": opened,
        "resolved": resolved,
        "duration": None if until is None else max(until - opened, 0.0),
        "messages": len(messages),
    }


def _incident_title(number: int, messages: list[AlertRow], known: Incident | None, members: list[Condition]) -> str:
    """What its first message was about, without the message's "Incident #12 …:" head."""
    if known is not None and known.title:
        return known.title
    head = f"Incident #{number}"
    # An update's title is the change it tells, not what the incident is about.
    about = [row for row in messages if not row.title.startswith(head + " update")] or messages
    for row in about:
        lead, colon, rest = row.title.partition(": ")
        if colon and lead.startswith(head) and rest:
            return rest
    if about:
        return about[0].title
    return members[0].title if members else head


def _silence(silence: Silence) -> dict[str, Any]:
    matches = [
        f"{name} {value}"
        for name, value in (
            ("rule", silence.rule),
            ("endpoint", silence.endpoint),
            ("issue", silence.issue),
            ("severity", silence.severity),
        )
        if value is not None
    ]
    return {
        "id": silence.id,
        "starts": silence.starts,
        "ends": silence.ends,
        "reason": silence.reason,
        "matches": matches,
        "created_by": silence.created_by,
    }


def _issues_in(store: Store, start: float, end: float, now: float, dashboard: str | None) -> PeriodIssues:
    counted_since = None
    if start < now - store.hour_retention_s:
        counted_since = float(-(-(now - store.hour_retention_s) // HOUR) * HOUR)  # the next whole hour
    counts: dict[str, int] = {}
    for issue_id, _hour, count in store.issue_counts(HOUR, int(start), int(end)):
        counts[issue_id] = counts.get(issue_id, 0) + count
    rows = {row.id: row for row in store.issues(start - _LATE_S)}

    def in_period(row: IssueRow) -> int | None:
        # Past the hours' retention a missing row says nothing: unknown, not zero.
        return counts.get(row.id, 0 if counted_since is None else None)

    new = sorted(
        (row for row in rows.values() if start <= row.first_seen < end),
        key=lambda row: (-(in_period(row) or 0), row.first_seen, row.id),
    )
    regressed = sorted(
        (row for row in rows.values() if row.status == REGRESSED and start <= row.status_changed < end),
        key=lambda row: (-row.status_changed, row.id),
    )
    top: list[dict[str, Any]] = []
    for issue_id, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        row = rows.get(issue_id)  # None: counted, then pushed out of the store by newer issues
        if row is not None:
            top.append(_issue(row, count, dashboard))
        if len(top) == _TOP:
            break
    return PeriodIssues(
        [_issue(row, in_period(row), dashboard) for row in new[:_MAX_LISTED]],
        [_issue(row, in_period(row), dashboard) for row in regressed[:_MAX_LISTED]],
        top,
        len(new),
        len(regressed),
        counted_since,
    )


def _issue(row: IssueRow, count: int | None, dashboard: str | None) -> dict[str, Any]:
    named = row.endpoints[:_ENDPOINTS_NAMED]
    # Without a message of its own (a bare 5xx, an empty message) the title only repeats the type.
    says = row.message.strip() not in ("", row.type) and row.title != row.type
    return {
        "id": row.id,
        "type": row.type,
        "title": row.title if says else "",
        "culprit": row.culprit,
        "status": row.status,
        "count": count,
        "total": row.count,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "status_changed": row.status_changed,
        "resolved_at": row.resolved_at,
        "resolved_in": row.resolved_in,
        "endpoints": [{"endpoint": e, "method": m, "count": n} for e, m, n in named],
        "more_endpoints": len(row.endpoints) - len(named),
        "url": None if dashboard is None else f"{dashboard}?issue={quote(row.id, safe='')}",
    }


def _releases_in(store: Store, config: Config, start: float, end: float) -> list[dict[str, Any]]:
    from ..stats.releases import summarize

    rows = []
    for summary in summarize(store, config, [], store.max_releases):
        if not start <= summary.row.first_seen < end:
            continue
        rows.append(
            {
                "release": summary.row.release,
                "first_seen": summary.row.first_seen,
                "compared_with": summary.previous,
                **_totals(summary.overall),
                "regressions": [
                    {
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "metric": r.metric,
                        "before": r.before,
                        "after": r.after,
                    }
                    for r in summary.regressions
                ],
                "new_error_types": summary.new_error_types,
            }
        )
    return sorted(rows, key=lambda row: row["first_seen"])


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

    @staticmethod
    def change(value: float | None, lower_is_better: bool = True) -> str:
        if value is None:
            return ""
        arrow = "▲" if value > 0 else "▼" if value < 0 else "="
        return f"{arrow} {abs(value) * 100:.0f} %"

    @staticmethod
    def worse(value: float | None, lower_is_better: bool = True) -> bool:
        return value is not None and (value > 0.05 if lower_is_better else value < -0.05)

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
