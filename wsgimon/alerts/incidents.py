"""Incidents: what fires together is told together, once, and "resolved" only when all of it is.

Every process reads the same flushed data and turns it into :class:`Verdict` s (a rule's reading
now: true or not, with its numbers). :func:`decide` applies them to the deployment's alerting
state, kept in the store, inside one write transaction, so exactly one process makes each
change and learns what to send. It is a pure function of that state, the verdicts, the
silences and the time.

A condition (one rule about one thing: an issue, an endpoint's error rate, an SLO) is
``pending`` until it has been true long enough (``for_s``: at once for failures, two
evaluations for latency), then ``firing``; it is ``resolved`` only after it has been clear for
``resolve_after_s`` (an issue: not seen for that long). A condition with no verdict (an endpoint
that stopped getting traffic, a rule turned off) is clear. Severity changes (an SLO going from
ticket to page) stay one condition.

A firing condition joins the open incident of its group (the deployment, or per endpoint or
issue with ``group_by``), or opens one. The incident's first message waits ``group_wait_s`` to
gather what fires together; later changes go out at most every ``group_interval_s`` as updates;
an incident still open is repeated every ``repeat_interval_s``; when every condition in it is
resolved, one "resolved" message says how long it lasted and what was in it. Conditions that
are silenced (by a silence or a maintenance window) or inhibited (per-endpoint alerts while the
whole deployment's error rate, a failing health check or an SLO page fires) are kept in the
incident and shown, but never cause a message on their own. Events (a release made an endpoint
slower, a new issue in a release) are told once, in the incident open at the time, and never
"resolve".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .state import (
    EVENT_PREFIX,
    FIRING,
    KEEP_RESOLVED_S,
    OPEN,
    PENDING,
    RESOLVED,
    AlertingState,
    Condition,
    Incident,
    Verdict,
)

__all__ = ["Notice", "Settings", "decide", "muted"]

_RANK = {"critical": 3, "warning": 2, "info": 1}


@dataclass(frozen=True)
class Settings:
    for_s: float = 0.0  # a failure fires at its first evaluation
    latency_for_s: float = 0.0  # latency: at least two evaluations (the engine passes its interval)
    resolve_after_s: float = 300.0
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 14400.0
    group_by: tuple[str, ...] = ()  # "endpoint", "issue": beside the deployment


@dataclass(frozen=True)
class Notice:
    """A message one process must send for an incident: ``kind`` firing, update, repeat or resolved."""

    kind: str
    incident: Incident
    members: list[Condition]  # every condition of the incident, firing first
    silenced: frozenset[str]
    inhibited: frozenset[str]
    changes: tuple[str, ...]  # what changed since the last message, in words


def decide(
    state: AlertingState,
    verdicts: Iterable[Verdict],
    now: float,
    settings: Settings,
    maintenance: bool = False,
) -> list[Notice]:
    """Apply one evaluation's verdicts at ``now``; the notices this caller must send.

    A verdict older than the last evaluation applied (another process got there first with
    newer data) changes nothing: the state only moves forward in time.
    """
    if now < state.evaluated_at:
        return []
    state.evaluated_at = now
    seen = set()
    for verdict in verdicts:
        seen.add(verdict.key)
        _apply(state, verdict, now, settings)
    for key, condition in state.conditions.items():
        if key not in seen and condition.status != RESOLVED and not condition.event:
            _clear(state, condition, None, now, settings)
    silenced, inhibited = muted(state, now, maintenance)
    _attach(state, now, settings, silenced | inhibited)
    notices = [
        notice
        for incident in sorted(state.incidents.values(), key=lambda item: item.id)
        if incident.status == OPEN and (notice := _notice(state, incident, now, settings, silenced, inhibited))
    ]
    _forget(state, now)
    return notices


def _apply(state: AlertingState, verdict: Verdict, now: float, settings: Settings) -> None:
    condition = state.conditions.get(verdict.key)
    if not verdict.true:
        if condition is not None and condition.status != RESOLVED and not condition.event:
            condition.summary, condition.facts = verdict.summary, {**condition.facts, **_now_facts(verdict)}
            _clear(state, condition, verdict.clear_since, now, settings)
        return
    if condition is None or condition.status == RESOLVED:
        if condition is not None and condition.event:
            return  # an event is told once
        # Firing again while its incident is still open: the same incident.
        earlier = None if condition is None else state.incidents.get(condition.incident or -1)
        condition = Condition(
            key=verdict.key,
            rule=verdict.rule,
            severity=verdict.severity,
            status=PENDING,
            title=verdict.title,
            summary=verdict.summary,
            facts=dict(verdict.facts),
            true_since=now,
            changed=now,
            event=verdict.event,
            incident=earlier.id if earlier is not None and earlier.status == OPEN else None,
            peak_severity=verdict.severity,
        )
        state.conditions[verdict.key] = condition
    condition.clear_since = None
    condition.title, condition.summary, condition.facts = verdict.title, verdict.summary, dict(verdict.facts)
    if _RANK.get(verdict.severity, 0) > _RANK.get(condition.peak_severity, 0):
        condition.peak_severity = verdict.severity
    condition.severity = verdict.severity
    wait = settings.latency_for_s if condition.rule == "latency_p95" else 0.0
    if condition.status == PENDING and now - condition.true_since >= max(settings.for_s, wait):
        condition.status, condition.changed = FIRING, now
    state.changed_conditions.add(condition.key)


def _now_facts(verdict: Verdict) -> dict[str, Any]:
    return {"now": verdict.summary}


def _clear(state: AlertingState, condition: Condition, since: float | None, now: float, settings: Settings) -> None:
    state.changed_conditions.add(condition.key)
    if condition.status == PENDING:
        condition.status, condition.changed = RESOLVED, now  # never fired: gone quietly
        return
    if condition.clear_since is None:
        condition.clear_since = now if since is None else min(now, since)
    if now - condition.clear_since >= settings.resolve_after_s:
        condition.status, condition.changed = RESOLVED, now


def muted(state: AlertingState, now: float, maintenance: bool) -> tuple[set[str], set[str]]:
    """(silenced, inhibited) condition keys now."""
    return _silenced(state, now, maintenance), _inhibited(state)


def _silenced(state: AlertingState, now: float, maintenance: bool) -> set[str]:
    active = [silence for silence in state.silences if silence.active(now)]
    return {
        key
        for key, condition in state.conditions.items()
        if condition.status != RESOLVED
        and (maintenance or condition.facts.get("ignored") or any(s.matches(condition) for s in active))
    }


def _inhibited(state: AlertingState) -> set[str]:
    """Per-endpoint conditions while something deployment-wide says the same louder."""
    firing = [c for c in state.conditions.values() if c.status == FIRING]
    whole = any(c.rule == "health" or (c.rule == "slo" and c.severity == "critical") for c in firing)
    all_errors = any(c.rule == "error_rate" and not c.facts.get("endpoint") for c in firing)
    return {c.key for c in firing if c.facts.get("endpoint") and (whole or (all_errors and c.rule == "error_rate"))}


def _group_of(condition: Condition, settings: Settings) -> str:
    parts = ["deployment"]
    if "endpoint" in settings.group_by and condition.facts.get("endpoint"):
        parts.append(f"{condition.facts.get('method', '')} {condition.facts['endpoint']}")
    if "issue" in settings.group_by and condition.facts.get("issue"):
        parts.append(f"issue {condition.facts['issue']}")
    return " · ".join(parts)


def _attach(state: AlertingState, now: float, settings: Settings, quiet: set[str]) -> None:
    open_by_group = {i.group: i for i in state.incidents.values() if i.status == OPEN}
    for condition in sorted(state.conditions.values(), key=lambda c: c.true_since):
        if condition.status != FIRING or (condition.incident is not None and condition.incident in state.incidents):
            continue
        group = _group_of(condition, settings)
        incident = open_by_group.get(group)
        if incident is None:
            if condition.key in quiet:
                continue  # a muted condition opens nothing; it joins an incident others open
            incident = Incident(state.next_incident, group, OPEN, now)
            state.next_incident += 1
            state.incidents[incident.id] = open_by_group[group] = incident
            state.changed_incidents.add(incident.id)
        condition.incident = incident.id
        state.changed_conditions.add(condition.key)


#: what a message leads with, among conditions of one severity: the cause before its symptoms
_LEAD = {"exception": 0, "health": 1, "slo": 2, "error_rate": 3, "latency_p95": 4}


def _members(state: AlertingState, incident: Incident) -> list[Condition]:
    members = [c for c in state.conditions.values() if c.incident == incident.id and c.status != PENDING]
    return sorted(
        members,
        key=lambda c: (c.status != FIRING, -_RANK.get(c.severity, 0), _LEAD.get(c.rule, 5), c.true_since),
    )


def _notice(
    state: AlertingState,
    incident: Incident,
    now: float,
    settings: Settings,
    silenced: set[str],
    inhibited: set[str],
) -> Notice | None:
    members = _members(state, incident)
    loud = [c for c in members if c.status == FIRING and c.key not in silenced and c.key not in inhibited]
    lasting = [c for c in members if c.status == FIRING and not c.event]
    # What a message speaks of: muted conditions are listed, but their changes are no news.
    told = {
        c.key: (c.severity if c.status == FIRING else RESOLVED)
        for c in members
        if c.key not in silenced and c.key not in inhibited
    }
    kind: str | None = None
    if not lasting and (incident.first_sent is not None or not any(c.event for c in loud)):
        # Everything in it is over: one "resolved" for conditions that were told, nothing for
        # what never was, nor for events (told, not resolved).
        incident.status, incident.resolved = RESOLVED, now
        state.changed_incidents.add(incident.id)
        if not any(not key.startswith(EVENT_PREFIX) for key in incident.told):
            return None
        kind = "resolved"
    elif incident.first_sent is None:
        if not loud or now - incident.opened < settings.group_wait_s:
            return None
        kind = "firing"
    elif told != incident.told and now - (incident.last_sent or 0.0) >= settings.group_interval_s:
        kind = "update"
    elif now - (incident.last_sent or 0.0) >= settings.repeat_interval_s and loud:
        kind = "repeat"
    if kind is None:
        return None
    changes = _changes(incident.told, told, state) if kind in ("update", "resolved") else ()
    if kind == "update" and not any(not change.startswith("resolved:") for change in changes):
        # A part that ended is no news on its own: the next message (or the resolve) says so.
        return None
    if incident.first_sent is None:
        incident.title = (loud or members)[0].title
    incident.first_sent = incident.first_sent or now
    incident.last_sent = now
    incident.messages += 1
    incident.told = told
    state.changed_incidents.add(incident.id)
    for condition in members:
        if condition.event and condition.status == FIRING and condition.key not in silenced:
            condition.told, condition.status, condition.changed = True, RESOLVED, now
            state.changed_conditions.add(condition.key)
    return Notice(kind, incident, members, frozenset(silenced), frozenset(inhibited), changes)


def _changes(before: dict[str, str], after: dict[str, str], state: AlertingState) -> tuple[str, ...]:
    said: list[str] = []
    for key, now_is in after.items():
        was = before.get(key)
        condition = state.conditions.get(key)
        title = condition.title if condition is not None else key
        if was is None and now_is != RESOLVED:
            said.append(f"new: {title}")
        elif was is not None and was != RESOLVED and now_is == RESOLVED:
            said.append(f"resolved: {title}")
        elif was == RESOLVED and now_is != RESOLVED:
            said.append(f"firing again: {title}")
        elif was is not None and was != now_is and RESOLVED not in (was, now_is):
            verb = "escalated" if _RANK.get(now_is, 0) > _RANK.get(was, 0) else "downgraded"
            said.append(f"{verb} to {_SEVERITY_WORDS.get(now_is, now_is)}: {title}")
    return tuple(said)


_SEVERITY_WORDS = {"critical": "page", "warning": "ticket", "info": "info"}


def _forget(state: AlertingState, now: float) -> None:
    """Resolved incidents and conditions are kept a day for /alerts, then dropped."""
    for key in [k for k, c in state.conditions.items() if c.status == RESOLVED and now - c.changed > KEEP_RESOLVED_S]:
        incident = state.incidents.get(state.conditions[key].incident or -1)
        if incident is None or incident.status != OPEN:
            del state.conditions[key]
            state.changed_conditions.add(key)
    for number in [
        n for n, i in state.incidents.items() if i.status == RESOLVED and now - (i.resolved or now) > KEEP_RESOLVED_S
    ]:
        del state.incidents[number]
        state.changed_incidents.add(number)
