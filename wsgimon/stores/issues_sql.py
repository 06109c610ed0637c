"""Issues in SQL, for SQLite and PostgreSQL alike: their tables, their writes and their reads.

An issue's row is shared by every process: a flush adds its occurrences inside the
write transaction, which the store serialises across the deployment, so the status
change a flush makes (new, regressed) is seen by that flush alone. Endpoints,
releases and occurrences over time are rows of their own, added to with upserts.
The DDL below is written once for both databases (SQLite reads ``BIGINT`` and
``DOUBLE PRECISION`` as its integer and real types).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..stats.issues import OPEN, IssueChange, IssueState, after_occurrences, apply_change, effective
from ..stats.time_windows import HOUR, MINUTE
from .contract import IssueStore
from .records import MAX_ISSUE_FRAMES, MAX_ISSUES, Batch, IssueRow, IssueSample, issue_count_rows, most_broken_first
from .session import Session, SQLAccess

__all__ = ["ISSUES_SCHEMA", "IssueTables", "SQLIssues"]

ISSUES_SCHEMA = """
CREATE TABLE IF NOT EXISTS issues (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    traceback TEXT,
    frames TEXT NOT NULL,
    culprit TEXT,
    count BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    status_changed DOUBLE PRECISION NOT NULL,
    resolved_at DOUBLE PRECISION,
    resolved_in TEXT,
    ignored_until DOUBLE PRECISION,
    ignored_until_count BIGINT
);
CREATE INDEX IF NOT EXISTS issues_by_last_seen ON issues (last_seen);
CREATE TABLE IF NOT EXISTS issue_endpoints (
    issue TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (issue, endpoint, method)
);
CREATE TABLE IF NOT EXISTS issue_releases (
    issue TEXT NOT NULL,
    release TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (issue, release)
);
CREATE TABLE IF NOT EXISTS issue_counts (
    resolution INTEGER NOT NULL,
    start BIGINT NOT NULL,
    issue TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (resolution, start, issue)
);
"""

_STATE_COLUMNS = "status, count, status_changed, resolved_at, resolved_in, ignored_until, ignored_until_count"
_COLUMNS = (
    "id, fingerprint, type, title, message, traceback, frames, culprit, count, first_seen, last_seen, "
    "status, status_changed, resolved_at, resolved_in, ignored_until, ignored_until_count"
)
_SET_STATE = (
    "UPDATE issues SET status = ?, count = ?, status_changed = ?, resolved_at = ?, resolved_in = ?, "
    "ignored_until = ?, ignored_until_count = ? WHERE id = ?"
)
_SET_LATEST = (
    "UPDATE issues SET title = ?, message = ?, traceback = ?, frames = ?, culprit = ?, last_seen = ? WHERE id = ?"
)
_CHUNK = 400  # ids per IN (...): under every SQLite build's limit on parameters

Query = Callable[[str, Sequence[Any]], list[Any]]


class IssueTables:
    """Reads through the store's read connection; writes inside the store's write transaction."""

    def __init__(self, query: Query) -> None:
        self._query = query

    # -- writing, inside the store's write transaction ------------------------------
    def write(self, session: Session, batch: Batch, release: str | None, now: float) -> None:
        if not batch.issues:
            return
        known: dict[str, tuple[Any, ...]] = {}
        ids = list(batch.issues)
        for offset in range(0, len(ids), _CHUNK):
            chunk = ids[offset : offset + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for row in session.execute(
                f"SELECT id, last_seen, {_STATE_COLUMNS} FROM issues WHERE id IN ({marks})", chunk
            ):
                known[str(row[0])] = tuple(row)
        started: dict[str, float | None] = {}

        def release_started(name: str) -> float | None:
            if name not in started:
                row = session.execute("SELECT first_seen FROM releases WHERE release = ?", (name,)).fetchone()
                started[name] = None if row is None else float(row[0])
            return started[name]

        for sample in batch.issues.values():
            stored = known.get(sample.id)
            if stored is None:
                state = IssueState(OPEN, 0, now)
                after_occurrences(state, sample.count, sample.last_seen, release, release_started, now)
                session.execute(
                    f"INSERT INTO issues ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        sample.id,
                        sample.fingerprint,
                        sample.type,
                        sample.title,
                        sample.message,
                        sample.traceback,
                        _frames_json(sample),
                        sample.culprit,
                        state.count,
                        sample.first_seen,
                        sample.last_seen,
                        state.status,
                        state.status_changed,
                        None,
                        None,
                        None,
                        None,
                    ),
                )
                continue
            state = IssueState(*stored[2:])
            after_occurrences(state, sample.count, sample.last_seen, release, release_started, now)
            session.execute(_SET_STATE, (*_state_values(state), sample.id))
            session.execute(
                "UPDATE issues SET first_seen = ? WHERE id = ? AND first_seen > ?",
                (sample.first_seen, sample.id, sample.first_seen),
            )
            if sample.last_seen >= float(stored[1]):
                session.execute(
                    _SET_LATEST,
                    (
                        sample.title,
                        sample.message,
                        sample.traceback,
                        _frames_json(sample),
                        sample.culprit,
                        sample.last_seen,
                        sample.id,
                    ),
                )
        self._add_details(session, batch.issues.values(), release)

    @staticmethod
    def _add_details(session: Session, samples: Iterable[IssueSample], release: str | None) -> None:
        endpoints, releases, counts = [], [], []
        for sample in samples:
            endpoints += [(sample.id, endpoint, method, n) for (endpoint, method), n in sample.endpoints.items()]
            if release is not None:
                releases.append((sample.id, release, sample.count, sample.first_seen, sample.last_seen))
            counts += [(resolution, start, sample.id, n) for (resolution, start), n in issue_count_rows(sample).items()]
        session.executemany(
            "INSERT INTO issue_endpoints (issue, endpoint, method, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (issue, endpoint, method) DO UPDATE SET count = issue_endpoints.count + excluded.count",
            endpoints,
        )
        if releases:
            session.executemany(
                "INSERT INTO issue_releases (issue, release, count, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (issue, release) DO UPDATE SET count = issue_releases.count + excluded.count, "
                "first_seen = CASE WHEN excluded.first_seen < issue_releases.first_seen "
                "THEN excluded.first_seen ELSE issue_releases.first_seen END, "
                "last_seen = CASE WHEN excluded.last_seen > issue_releases.last_seen "
                "THEN excluded.last_seen ELSE issue_releases.last_seen END",
                releases,
            )
        session.executemany(
            "INSERT INTO issue_counts (resolution, start, issue, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (resolution, start, issue) DO UPDATE SET count = issue_counts.count + excluded.count",
            counts,
        )

    def change(self, session: Session, issue_id: str, change: IssueChange, now: float) -> bool:
        row = session.execute(f"SELECT {_STATE_COLUMNS} FROM issues WHERE id = ?", (issue_id,)).fetchone()
        if row is None:
            return False
        state = IssueState(*row)
        apply_change(state, change, now)
        session.execute(_SET_STATE, (*_state_values(state), issue_id))
        return True

    @staticmethod
    def maintain(session: Session, now: float, minute_retention_s: float, retention_s: float) -> None:
        """Counts past their retention, issues not seen within it, and the least recently seen past the cap."""
        session.execute(
            "DELETE FROM issue_counts WHERE resolution = ? AND start < ?", (MINUTE, int(now - minute_retention_s))
        )
        session.execute("DELETE FROM issue_counts WHERE resolution = ? AND start < ?", (HOUR, int(now - retention_s)))
        session.execute("DELETE FROM issues WHERE last_seen < ?", (now - retention_s,))
        excess = session.execute("SELECT count(*) FROM issues").fetchone()[0] - MAX_ISSUES
        if excess > 0:
            session.execute(
                "DELETE FROM issues WHERE id IN (SELECT id FROM issues ORDER BY last_seen LIMIT ?)", (excess,)
            )
        for table in ("issue_endpoints", "issue_releases", "issue_counts"):
            session.execute(f"DELETE FROM {table} WHERE issue NOT IN (SELECT id FROM issues)")

    # -- reading --------------------------------------------------------------------
    def issues(self, seen_since: float | None, now: float) -> list[IssueRow]:
        where, params = ("WHERE last_seen >= ?", (seen_since,)) if seen_since is not None else ("", ())
        rows = [_row(row, now) for row in self._query(f"SELECT {_COLUMNS} FROM issues {where}", params)]
        if not rows:
            return rows
        chosen = f"(SELECT id FROM issues {where})"
        self._attach(rows, chosen, params)
        return rows

    def issue(self, issue_id: str, now: float) -> IssueRow | None:
        found = self._query(f"SELECT {_COLUMNS} FROM issues WHERE id = ?", (issue_id,))
        if not found:
            return None
        row = _row(found[0], now)
        self._attach([row], "(?)", (issue_id,))
        return row

    def _attach(self, rows: list[IssueRow], chosen: str, params: Sequence[Any]) -> None:
        by_id = {row.id: row for row in rows}
        for issue, endpoint, method, count in self._query(
            f"SELECT issue, endpoint, method, count FROM issue_endpoints WHERE issue IN {chosen}", params
        ):
            if issue in by_id:
                by_id[issue].endpoints.append((str(endpoint), str(method), int(count)))
        for row in rows:
            row.endpoints = most_broken_first(row.endpoints)
        for issue, release, count, first, last in self._query(
            "SELECT issue, release, count, first_seen, last_seen FROM issue_releases "
            f"WHERE issue IN {chosen} ORDER BY first_seen DESC",
            params,
        ):
            if issue in by_id:
                by_id[issue].releases.append((str(release), int(count), float(first), float(last)))

    def counts(self, resolution: int, first: int, end: int) -> list[tuple[str, int, int]]:
        rows = self._query(
            "SELECT issue, start, count FROM issue_counts WHERE resolution = ? AND start >= ? AND start < ?",
            (resolution, first, end),
        )
        return [(str(issue), int(start), int(count)) for issue, start, count in rows]

    def series(self, resolution: int, first: int, end: int, issue_id: str) -> list[tuple[int, int]]:
        rows = self._query(
            "SELECT start, count FROM issue_counts WHERE resolution = ? AND start >= ? AND start < ? AND issue = ?",
            (resolution, first, end, issue_id),
        )
        return [(int(start), int(count)) for start, count in rows]


def _state_values(state: IssueState) -> tuple[Any, ...]:
    return (
        state.status,
        state.count,
        state.status_changed,
        state.resolved_at,
        state.resolved_in,
        state.ignored_until,
        state.ignored_until_count,
    )


def _frames_json(sample: IssueSample) -> str:
    return json.dumps(sample.frames[-MAX_ISSUE_FRAMES:], separators=(",", ":"))


def _row(row: Sequence[Any], now: float) -> IssueRow:
    issue = IssueRow(
        id=str(row[0]),
        fingerprint=str(row[1]),
        type=str(row[2]),
        title=str(row[3]),
        message=str(row[4]),
        traceback=row[5],
        frames=json.loads(row[6]),
        culprit=row[7],
        count=int(row[8]),
        first_seen=float(row[9]),
        last_seen=float(row[10]),
        status=str(row[11]),
        status_changed=float(row[12]),
        resolved_at=row[13],
        resolved_in=row[14],
        ignored_until=row[15],
        ignored_until_count=None if row[16] is None else int(row[16]),
    )
    issue.status = effective(issue, now)
    return issue


class SQLIssues(SQLAccess, IssueStore):
    """The store's issues part; a subclass provides the connections and its :class:`IssueTables`."""

    _issues: IssueTables

    def issues(self, seen_since: float | None) -> list[IssueRow]:
        return self._issues.issues(seen_since, time.time())

    def issue(self, issue_id: str) -> IssueRow | None:
        return self._issues.issue(issue_id, time.time())

    def issue_counts(self, resolution: int, first: int, end: int) -> Iterable[tuple[str, int, int]]:
        return self._issues.counts(resolution, first, end)

    def issue_series(self, resolution: int, first: int, end: int, issue_id: str) -> list[tuple[int, int]]:
        return self._issues.series(resolution, first, end, issue_id)

    def change_issue(self, issue_id: str, change: IssueChange, now: float) -> IssueRow | None:
        self._fresh()  # the occurrences flushed so far are in the issue it changes
        with self._transaction() as session:
            found = self._issues.change(session, issue_id, change, now)
        return self.issue(issue_id) if found else None
