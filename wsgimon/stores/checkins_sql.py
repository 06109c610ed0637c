"""Check-in monitors and their runs in SQL, for SQLite and PostgreSQL alike.

A monitor is one row (its schedule, grace, creation, and whether the configuration declared it);
each ping adds or ends a row of ``checkin_runs``. A ping is one write transaction, which the store
serialises across the deployment: the cap on monitors and "end the newest run if it is still
running" are decided once, however many workers and hosts ping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..stats.checkins import Monitor, Run, Schedule
from .contract import MAX_CHECKINS, RUNS_PER_CHECKIN, CheckInStore, TooManyCheckIns, ping_run
from .session import Session, SQLAccess

__all__ = ["SQLCheckIns", "prune_checkins"]

_MONITOR = "name, every_s, cron, timezone, grace_s, created"
_RUN = "started, ended, ok, exit_code, error, log"
_UPSERT_MONITOR = (
    f"INSERT INTO checkin_monitors ({_MONITOR}, declared) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET every_s = excluded.every_s, cron = excluded.cron, "
    "timezone = excluded.timezone, grace_s = excluded.grace_s, "
    "declared = CASE WHEN excluded.declared = 1 THEN 1 ELSE checkin_monitors.declared END"
)


def _monitor(row: Sequence[Any]) -> Monitor:
    schedule = Schedule(
        every_s=None if row[1] is None else float(row[1]),
        cron=None if row[2] is None else str(row[2]),
        timezone=str(row[3]),
    )
    return Monitor(str(row[0]), schedule, float(row[4]), float(row[5]))


def _run(row: Sequence[Any]) -> Run:
    return Run(
        None if row[0] is None else float(row[0]),
        None if row[1] is None else float(row[1]),
        None if row[2] is None else bool(row[2]),
        None if row[3] is None else int(row[3]),
        None if row[4] is None else str(row[4]),
        None if row[5] is None else str(row[5]),
    )


def _values(monitor: Monitor, declared: bool) -> tuple[Any, ...]:
    schedule = monitor.schedule
    return (
        monitor.name,
        schedule.every_s,
        schedule.cron,
        schedule.timezone,
        monitor.grace_s,
        monitor.created,
        int(declared),
    )


def _ok(run: Run) -> int | None:
    return None if run.ok is None else int(run.ok)


def prune_checkins(session: Session, now: float, retention_s: float) -> None:
    """Inside maintenance: runs past the retention, but never a monitor's newest run nor its newest
    ended one (what its state is reckoned from: a monthly job keeps its last run)."""
    session.execute(
        "DELETE FROM checkin_runs WHERE CASE WHEN ended IS NULL THEN started ELSE ended END < ? "
        "AND id NOT IN (SELECT max(id) FROM checkin_runs GROUP BY name) "
        "AND id NOT IN (SELECT max(id) FROM checkin_runs WHERE ended IS NOT NULL GROUP BY name)",
        (now - retention_s,),
    )


class SQLCheckIns(SQLAccess, CheckInStore):
    """The store's check-ins part; the store's ``maintain`` calls :func:`prune_checkins`."""

    def declare_checkin(self, monitor: Monitor) -> None:
        with self._transaction() as session:
            session.execute(_UPSERT_MONITOR, _values(monitor, True))

    def checkin_ping(
        self,
        name: str,
        kind: str,
        now: float,
        *,
        declare: Monitor | None = None,
        exit_code: int | None = None,
        duration_s: float | None = None,
        error: str | None = None,
        log: str | None = None,
    ) -> Monitor | None:
        with self._transaction() as session:
            row = session.execute(
                f"SELECT {_MONITOR}, declared FROM checkin_monitors WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                if declare is None:
                    return None
                if session.execute("SELECT count(*) FROM checkin_monitors").fetchone()[0] >= MAX_CHECKINS:
                    raise TooManyCheckIns(
                        f"the store keeps {MAX_CHECKINS} check-in monitors already; a ping cannot add {name!r}"
                    )
                session.execute(_UPSERT_MONITOR, _values(declare, False))
                monitor = declare
            elif declare is not None and not row[6]:
                monitor = Monitor(name, declare.schedule, declare.grace_s, float(row[5]))
                session.execute(_UPSERT_MONITOR, _values(monitor, False))
            else:
                monitor = _monitor(row)
            newest = session.execute(
                f"SELECT id, {_RUN} FROM checkin_runs WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
            last = None if newest is None else _run(newest[1:])
            run, ends_last = ping_run(last, kind, now, exit_code, duration_s, error, log)
            if ends_last:
                session.execute(
                    "UPDATE checkin_runs SET ended = ?, ok = ?, exit_code = ?, error = ?, log = ? WHERE id = ?",
                    (run.ended, _ok(run), run.exit_code, run.error, run.log, newest[0]),
                )
            else:
                session.execute(
                    f"INSERT INTO checkin_runs (name, {_RUN}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, run.started, run.ended, _ok(run), run.exit_code, run.error, run.log),
                )
                session.execute(
                    "DELETE FROM checkin_runs WHERE name = ? AND id NOT IN "
                    "(SELECT id FROM checkin_runs WHERE name = ? ORDER BY id DESC LIMIT ?)",
                    (name, name, RUNS_PER_CHECKIN),
                )
            return monitor

    def checkin_monitors(self) -> list[Monitor]:
        return [_monitor(row) for row in self._query(f"SELECT {_MONITOR} FROM checkin_monitors ORDER BY name")]

    def checkin_runs(self, name: str, limit: int) -> list[Run]:
        rows = self._query(
            f"SELECT {_RUN} FROM checkin_runs WHERE name = ? ORDER BY id DESC LIMIT ?", (name, max(0, limit))
        )
        return [_run(row) for row in reversed(rows)]

    def all_checkin_runs(self, limit: int) -> dict[str, list[Run]]:
        rows = self._query(
            f"SELECT name, {_RUN} FROM (SELECT name, id, {_RUN}, "
            "row_number() OVER (PARTITION BY name ORDER BY id DESC) AS newest FROM checkin_runs) AS ranked "
            "WHERE newest <= ? ORDER BY name, id",
            (max(0, limit),),
        )
        found: dict[str, list[Run]] = {}
        for row in rows:
            found.setdefault(str(row[0]), []).append(_run(row[1:]))
        return found

    def delete_checkin(self, name: str) -> bool:
        with self._transaction() as session:
            session.execute("DELETE FROM checkin_runs WHERE name = ?", (name,))
            return bool(session.execute("DELETE FROM checkin_monitors WHERE name = ?", (name,)).rowcount)
