"""What the report tells of a period besides its numbers: the issues, the incidents, the releases,
where the requests' time went (database queries, outbound calls, the app's own code), and the
check-ins (the jobs beside the app: their runs, failures and missed runs).

Each section reads the store and returns plain values the templates lay out. Texts that a request
may have put in the store (issue titles, incident titles, silence reasons) are scrubbed of secrets
again here: a row may predate the scrubber's knowledge of a form.
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..alerts.state import KEEP_RESOLVED_S, OPEN, AlertingState, Condition, Incident, Silence
from ..secret_text import without_secrets
from ..stats.checkins import ALERTING, Monitor, Run, state_of
from ..stats.dependencies import DB, HTTP, DependencyRow, dependencies_in
from ..stats.issues import REGRESSED
from ..stats.spent import spent_summary
from ..stats.time_windows import DAY, HOUR
from ..stores.contract import RUNS_PER_CHECKIN
from ..stores.records import MAX_ALERTS

if TYPE_CHECKING:
    from ..config import Config
    from ..stats.aggregate import Aggregate
    from ..stores.contract import Store
    from ..stores.records import AlertRow, IssueRow

__all__ = [
    "PeriodCheckIns",
    "PeriodIncidents",
    "PeriodIssues",
    "PeriodTimeSpent",
    "checkins_in",
    "incidents_in",
    "issues_in",
    "releases_in",
    "time_spent_in",
    "totals_of",
]

#: new issues and regressions listed; more are counted, not listed
_MAX_LISTED = 10
#: endpoints named per issue; more are counted ("+2 more")
_ENDPOINTS_NAMED = 3
#: a write may bring occurrences late (a process's spool): an issue last seen this long before
#: the period may still have regressed in it
_LATE_S = DAY
#: the alert log's key of an incident's messages: "incident|12"
_INCIDENT_KEY = "incident|"
#: silences are kept this long after they end (then a newer silence's write drops them)
_SILENCES_KEPT_S = 30 * KEEP_RESOLVED_S
_SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
_TOP = 5
#: characters of a statement shown (normalised: no literal in it), and endpoints named per statement
_STATEMENT_CHARS = 300
_DEPENDENCY_ENDPOINTS_NAMED = 2


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


def incidents_in(store: Store, start: float, end: float, now: float) -> PeriodIncidents:
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
        "title": without_secrets(_incident_title(number, messages, known, members)),
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
    return {
        "id": silence.id,
        "starts": silence.starts,
        "ends": silence.ends,
        "reason": without_secrets(silence.reason),
        "matches": silence.matchers(),
        "created_by": silence.created_by,
    }


def issues_in(store: Store, start: float, end: float, now: float, dashboard: str | None) -> PeriodIssues:
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
        "title": without_secrets(row.title) if says else "",
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


@dataclass
class PeriodTimeSpent:
    """Where the period's requests spent their time: the database, outbound HTTP calls, the app itself.

    Shares are of the requests' whole duration; per request counts every request, one that made
    no query (or call) as zero.
    """

    db_share: float | None
    http_share: float | None
    app_share: float | None
    queries_per_request: float | None
    db_ms_per_request: float | None
    calls_per_request: float | None
    http_ms_per_request: float | None
    #: the statements with the most time, each a dict (see :func:`_statement`)
    statements: list[dict[str, Any]] = field(default_factory=list)
    #: the outbound targets with the most time, each a dict (see :func:`_target`)
    targets: list[dict[str, Any]] = field(default_factory=list)
    #: how many statements (targets) the period had, listed or not
    statement_count: int = 0
    target_count: int = 0
    #: a statement is an N+1 in a request where it ran this many times or more
    n_plus_one_repeats: int = 5


def time_spent_in(
    store: Store, overall: Aggregate, start: float, end: float, n_plus_one_repeats: int
) -> PeriodTimeSpent | None:
    """The period's time in queries and calls, its top statements and targets; None when nothing was
    captured (an app that makes neither, or capture off): the report then has no such section.

    Statements and targets are read from the hour rows, as the report's days are: a whole period,
    whatever its length and however long ago it ended (while the hours are kept).
    """
    # Hour rows: a report may cover days whose minute rows are pruned.
    statements = dependencies_in(store, DB, start, end - 1, resolution=HOUR)
    targets = dependencies_in(store, HTTP, start, end - 1, resolution=HOUR)
    spent = overall.spent
    if (spent is None or not (spent.queries or spent.calls)) and not statements and not targets:
        return None
    summary = spent_summary(spent, overall.count, overall.total_ms)
    share = summary["share"]
    db_total = sum(row.use.total_ms for row in statements)
    http_total = sum(row.use.total_ms for row in targets)
    return PeriodTimeSpent(
        share["db"],
        share["http"],
        share["app"],
        summary["db_queries"]["avg"],
        summary["db_ms"]["avg"],
        summary["http_calls"]["avg"],
        summary["http_ms"]["avg"],
        [_statement(row, db_total) for row in statements[:_TOP]],
        [_target(row, http_total) for row in targets[:_TOP]],
        len(statements),
        len(targets),
        n_plus_one_repeats,
    )


def _statement(row: DependencyRow, db_total_ms: float) -> dict[str, Any]:
    found = row.to_json()
    text = found["statement"]
    return {
        "statement": text if len(text) <= _STATEMENT_CHARS else text[: _STATEMENT_CHARS - 1] + "…",
        "frame": found["frame"],
        "n_plus_one": found["n_plus_one"],
        **_use(found, row.use.total_ms, db_total_ms),
    }


def _target(row: DependencyRow, http_total_ms: float) -> dict[str, Any]:
    found = row.to_json()
    return {"method": found["method"], "target": found["target"], **_use(found, row.use.total_ms, http_total_ms)}


def _use(found: dict[str, Any], total_ms: float, all_ms: float) -> dict[str, Any]:
    """What a statement and a target share: how often, how long, what share of their kind's time, where from."""
    endpoints = found["endpoints"]
    return {
        "count": found["count"],
        "errors": found["errors"],
        "total_ms": found["total_ms"],
        "avg_ms": found["avg_ms"],
        "p95_ms": found["p95_ms"],
        "share": round(total_ms / all_ms, 4) if all_ms > 0 else None,
        "endpoints": endpoints[:_DEPENDENCY_ENDPOINTS_NAMED],
        "more_endpoints": max(0, len(endpoints) - _DEPENDENCY_ENDPOINTS_NAMED) + found["more_endpoints"],
    }


def releases_in(store: Store, config: Config, start: float, end: float) -> list[dict[str, Any]]:
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
                **totals_of(summary.overall),
                "regressions": [
                    {
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "metric": r.metric,
                        "before": r.before,
                        "after": r.after,
                        "change": r.change,
                    }
                    for r in summary.regressions
                ],
                "new_error_types": summary.new_error_types,
            }
        )
    return sorted(rows, key=lambda row: row["first_seen"])


def totals_of(agg: Aggregate) -> dict[str, Any]:
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


#: monitors listed (the ones in trouble first); the others are counted in the totals
_CHECKINS_LISTED = 20
#: failed runs and missed times named per monitor; more are counted
_RUNS_NAMED = 5
#: a cron's expected times looked at per monitor at most (one every minute is 10,080 a week): past
#: it, the missed runs counted are a lower bound
_MAX_EXPECTED = 300
#: characters of a failed run's error shown
_ERROR_CHARS = 200


@dataclass
class PeriodCheckIns:
    """The period's check-ins: each monitor's runs (each a dict, see :func:`_checkin_in`), in trouble first."""

    monitors: list[dict[str, Any]] = field(default_factory=list)
    #: monitors that existed in the period, listed or not
    count: int = 0
    #: over every monitor: runs that ended well, that failed, and expected runs that did not come
    succeeded: int = 0
    failed: int = 0
    missed: int = 0
    #: monitors with a failed or missed run in the period, or alerting at its end
    troubled: int = 0


def checkins_in(store: Store, start: float, end: float, now: float) -> PeriodCheckIns | None:
    """Each monitor's runs in [start, end): succeeded, failed, missed; and its state at the end. None
    when no monitor existed in the period (the report then has no such section).

    A store keeps a monitor's newest RUNS_PER_CHECKIN runs, and drops older ones past the retention:
    what came before the oldest run kept is not known then, and is not counted (``known_from`` says so).
    """
    monitors = [monitor for monitor in store.checkin_monitors() if monitor.created < end]
    if not monitors:
        return None
    kept = store.all_checkin_runs(RUNS_PER_CHECKIN)
    horizon = now - store.hour_retention_s
    found = [_checkin_in(monitor, kept.get(monitor.name, []), start, end, now, horizon) for monitor in monitors]
    found.sort(key=lambda x: (not x["troubled"], -(x["missed"] + x["failed"]), x["name"]))
    return PeriodCheckIns(
        found[:_CHECKINS_LISTED],
        len(found),
        sum(x["succeeded"] for x in found),
        sum(x["failed"] for x in found),
        sum(x["missed"] for x in found),
        sum(bool(x["troubled"]) for x in found),
    )


def _checkin_in(
    monitor: Monitor, runs: list[Run], start: float, end: float, now: float, horizon: float
) -> dict[str, Any]:
    """One monitor over [start, end): its runs (oldest first, as the store keeps them) told."""
    # Runs may have been dropped before the oldest kept (too many, or past the retention): count from it.
    cut = bool(runs) and (len(runs) >= RUNS_PER_CHECKIN or monitor.created < horizon)
    pings = sorted(t for run in runs for t in (run.started, run.ended) if t is not None)
    known_from = pings[0] if cut else monitor.created
    succeeded = failed = unfinished = 0
    failures: list[dict[str, Any]] = []
    for run in runs:
        if run.ended is not None and start <= run.ended < end:
            if run.ok:
                succeeded += 1
            else:
                failed += 1
                failures.append(
                    {
                        "at": run.ended,
                        "exit_code": run.exit_code,
                        "error": None if run.error is None else without_secrets(run.error)[:_ERROR_CHARS],
                    }
                )
        elif run.started is not None and start <= run.started < end and (run.ended is None or run.ended >= end):
            unfinished += 1
    lo = max(start, known_from)
    missed, missed_at, at_least = _missed(monitor, runs, pings, lo, end, now, None if cut else monitor.created)
    at = min(end, now)
    state = None
    if known_from < at:
        seen = _runs_before(runs, at)
        if seen or not cut:
            state = state_of(monitor, seen, at)
    return {
        "name": monitor.name,
        "describe": monitor.schedule.describe(),
        "grace_s": monitor.grace_s,
        "created": monitor.created if monitor.created >= start else None,
        "succeeded": succeeded,
        "failed": failed,
        "failures": failures[-_RUNS_NAMED:],  # the latest
        "unfinished": unfinished,
        "missed": missed,
        "missed_at": missed_at,  # the first
        "missed_at_least": at_least,
        "state": None if state is None else state.state,
        "detail": "" if state is None else without_secrets(state.detail),
        "troubled": bool(missed or failed or (state is not None and state.state in ALERTING)),
        # Runs before this are no longer kept: not counted (None: all the period's are).
        "known_from": known_from if cut and known_from > start else None,
    }


def _missed(
    monitor: Monitor, runs: list[Run], pings: list[float], lo: float, end: float, now: float, created: float | None
) -> tuple[int, list[float], bool]:
    """(how many expected times in [lo, end) saw no run within the grace, the first few, whether the count
    is a lower bound). Only deadlines passed by ``now`` count: a run may still come for a later one."""
    grace = monitor.grace_s
    count, first = 0, list[float]()
    if lo >= end:
        return 0, [], False
    every = monitor.schedule.every_s
    if every is not None:
        # A run is expected ``every`` after the one before (its end, or its start while it runs): a gap
        # longer than every + grace misses one run per ``every`` in it.
        ends = (run.ended if run.ended is not None else run.started for run in runs)
        points = ([created] if created is not None else []) + sorted(t for t in ends if t is not None)
        for i, a in enumerate(points):
            b = points[i + 1] if i + 1 < len(points) else now
            k_lo = max(1, math.ceil((lo - a) / every))
            k_hi = min(math.ceil((end - a) / every), math.ceil((b - a - grace) / every)) - 1
            if k_hi >= k_lo:
                count += k_hi - k_lo + 1
                first.extend(a + k * every for k in range(k_lo, min(k_hi, k_lo + _RUNS_NAMED - 1) + 1))
        return count, sorted(first)[:_RUNS_NAMED], False
    # A cron: each of its times in the period wants a ping (a start or an end) within its grace.
    fire = monitor.schedule.next_after(lo - 1.0)
    for _ in range(_MAX_EXPECTED):
        if fire >= end or fire + grace >= now:
            return count, first, False
        found = bisect.bisect_left(pings, fire)
        if found == len(pings) or pings[found] > fire + grace:
            count += 1
            if len(first) < _RUNS_NAMED:
                first.append(fire)
        fire = monitor.schedule.next_after(fire)
    return count, first, fire < end and fire + grace < now


def _runs_before(runs: list[Run], at: float) -> list[Run]:
    """The runs as they stood at ``at``: those begun before it, a run that ended after it still running."""
    seen = []
    for run in runs:
        begun = run.started if run.started is not None else run.ended
        if begun is None or begun >= at:
            continue
        if run.ended is not None and run.ended >= at:
            run = Run(run.started)
        seen.append(run)
    return seen
