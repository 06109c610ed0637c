"""What the SQLite and PostgreSQL stores share: the metric tables' writes, compaction and reads.

Each process owns its rows (``writer`` = host|pid|start) and overwrites them
with its running totals in one transaction per flush; readers sum every
writer's rows in SQL; maintenance folds the rows of closed periods into one
shared row and prunes what is past retention. The other parts of the store are
mixed in: issues (:mod:`.issues_sql`), alerting (:mod:`.alerting_sql`), the
claims between processes (:mod:`.coordination_sql`), dependencies and check-ins
(:mod:`.checkins_sql`), all decided inside write transactions that each back end
serialises across the deployment (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
transaction-level advisory lock).

Longer than most modules (about 540 lines) on purpose: the writes, the compaction and
the reads of the metric tables share one invariant, this process's own rows as last
committed (``_own``, ``_unsure_before``), and are checked against it in one place.

The statements are written once, in the SQL both dialects speak (upserts with
``ON CONFLICT``, ``CASE`` instead of the scalar ``min``/``max``, ``?``
placeholders that the PostgreSQL session turns into ``%s``). A back end
provides its connections, its DDL and the few expressions that differ.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..stats.aggregate import Aggregate
from ..stats.profiles import Profile
from ..stats.sketch import QuantileSketch
from ..stats.spent import Spent
from ..stats.time_windows import DAY, HOUR, MINUTE, TEN_MINUTES, TOTAL
from .alerting_sql import ALERTING_SCHEMA, SQLAlerting
from .checkins_sql import SQLCheckIns, prune_checkins
from .contract import Store
from .coordination_sql import PROCESS_COLUMNS, SQLCoordination
from .dependencies_sql import SQLDependencies, prune_dependencies, write_dependencies
from .issues_sql import ISSUES_SCHEMA, IssueTables, SQLIssues
from .records import (
    ALL,
    RELEASE_TOTAL,
    SLOW_PER_ENDPOINT,
    STORED_RESOLUTIONS,
    Batch,
    EndpointKey,
    ErrorSample,
    ProcessRow,
    ReleaseRow,
    RequestEntry,
    SlowRequest,
    release_rollups,
    rollups,
)
from .schema import AGGREGATE_COLUMNS, REQUEST_COLUMNS, SPENT_COLUMNS, Dialect, ddl, names, placeholders
from .session import Cursor, Session

__all__ = ["APPLICATION", "SCHEMA_VERSION", "Cursor", "Session", "SQLStore", "schema_statements"]

# 2: endpoint_names (the deployment-wide endpoint cap); 3: alert_state, alerts; 4: report_runs;
# 5: buckets.histogram (exact counts at the metrics' bucket bounds); 6: slow_requests,
# requests.sampled, processes' requests in flight; 7: releases, release_buckets, processes.release;
# 8: issues, issue_endpoints, issue_releases, issue_counts; 9: dependencies, dependency_uses,
# buckets.spent, release_buckets.spent, what requests and slow requests spent, checkin_monitors, checkin_runs
SCHEMA_VERSION = 9
APPLICATION = "wsgimon"
_MAINTENANCE_EVERY_S = 60.0
_DEPLOYMENT_GAP_S = 60.0


_BUCKET_COLUMNS = names(AGGREGATE_COLUMNS)
_KEY_COLUMNS = "resolution, endpoint, method, start, writer"
_REQUEST_COLUMNS = names(REQUEST_COLUMNS)
_SPENT_COLUMNS = names(SPENT_COLUMNS)
_LOGGED = f"{_REQUEST_COLUMNS}, sampled, {_SPENT_COLUMNS}"
_SLOW = f"{_REQUEST_COLUMNS}, profile, {_SPENT_COLUMNS}, queries"
_RELEASE_KEY = "release = ? AND start = ? AND endpoint = ? AND method = ?"
_UPSERT_RELEASE_ROW = (
    f"INSERT INTO release_buckets (release, start, endpoint, method, {_BUCKET_COLUMNS}) "
    f"VALUES ({placeholders(4 + len(AGGREGATE_COLUMNS))}) ON CONFLICT (release, start, endpoint, method) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _BUCKET_COLUMNS.split(", "))
)
_WHERE_KEY = "resolution = ? AND endpoint = ? AND method = ? AND start = ? AND writer = ?"
_SELECT_OWN = f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE {_WHERE_KEY}"
_UPDATE_OWN = (
    "UPDATE buckets SET " + ", ".join(f"{name} = ?" for name, _kind in AGGREGATE_COLUMNS) + f" WHERE {_WHERE_KEY}"
)
_UPSERT_OWN = (
    f"INSERT INTO buckets ({_KEY_COLUMNS}, {_BUCKET_COLUMNS}) "
    f"VALUES ({placeholders(5 + len(AGGREGATE_COLUMNS))}) "
    f"ON CONFLICT ({_KEY_COLUMNS}) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _BUCKET_COLUMNS.split(", "))
)
# ``writer != ''`` as a literal, so both databases can use the partial index buckets_unshared.
_ADOPT_SOLE_ROWS = """
UPDATE buckets SET writer = ''
WHERE resolution = ? AND start < ? AND writer != '' AND NOT EXISTS (
    SELECT 1 FROM buckets AS other
    WHERE other.resolution = buckets.resolution AND other.endpoint = buckets.endpoint
    AND other.method = buckets.method AND other.start = buckets.start AND other.writer != buckets.writer
)
"""
_SET_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
_SHARED = ""  # the writer of compacted rows (written as the literal '' in the statements above)
# Rows of closed periods are folded into the shared row this long after the period ends.
_COMPACT_AFTER = {MINUTE: 2 * MINUTE, TEN_MINUTES: 5 * MINUTE, HOUR: 10 * MINUTE, DAY: 10 * MINUTE}


def schema_statements(dialect: Dialect) -> list[str]:
    """Every table and index of the current schema, each safe to run again."""
    shared = [part for text in (ISSUES_SCHEMA, ALERTING_SCHEMA) for part in text.split(";") if part.strip()]
    return [*ddl(dialect), *shared]


class SQLStore(SQLIssues, SQLAlerting, SQLCoordination, SQLDependencies, SQLCheckIns, Store):
    """The store logic over SQL; a subclass opens the connections and serialises write transactions."""

    #: The slot of a bucket for :meth:`sums`, from its ``start``, the first start and the slot's length.
    _SLOT = "CAST((start - ?) / ? AS INTEGER)"

    def __init__(self, *, recent_requests: int, minute_retention_s: float, retention_s: float) -> None:
        self.minute_retention_s = minute_retention_s
        self.hour_retention_s = retention_s
        self._retention_s = retention_s
        self._recent_requests = recent_requests
        # This process's own bucket rows, exactly as last committed: a flush adds its
        # deltas here and overwrites its rows, with no read and no decode of stored data.
        self._own: dict[tuple[int, int, str, str], Aggregate] = {}
        # Per resolution: buckets starting before this may hold a row of ours that _own
        # no longer knows (forgotten when closed, or after a failed write); later ones cannot.
        self._unsure_before: dict[int, float] = {}
        self._writer = ""
        self._issues = IssueTables(self._query)

    def _after_maintenance(self, session: Session) -> None:
        """Outside the maintenance transaction (SQLite checkpoints its WAL here)."""

    def _forget_own_rows(self) -> None:
        self._own.clear()
        self._unsure_before = dict.fromkeys(STORED_RESOLUTIONS, time.time() + MINUTE)

    # -- writing ---------------------------------------------------------------------
    def write(self, batch: Batch, process: ProcessRow) -> None:
        with self._writing() as session:
            writer = f"{process.host}|{process.pid}|{process.started!r}"
            if writer != self._writer:
                # A new identity has written nothing yet.
                self._own.clear()
                self._unsure_before.clear()
                self._writer = writer
            self._begin(session)
            try:
                own = self._write_buckets(session, batch)
                self._write_requests(session, batch.requests)
                self._write_slow(session, batch.slow)
                self._write_errors(session, batch)
                if batch.overflowed:
                    session.execute(
                        "INSERT INTO counters (name, value) VALUES ('overflowed', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                        (batch.overflowed,),
                    )
                self._write_process(session, process)
                if process.release is not None:
                    self._write_release(session, batch, process)
                self._issues.write(session, batch, process.release, process.last_flush)
                write_dependencies(session, batch, process.release)
                session.execute("COMMIT")
            except BaseException:
                self._forget_own_rows()
                if session.in_transaction:
                    session.execute("ROLLBACK")
                raise
            self._own.update(own)
            self._forget_closed(process.last_flush)

    def _forget_closed(self, now: float) -> None:
        # Late records for a forgotten bucket take the slow path (read our row, merge).
        horizon = {MINUTE: now - 5 * MINUTE, TEN_MINUTES: now - HOUR, HOUR: now - 2 * HOUR, DAY: now - 2 * DAY}
        for key in [k for k in self._own if k[0] in horizon and k[1] < horizon[k[0]]]:
            del self._own[key]
            resolution, start = key[0], key[1]
            if start >= self._unsure_before.get(resolution, -math.inf):
                self._unsure_before[resolution] = start + 1

    def _write_buckets(self, session: Session, batch: Batch) -> dict[tuple[int, int, str, str], Aggregate]:
        """Overwrite this process's rows with its running totals; returns them for after COMMIT."""
        written: dict[tuple[int, int, str, str], Aggregate] = {}
        writer = self._writer
        updates: list[tuple[Any, ...]] = []
        inserts: list[tuple[Any, ...]] = []
        updated: list[tuple[tuple[int, int, str, str], tuple[Any, ...], Aggregate, Aggregate]] = []
        for (resolution, start), per_key in rollups(batch).items():
            for (endpoint, method), delta in per_key.items():
                own_key = (resolution, start, endpoint, method)
                where = (resolution, endpoint, method, start, writer)
                known = self._own.get(own_key)
                if known is not None:
                    # Merged in place: if the transaction fails, write() forgets every row.
                    known.merge(delta)
                    updates.append((*_encode(known), *where))
                    updated.append((own_key, where, known, delta))
                    continue
                if start >= self._unsure_before.get(resolution, -math.inf):
                    # Surely no row of ours yet: insert without looking (the delta is ours to keep).
                    inserts.append((*where, *_encode(delta)))
                    written[own_key] = delta
                    continue
                stored = session.execute(_SELECT_OWN, where).fetchone()
                total = _decode(stored) if stored is not None else Aggregate()
                total.merge(delta)
                session.execute(_UPSERT_OWN, (*where, *_encode(total)))
                written[own_key] = total
        if inserts:
            session.executemany(_UPSERT_OWN, inserts)
        if updates and session.executemany(_UPDATE_OWN, updates).rowcount != len(updates):
            # Some of our rows were compacted into the shared row meanwhile: those start
            # anew with only their delta, so nothing is counted twice.
            for own_key, where, known, delta in updated:
                if session.execute(f"SELECT 1 FROM buckets WHERE {_WHERE_KEY}", where).fetchone() is None:
                    fresh = Aggregate()
                    fresh.merge(delta)
                    session.execute(_UPSERT_OWN, (*where, *_encode(fresh)))
                    written[own_key] = fresh
                else:
                    written[own_key] = known
        else:
            written.update((own_key, known) for own_key, _where, known, _delta in updated)
        return written

    def _write_requests(self, session: Session, requests: list[RequestEntry]) -> None:
        if not requests:
            return
        session.executemany(
            f"INSERT INTO requests ({_LOGGED}) VALUES ({placeholders(14)})",
            [(*entry[:9], int(entry.sampled), *entry[10:]) for entry in requests[-self._recent_requests :]],
        )
        session.execute(
            "DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?",
            (self._recent_requests,),
        )

    def _write_slow(self, session: Session, slow: list[SlowRequest]) -> None:
        """Keep the slowest SLOW_PER_ENDPOINT per endpoint and method, with their profiles."""
        if not slow:
            return
        session.executemany(
            f"INSERT INTO slow_requests ({_SLOW}) VALUES ({placeholders(15)})",
            [(*s.request[:9], _compact(s.profile.to_json()), *s.request[10:], _compact(s.queries)) for s in slow],
        )
        session.executemany(
            "DELETE FROM slow_requests WHERE endpoint = ? AND method = ? AND id NOT IN (SELECT id FROM slow_requests "
            "WHERE endpoint = ? AND method = ? ORDER BY duration_ms DESC LIMIT ?)",
            [(*key, *key, SLOW_PER_ENDPOINT) for key in {(s.request.endpoint, s.request.method) for s in slow}],
        )

    def _write_errors(self, session: Session, batch: Batch) -> None:
        if not batch.errors:
            return
        newer = "excluded.last_seen >= error_samples.last_seen"
        session.executemany(
            "INSERT INTO error_samples (type, endpoint, method, count, first_seen, last_seen, message, traceback) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (type, endpoint, method) DO UPDATE SET "
            "count = error_samples.count + excluded.count, "
            "first_seen = CASE WHEN excluded.first_seen < error_samples.first_seen "
            "THEN excluded.first_seen ELSE error_samples.first_seen END, "
            f"message = CASE WHEN {newer} THEN excluded.message ELSE error_samples.message END, "
            f"traceback = CASE WHEN {newer} THEN excluded.traceback ELSE error_samples.traceback END, "
            f"last_seen = CASE WHEN {newer} THEN excluded.last_seen ELSE error_samples.last_seen END",
            [
                (s.type, s.endpoint, s.method, s.count, s.first_seen, s.last_seen, s.message, s.traceback)
                for s in batch.errors.values()
            ],
        )

    def _write_process(self, session: Session, process: ProcessRow) -> None:
        known = session.execute(
            "SELECT 1 FROM processes WHERE host = ? AND pid = ? AND started = ?",
            (process.host, process.pid, process.started),
        ).fetchone()
        if known is None:
            # A process that starts after a quiet gap begins a new deployment.
            last_activity = session.execute("SELECT max(last_flush) FROM processes").fetchone()[0]
            if last_activity is None or last_activity < process.started - _DEPLOYMENT_GAP_S:
                session.execute(_SET_META, ("deployment_started", repr(process.started)))
        session.execute(
            f"INSERT INTO processes ({PROCESS_COLUMNS}) VALUES ({placeholders(11)}) "
            "ON CONFLICT (host, pid, started) DO UPDATE SET last_flush = excluded.last_flush, "
            "requests = excluded.requests, in_flight = excluded.in_flight, "
            "oldest_in_flight = excluded.oldest_in_flight, oldest_request = excluded.oldest_request, "
            "capacity = excluded.capacity",
            (
                process.host,
                process.pid,
                process.started,
                process.last_flush,
                process.requests,
                process.in_flight,
                process.oldest_in_flight,
                process.oldest_request,
                process.release,
                process.capacity,
                0,
            ),
        )

    def _write_release(self, session: Session, batch: Batch, process: ProcessRow) -> None:
        """A release's rows are shared, not per writer: the write transaction is serialised across the
        deployment, so reading, merging and writing them back within it counts each request once."""
        session.execute(
            "INSERT INTO releases (release, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT (release) DO UPDATE "
            "SET first_seen = CASE WHEN excluded.first_seen < releases.first_seen THEN excluded.first_seen "
            "ELSE releases.first_seen END, last_seen = CASE WHEN excluded.last_seen > releases.last_seen "
            "THEN excluded.last_seen ELSE releases.last_seen END",
            (process.release, process.started, process.last_flush),
        )
        upserts = []
        for start, per_key in release_rollups(batch).items():
            for (endpoint, method), delta in per_key.items():
                where = (process.release, start, endpoint, method)
                stored = session.execute(
                    f"SELECT {_BUCKET_COLUMNS} FROM release_buckets WHERE {_RELEASE_KEY}", where
                ).fetchone()
                total = _decode(stored) if stored is not None else Aggregate()
                total.merge(delta)
                upserts.append((*where, *_encode(total)))
        if upserts:
            session.executemany(_UPSERT_RELEASE_ROW, upserts)

    def process_stopped(self, process: ProcessRow) -> None:
        with self._writing() as session:
            session.execute(
                "UPDATE processes SET stopped = ? WHERE host = ? AND pid = ? AND started = ?",
                (process.last_flush, process.host, process.pid, process.started),
            )

    def maintain(self, now: float) -> None:
        """Prune expired buckets; one process per minute does it, decided by a claimed row."""
        with self._writing() as session:
            self._begin(session)
            try:
                row = session.execute("SELECT value FROM meta WHERE key = 'maintained_at'").fetchone()
                if row is not None and float(row[0]) > now - _MAINTENANCE_EVERY_S:
                    session.execute("COMMIT")
                    return
                session.execute(_SET_META, ("maintained_at", repr(now)))
                for resolution, keep_s in (
                    (MINUTE, self.minute_retention_s),
                    (TEN_MINUTES, self.minute_retention_s),
                    (HOUR, self._retention_s),
                    (DAY, self._retention_s),
                ):
                    session.execute(
                        "DELETE FROM buckets WHERE resolution = ? AND start < ?",
                        (resolution, int(now - keep_s) - resolution),
                    )
                self._compact(session, now)
                session.execute("DELETE FROM error_samples WHERE last_seen < ?", (now - self._retention_s,))
                session.execute("DELETE FROM slow_requests WHERE time < ?", (now - self.minute_retention_s,))
                # Names not seen within the retention go, all-time totals included (a path that
                # once leaked a secret is not kept for ever).
                session.execute(
                    "DELETE FROM buckets WHERE resolution = ? AND last_seen < ? AND NOT (endpoint = ? AND method = ?)",
                    (TOTAL, now - self._retention_s, *ALL),
                )
                session.execute(
                    "DELETE FROM endpoint_names WHERE admitted < ? AND name NOT IN "
                    "(SELECT endpoint FROM buckets WHERE resolution = ?)",
                    (now - self._retention_s, TOTAL),
                )
                session.execute("DELETE FROM processes WHERE last_flush < ?", (now - DAY,))
                # The newest max_releases releases are kept; their hour rows for the retention.
                session.execute(
                    "DELETE FROM releases WHERE release NOT IN "
                    "(SELECT release FROM releases ORDER BY first_seen DESC LIMIT ?)",
                    (self.max_releases,),
                )
                session.execute(
                    "DELETE FROM release_buckets WHERE release NOT IN (SELECT release FROM releases) "
                    "OR (start != ? AND start < ?)",
                    (RELEASE_TOTAL, now - self._retention_s),
                )
                session.execute(
                    "DELETE FROM alert_state WHERE firing = 0 AND suppressed = 0 AND until < ?", (now - DAY,)
                )
                IssueTables.maintain(session, now, self.minute_retention_s, self._retention_s)
                prune_dependencies(session, now, self.minute_retention_s, self._retention_s)
                prune_checkins(session, now, self._retention_s)
                session.execute("COMMIT")
            except BaseException:
                if session.in_transaction:
                    session.execute("ROLLBACK")
                raise
            self._after_maintenance(session)

    def _compact(self, session: Session, now: float) -> None:
        """Fold per-process rows of closed periods (and of gone processes' totals) into one row.

        Safe against a writer still holding a row: its next update finds the row gone
        and starts a new one with only its new delta.
        """
        live = {
            f"{host}|{pid}|{started!r}"
            for host, pid, started in session.execute(
                "SELECT host, pid, started FROM processes WHERE stopped IS NULL AND last_flush >= ?", (now - HOUR,)
            )
        }
        rows = []
        for resolution, after in _COMPACT_AFTER.items():
            # A closed bucket written by one process alone needs no merge: it becomes the shared row.
            session.execute(_ADOPT_SOLE_ROWS, (resolution, int(now - resolution - after)))
            rows += session.execute(
                f"SELECT {_KEY_COLUMNS}, {_BUCKET_COLUMNS} FROM buckets "
                "WHERE resolution = ? AND start < ? AND writer != ''",
                (resolution, int(now - resolution - after)),
            ).fetchall()
        rows += [
            row
            for row in session.execute(
                f"SELECT {_KEY_COLUMNS}, {_BUCKET_COLUMNS} FROM buckets WHERE resolution = ? AND writer != ''",
                (TOTAL,),
            )
            if row[4] not in live
        ]
        merged: dict[tuple[int, str, str, int], Aggregate] = {}
        for row in rows:
            key = (row[0], row[1], row[2], row[3])
            target = merged.get(key)
            if target is None:
                stored = session.execute(_SELECT_OWN, (*key, _SHARED)).fetchone()
                target = merged[key] = _decode(stored) if stored is not None else Aggregate()
            target.merge(_decode(row[5:]))
        if rows:
            session.executemany(f"DELETE FROM buckets WHERE {_WHERE_KEY}", [row[:5] for row in rows])
            session.executemany(_UPSERT_OWN, [(*key, _SHARED, *_encode(agg)) for key, agg in merged.items()])

    # -- reading ---------------------------------------------------------------------
    def buckets(
        self, resolution: int, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        if key is None:
            rows = self._query(
                f"SELECT start, endpoint, method, {_BUCKET_COLUMNS} FROM buckets "
                "WHERE resolution = ? AND start >= ? AND start < ? AND NOT (endpoint = ? AND method = ?)",
                (resolution, first, end, *ALL),
            )
        else:
            rows = self._query(
                f"SELECT start, endpoint, method, {_BUCKET_COLUMNS} FROM buckets "
                "WHERE resolution = ? AND endpoint = ? AND method = ? AND start >= ? AND start < ?",
                (resolution, key[0], key[1], first, end),
            )
        return [(row[0], (row[1], row[2]), _decode(row[3:])) for row in rows]

    def sums(
        self, resolution: int, first: int, end: int, slot_s: float
    ) -> Iterable[tuple[int, EndpointKey, int, float]]:
        # Summed into slots by the database: a 1-hour window over 1,000 endpoints is 60,000 minute rows.
        rows = self._query(
            f"SELECT {self._SLOT} AS slot, endpoint, method, CAST(sum(count) AS BIGINT), sum(total_ms) "
            "FROM buckets WHERE resolution = ? AND start >= ? AND start < ? AND NOT (endpoint = ? AND method = ?) "
            "GROUP BY endpoint, method, slot",
            (first, float(slot_s), resolution, first, end, *ALL),
        )
        return [(int(row[0]), (row[1], row[2]), int(row[3]), float(row[4])) for row in rows]

    def releases(self) -> list[ReleaseRow]:
        rows = self._query("SELECT release, first_seen, last_seen FROM releases ORDER BY first_seen DESC")
        return [ReleaseRow(str(r[0]), float(r[1]), float(r[2])) for r in rows[: self.max_releases]]

    def release_buckets(
        self, release: str, first: int, end: int, key: EndpointKey | None
    ) -> Iterable[tuple[int, EndpointKey, Aggregate]]:
        if key is None:
            rows = self._query(
                f"SELECT start, endpoint, method, {_BUCKET_COLUMNS} FROM release_buckets "
                "WHERE release = ? AND start >= ? AND start < ?",
                (release, first, end),
            )
        else:
            rows = self._query(
                f"SELECT start, endpoint, method, {_BUCKET_COLUMNS} FROM release_buckets "
                "WHERE release = ? AND endpoint = ? AND method = ? AND start >= ? AND start < ?",
                (release, key[0], key[1], first, end),
            )
        return [(int(row[0]), (row[1], row[2]), _decode(row[3:])) for row in rows]

    def error_counts(
        self, resolution: int, first: int, end: int
    ) -> Iterable[tuple[EndpointKey, dict[str, int], float]]:
        rows = self._query(
            "SELECT endpoint, method, error_types, last_seen FROM buckets "
            "WHERE resolution = ? AND start >= ? AND start < ? AND error_types != '{}' "
            "AND NOT (endpoint = ? AND method = ?)",
            (resolution, first, end, *ALL),
        )
        return [((row[0], row[1]), json.loads(row[2]), row[3]) for row in rows]

    def recent_requests(self, limit: int) -> list[RequestEntry]:
        rows = self._query(f"SELECT {_LOGGED} FROM requests ORDER BY id DESC LIMIT ?", (limit,))
        return [RequestEntry._make((*row[:9], bool(row[9]), *row[10:])) for row in rows]

    def slow_requests(self, endpoint: str | None, limit: int) -> list[SlowRequest]:
        oldest = time.time() - self.minute_retention_s
        if endpoint is None:
            rows = self._query(
                f"SELECT {_SLOW} FROM slow_requests WHERE time >= ? ORDER BY duration_ms DESC LIMIT ?",
                (oldest, limit),
            )
        else:
            rows = self._query(
                f"SELECT {_SLOW} FROM slow_requests WHERE endpoint = ? AND time >= ? ORDER BY duration_ms DESC LIMIT ?",
                (endpoint, oldest, limit),
            )
        return [
            SlowRequest(
                RequestEntry._make((*row[:9], True, *row[10:14])),
                Profile.from_json(json.loads(row[9])),
                json.loads(row[14]),
            )
            for row in rows
        ]

    def error_samples(self) -> dict[tuple[str, str, str], ErrorSample]:
        rows = self._query(
            "SELECT type, endpoint, method, count, first_seen, last_seen, message, traceback FROM error_samples"
        )
        return {(row[0], row[1], row[2]): ErrorSample(*row) for row in rows}

    def overflowed(self) -> int:
        rows = self._query("SELECT value FROM counters WHERE name = 'overflowed'")
        return int(rows[0][0]) if rows else 0


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _encode(agg: Aggregate) -> tuple[Any, ...]:
    return (
        agg.count,
        agg.errors,
        agg.client_errors,
        agg.total_ms,
        agg.min_ms if agg.count else None,
        agg.max_ms,
        agg.sketch.to_bytes(),
        json.dumps(agg.status_codes, separators=(",", ":")),
        json.dumps(agg.error_types, separators=(",", ":")),
        agg.last_seen,
        json.dumps(agg.histogram, separators=(",", ":")),
        "" if agg.spent is None else agg.spent.to_text(),
    )


def _decode(row: Sequence[Any]) -> Aggregate:
    # Readers decode thousands of rows: skip Aggregate.__init__ and its empty sketch.
    agg = Aggregate.__new__(Aggregate)
    agg.count, agg.errors, agg.client_errors, agg.total_ms = row[0], row[1], row[2], row[3]
    agg.min_ms = float("inf") if row[4] is None else row[4]
    agg.max_ms = row[5]
    agg.sketch = QuantileSketch.from_bytes(bytes(row[6]))
    agg.status_codes = {int(code): n for code, n in json.loads(row[7]).items()}
    agg.error_types = json.loads(row[8]) if row[8] != "{}" else {}
    agg.last_seen = row[9]
    agg.histogram = json.loads(row[10]) if row[10] != "{}" else {}
    agg.spent = Spent.from_text(row[11]) if row[11] else None
    return agg
