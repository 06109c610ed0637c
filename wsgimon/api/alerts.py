"""``/alerts``: the deployment's incidents (open first), what is in them, silences, and every message sent.

Delivery counts are the deployment's: summed over the alert log every process writes, not one
process's channels (``channels`` still says how this process's clients fare).
"""

from __future__ import annotations

import time
from typing import Any

from ..alerts.incidents import muted
from ..alerts.state import RESOLVED, AlertingState, Condition, Incident
from ..stats.slo import objectives, slo_status
from ..stores.records import AlertRow
from .context import Context
from .params import Query
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer", "condition_json", "silence_json"]

PARAMETERS = {"limit"}
MAX_LIMIT = 1000


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    limit = query.integer("limit", default=100, maximum=MAX_LIMIT)
    ctx.flush_own()
    store = ctx.store
    now = time.time()
    engine = ctx.alerts
    maintenance = engine is not None and engine.in_maintenance(now)
    state = store.alerting_view(now)
    silenced, inhibited = muted(state, now, maintenance)
    log = store.recent_alerts(limit)
    incidents = sorted(state.incidents.values(), key=lambda i: (i.status == RESOLVED, -i.opened))
    return {
        "incidents": [_incident_json(state, incident, silenced, inhibited) for incident in incidents],
        "firing": sorted(key for key, c in state.conditions.items() if c.status == "firing"),
        "silences": [silence_json(s, now) for s in state.silences],
        "maintenance": maintenance,
        "evaluated_at": iso(state.evaluated_at),
        "alerts": [_row_json(row) for row in log],
        "deliveries": _deliveries(log),
        "channels": {} if engine is None else engine.status()["channels"],
        "configured": [] if engine is None else engine.channel_names,
        "slo": [slo_status(store, objective, now).to_json() for objective in objectives(ctx.config)],
    }


def _incident_json(state: AlertingState, incident: Incident, silenced: set[str], inhibited: set[str]) -> dict[str, Any]:
    members = [c for c in state.conditions.values() if c.incident == incident.id and c.status != "pending"]
    members.sort(key=lambda c: (c.status != "firing", c.true_since))
    return {
        "id": incident.id,
        "group": incident.group,
        "status": incident.status,
        "title": incident.title or (members[0].title if members else ""),
        "opened": iso(incident.opened),
        "resolved": iso(incident.resolved),
        "messages": incident.messages,
        "last_sent": iso(incident.last_sent),
        "conditions": [condition_json(c, c.key in silenced, c.key in inhibited) for c in members],
    }


def condition_json(condition: Condition, silenced: bool, inhibited: bool) -> dict[str, Any]:
    facts = condition.facts
    return {
        "key": condition.key,
        "rule": condition.rule,
        "severity": condition.severity,
        "status": condition.status,
        "title": condition.title,
        "summary": condition.summary,
        "since": iso(condition.true_since),
        "event": condition.event,
        "silenced": silenced,
        "inhibited": inhibited,
        "issue": facts.get("issue"),
        "endpoint": facts.get("endpoint"),
        "last_seen": iso(facts.get("last_seen")),
    }


def silence_json(silence: Any, now: float) -> dict[str, Any]:
    return {
        "id": silence.id,
        "rule": silence.rule,
        "endpoint": silence.endpoint,
        "issue": silence.issue,
        "severity": silence.severity,
        "reason": silence.reason,
        "created_by": silence.created_by,
        "starts": iso(silence.starts),
        "ends": iso(silence.ends),
        "active": silence.active(now),
    }


def _row_json(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule,
        "key": row.key,
        "severity": row.severity,
        "state": row.state,
        "title": row.title,
        "summary": row.summary,
        "opened": iso(row.opened_at),
        "sent": iso(row.sent_at),
        "suppressed": row.suppressed,
        "deliveries": row.deliveries,
    }


def _deliveries(log: list[AlertRow]) -> dict[str, dict[str, int]]:
    """Per channel, how the deployment's recent messages went: delivered, retrying, failed, queued."""
    counts: dict[str, dict[str, int]] = {}
    for row in log:
        for channel, outcome in row.deliveries.items():
            per = counts.setdefault(channel, {"delivered": 0, "retrying": 0, "failed": 0, "queued": 0})
            status = str(outcome.get("status", "queued"))
            per[status] = per.get(status, 0) + 1
    return counts
