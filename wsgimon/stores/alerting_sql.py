"""The deployment's alerting state in SQL (SQLite and PostgreSQL alike): conditions, incidents, silences.

Each row holds its object as JSON beside the few columns a query filters on. An evaluation
reads the whole state, lets :func:`wsgimon.alerts.incidents.decide` change it, and writes back
what changed, inside the store's write transaction: one process at a time, exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..alerts.state import KEEP_RESOLVED_S, AlertingState, Condition, Incident, Silence
from .contract import AlertingStore
from .records import MAX_ALERTS, AlertRow
from .session import Session, SQLAccess

__all__ = [
    "ALERTING_SCHEMA",
    "SQLAlerting",
    "add_silence",
    "expire_silence",
    "in_transaction",
    "load_alerting",
    "save_alerting",
]

T = TypeVar("T")

ALERTING_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_conditions (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    changed DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    opened DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id BIGINT PRIMARY KEY,
    ends DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL
);
"""

_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


Query = Callable[[str, Sequence[Any]], list[Any]]


def load_alerting(query: Query, now: float) -> AlertingState:
    """The state, read through ``query`` (the read connection, or the write transaction's session)."""
    state = AlertingState()
    for (data,) in query("SELECT data FROM alert_conditions", ()):
        condition = Condition.from_json(json.loads(data))
        state.conditions[condition.key] = condition
    for (data,) in query("SELECT data FROM incidents", ()):
        incident = Incident.from_json(json.loads(data))
        state.incidents[incident.id] = incident
    state.silences = [
        Silence.from_json(json.loads(data))
        for (data,) in query("SELECT data FROM silences WHERE ends > ? ORDER BY id", (now - KEEP_RESOLVED_S,))
    ]
    meta = dict(query("SELECT key, value FROM meta WHERE key IN ('next_incident', 'alerts_evaluated_at')", ()))
    state.next_incident = int(meta.get("next_incident", "1"))
    state.evaluated_at = float(meta.get("alerts_evaluated_at", "0"))
    return state


def save_alerting(session: Session, state: AlertingState) -> None:
    for key in state.changed_conditions:
        condition = state.conditions.get(key)
        if condition is None:
            session.execute("DELETE FROM alert_conditions WHERE key = ?", (key,))
            continue
        session.execute(
            "INSERT INTO alert_conditions (key, status, changed, data) VALUES (?, ?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET status = excluded.status, changed = excluded.changed, data = excluded.data",
            (key, condition.status, condition.changed, _dumps(condition.to_json())),
        )
    for number in state.changed_incidents:
        incident = state.incidents.get(number)
        if incident is None:
            session.execute("DELETE FROM incidents WHERE id = ?", (number,))
            continue
        session.execute(
            "INSERT INTO incidents (id, status, opened, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET status = excluded.status, data = excluded.data",
            (number, incident.status, incident.opened, _dumps(incident.to_json())),
        )
    session.execute(_META, ("next_incident", str(state.next_incident)))
    session.execute(_META, ("alerts_evaluated_at", repr(state.evaluated_at)))
    state.changed_conditions.clear()
    state.changed_incidents.clear()


def in_transaction(session: Session, now: float, change: Callable[[AlertingState], T]) -> T:
    state = load_alerting(lambda sql, params: session.execute(sql, params).fetchall(), now)
    result = change(state)
    save_alerting(session, state)
    return result


def add_silence(session: Session, make: Callable[[int], Silence]) -> Silence:
    last = session.execute("SELECT max(id) FROM silences").fetchone()[0]
    silence = make(int(last or 0) + 1)
    session.execute(
        "INSERT INTO silences (id, ends, data) VALUES (?, ?, ?)", (silence.id, silence.ends, _dumps(silence.to_json()))
    )
    session.execute("DELETE FROM silences WHERE ends < ?", (silence.starts - 30 * KEEP_RESOLVED_S,))
    return silence


def expire_silence(session: Session, number: int, now: float) -> Silence | None:
    row = session.execute("SELECT data FROM silences WHERE id = ?", (number,)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    data["ends"] = min(float(data["ends"]), now)
    silence = Silence.from_json(data)
    session.execute("UPDATE silences SET ends = ?, data = ? WHERE id = ?", (silence.ends, _dumps(data), number))
    return silence


class SQLAlerting(SQLAccess, AlertingStore):
    """The store's alerting part: the state the engine decides on, silences and the alert log."""

    # -- alerting ----------------------------------------------------------------------
    def alerting(self, change: Callable[[AlertingState], T], now: float) -> T:
        with self._transaction() as session:
            return in_transaction(session, now, change)

    def alerting_view(self, now: float) -> AlertingState:
        return load_alerting(self._query, now)

    def add_silence(self, make: Callable[[int], Silence]) -> Silence:
        with self._transaction() as session:
            return add_silence(session, make)

    def expire_silence(self, number: int, now: float) -> Silence | None:
        with self._transaction() as session:
            return expire_silence(session, number, now)

    # -- the alert log -----------------------------------------------------------------
    def record_alert(self, row: AlertRow) -> int:
        with self._transaction() as session:
            inserted = session.execute(
                "INSERT INTO alerts (key, rule, severity, state, title, summary, opened_at, sent_at, suppressed, "
                "deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    row.key,
                    row.rule,
                    row.severity,
                    row.state,
                    row.title,
                    row.summary,
                    row.opened_at,
                    row.sent_at,
                    row.suppressed,
                    json.dumps(row.deliveries),
                ),
            ).fetchone()
            session.execute("DELETE FROM alerts WHERE id <= (SELECT max(id) FROM alerts) - ?", (MAX_ALERTS,))
            return int(inserted[0])

    def update_alert(self, alert_id: int, deliveries: dict[str, dict[str, object]]) -> None:
        with self._writing() as session:
            session.execute("UPDATE alerts SET deliveries = ? WHERE id = ?", (json.dumps(deliveries), alert_id))

    def recent_alerts(self, limit: int) -> list[AlertRow]:
        rows = self._query(
            "SELECT key, rule, severity, state, title, summary, opened_at, sent_at, suppressed, deliveries, id "
            "FROM alerts ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            AlertRow(
                key=row[0],
                rule=row[1],
                severity=row[2],
                state=row[3],
                title=row[4],
                summary=row[5],
                opened_at=row[6],
                sent_at=row[7],
                suppressed=row[8],
                deliveries=json.loads(row[9]),
                id=row[10],
            )
            for row in rows
        ]
