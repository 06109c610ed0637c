"""The SQL store's claims between processes: one alert per cooldown, one report per period, the
endpoint names admitted under the deployment's cap, and which processes are alive.

Each claim is decided inside a write transaction, which the back end serialises across the
deployment, so exactly one process wins it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..stats.time_windows import DAY
from .contract import Coordination, vanished
from .records import ProcessRow
from .session import SQLAccess

__all__ = ["PROCESS_COLUMNS", "SQLCoordination"]

PROCESS_COLUMNS = (
    "host, pid, started, last_flush, requests, in_flight, oldest_in_flight, oldest_request, release, capacity, lost"
)
_ADMIT_TIMEOUT_S = 0.5
_SET_REPORT_RUN = (
    "INSERT INTO report_runs (key, state, updated, detail) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated = excluded.updated, detail = excluded.detail"
)


class SQLCoordination(SQLAccess, Coordination):
    """Claims decided in write transactions; a subclass provides the connections."""

    # -- alerts: one message per cooldown, across processes ---------------------------
    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        with self._transaction() as session:
            row = session.execute("SELECT until, suppressed FROM alert_state WHERE key = ?", (key,)).fetchone()
            if row is None or now >= row[0]:
                session.execute(
                    "INSERT INTO alert_state (key, until, suppressed, changed) VALUES (?, ?, 0, ?) ON CONFLICT (key) "
                    "DO UPDATE SET until = excluded.until, suppressed = 0, changed = excluded.changed",
                    (key, now + cooldown_s, now),
                )
                return True, 0 if row is None else int(row[1])
            session.execute("UPDATE alert_state SET suppressed = suppressed + ? WHERE key = ?", (count, key))
            return False, 0

    # -- the report --------------------------------------------------------------------
    def claim_report(self, key: str, now: float, stale_s: float) -> bool:
        with self._transaction() as session:
            row = session.execute("SELECT state, updated FROM report_runs WHERE key = ?", (key,)).fetchone()
            if row is not None and not (row[0] == "sending" and row[1] < now - stale_s):
                return False
            session.execute(_SET_REPORT_RUN, (key, "sending", now, ""))
            return True

    def finish_report(self, key: str, state: str, detail: str, now: float) -> None:
        with self._writing() as session:
            session.execute(_SET_REPORT_RUN, (key, state, now, detail[:500]))

    def report_runs(self, limit: int) -> list[tuple[str, str, float, str]]:
        rows = self._look("SELECT key, state, updated, detail FROM report_runs ORDER BY updated DESC LIMIT ?", (limit,))
        return [(str(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]

    # -- the deployment ----------------------------------------------------------------
    def admit_name(self, name: str, cap: int) -> bool:
        """One short transaction for a name not seen before (rare once the routes are known)."""
        with self.time_limit(_ADMIT_TIMEOUT_S):
            with self._writing() as session:
                if session.execute("SELECT 1 FROM endpoint_names WHERE name = ?", (name,)).fetchone() is not None:
                    return True
            with self._transaction() as session:
                if session.execute("SELECT 1 FROM endpoint_names WHERE name = ?", (name,)).fetchone() is None:
                    if session.execute("SELECT count(*) FROM endpoint_names").fetchone()[0] >= cap:
                        return False
                    session.execute("INSERT INTO endpoint_names (name, admitted) VALUES (?, ?)", (name, time.time()))
            return True

    def processes(self, seen_since: float) -> list[ProcessRow]:
        rows = self._look(
            f"SELECT {PROCESS_COLUMNS} FROM processes WHERE last_flush >= ? AND stopped IS NULL ORDER BY started",
            (seen_since,),
        )
        return [ProcessRow(*row) for row in rows]

    def reap_lost(self, host: str, now: float, alive: Callable[[int], bool], stale_s: float) -> int:
        candidates = self._look(
            "SELECT host, pid, started, last_flush FROM processes "
            "WHERE stopped IS NULL AND in_flight > 0 AND last_flush >= ?",
            (now - DAY,),
        )
        gone = [
            (row_host, pid, started)
            for row_host, pid, started, last_flush in candidates
            if vanished(row_host, pid, last_flush, host=host, now=now, alive=alive, stale_s=stale_s)
        ]
        if not gone:
            return 0
        reaped = 0
        with self._writing() as session:
            for row_host, pid, started in gone:
                # Conditional: of two processes that see it gone, one counts it.
                reaped += session.execute(
                    "UPDATE processes SET stopped = ?, lost = in_flight "
                    "WHERE host = ? AND pid = ? AND started = ? AND stopped IS NULL AND in_flight > 0",
                    (now, row_host, pid, started),
                ).rowcount
        return reaped

    def lost_processes(self, since: float) -> list[ProcessRow]:
        rows = self._look(
            f"SELECT {PROCESS_COLUMNS} FROM processes WHERE lost > 0 AND stopped >= ? ORDER BY stopped DESC",
            (since,),
        )
        return [ProcessRow(*row) for row in rows]

    def access_token(self, make: Callable[[], str]) -> str:
        rows = self._look("SELECT value FROM meta WHERE key = 'access_token'")
        if rows:
            return str(rows[0][0])
        with self._writing() as session:
            session.execute(
                "INSERT INTO meta (key, value) VALUES ('access_token', ?) ON CONFLICT (key) DO NOTHING", (make(),)
            )
            return str(session.execute("SELECT value FROM meta WHERE key = 'access_token'").fetchone()[0])

    def claim_lease(self, name: str, holder: str, now: float, lease_s: float) -> bool:
        """Hold the role ``name`` until ``now + lease_s``: renewed by its holder, taken once it ran out."""
        with self._writing() as session:
            return (
                session.execute(
                    "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                    "SET holder = excluded.holder, until = excluded.until "
                    "WHERE leases.holder = excluded.holder OR leases.until < ?",
                    (name, holder, now + lease_s, now),
                ).rowcount
                == 1
            )

    def release_lease(self, name: str, holder: str) -> None:
        with self._writing() as session:
            session.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def deployment_started(self) -> float | None:
        rows = self._look("SELECT value FROM meta WHERE key = 'deployment_started'")
        return float(rows[0][0]) if rows else None
