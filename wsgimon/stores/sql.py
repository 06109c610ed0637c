"""What the SQLite and PostgreSQL stores share: the metric tables' writes, folding and reads.

A flush appends and rewrites nothing: its statistics as one journal row (encoded before the
transaction opens), its log lines, its process's row. No flush waits for another process's, so
the number of writers does not serialise the deployment. One process at a time, the maintainer
(holding a lease in the store, handed over when it stops or runs out), folds the journal into
shared rows at every resolution, in bounded transactions serialised across the deployment
(SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's transaction-level advisory lock), and only there are
shared rows read and written: buckets, releases, issues, error samples, dependencies. A read first
folds what is pending, so it sees every flush committed before it; readers merge at most one row
per endpoint, resolution and period. Rows of stores written before the journal existed (one per
writer) are folded into the shared row by maintenance (``_compact``).

The other parts of the store are mixed in: issues (:mod:`.issues_sql`), alerting
(:mod:`.alerting_sql`), the claims between processes (:mod:`.coordination_sql`), dependencies and
check-ins (:mod:`.checkins_sql`).

The statements are written once, in the SQL both dialects speak (upserts with
``ON CONFLICT``, ``CASE`` instead of the scalar ``min``/``max``, ``?``
placeholders that the PostgreSQL session turns into ``%s``). A back end
provides its connections, its DDL and the few expressions that differ.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..internal_errors import logger
from ..stats.aggregate import Aggregate
from ..stats.profiles import Profile
from ..stats.time_windows import DAY, HOUR, MINUTE, TEN_MINUTES, TOTAL
from .alerting_sql import ALERTING_SCHEMA, SQLAlerting
from .batch_codec import CorruptPayload, decode_aggregate, decode_batch, encode_aggregate, encode_batch, has_statistics
from .checkins_sql import SQLCheckIns, prune_checkins
from .contract import MAINTENANCE_S, READ_TIMEOUT_S, JournalEntry, Store, StoreUnavailable
from .coordination_sql import PROCESS_COLUMNS, SQLCoordination
from .dependencies_sql import SQLDependencies, prune_dependencies, write_dependencies
from .issues_sql import ISSUES_SCHEMA, IssueTables, SQLIssues
from .records import (
    ALL,
    RELEASE_TOTAL,
    SLOW_PER_ENDPOINT,
    Batch,
    EndpointKey,
    ErrorSample,
    ProcessRow,
    ReleaseRow,
    RequestEntry,
    SlowRequest,
    merge_into,
    release_rollups,
    rollups,
)
from .schema import AGGREGATE_COLUMNS, REQUEST_COLUMNS, SPENT_COLUMNS, Dialect, ddl, names, placeholders
from .session import Cursor, Session
from .settled_totals import SettledTotals

__all__ = ["APPLICATION", "SCHEMA_VERSION", "Cursor", "Session", "SQLStore", "schema_statements"]

# 2: endpoint_names (the deployment-wide endpoint cap); 3: alert_state, alerts; 4: report_runs;
# 5: buckets.histogram (exact counts at the metrics' bucket bounds); 6: slow_requests,
# requests.sampled, processes' requests in flight; 7: releases, release_buckets, processes.release;
# 8: issues, issue_endpoints, issue_releases, issue_counts; 9: dependencies, dependency_uses,
# buckets.spent, release_buckets.spent, what requests and slow requests spent, checkin_monitors, checkin_runs;
# 10: journal (flushes append, the maintainer folds), leases
SCHEMA_VERSION = 10
APPLICATION = "wsgimon"
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
_SELECT_ROW = f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE {_WHERE_KEY}"
_UPSERT_ROW = (
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
_SHARED = ""  # the writer of shared rows (written as the literal '' in the statements above)
_SELECT_SHARED_SLOT = (
    f"SELECT endpoint, method, {_BUCKET_COLUMNS} FROM buckets WHERE resolution = ? AND start = ? AND writer = ''"
)
_APPEND = "INSERT INTO journal (writer, release, started, written, payload) VALUES (?, ?, ?, ?, ?)"
_SELECT_JOURNAL = "SELECT id, writer, release, started, written, payload FROM journal"
_READ_JOURNAL = f"{_SELECT_JOURNAL} ORDER BY id LIMIT ?"
_READ_OWN_JOURNAL = f"{_SELECT_JOURNAL} WHERE writer = ? ORDER BY id LIMIT ?"
_READ_OWN_PENDING = "SELECT id FROM journal WHERE writer = ? LIMIT 1"
_PENDING = "SELECT id FROM journal LIMIT ?"
# What a settled range's kept totals are checked against (see settled_totals).
_SETTLED_SIGNATURE = (
    "SELECT count(*), sum(count), sum(total_ms), max(last_seen) FROM buckets "
    "WHERE resolution = ? AND start >= ? AND start < ?"
)
_TRIM_SLOW = (
    "DELETE FROM slow_requests WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
    "(PARTITION BY endpoint, method ORDER BY duration_ms DESC, id) AS rank FROM slow_requests) AS ranked "
    "WHERE rank > ?)"
)
#: journal rows folded per transaction, and how long one fold may go on
_FOLD_ROWS = 128
_FOLD_BYTES = 1 << 20  # of encoded journal rows (compressed), at least one row
_FOLD_BUDGET_S = 2.0
#: the maintainer's own reads fold a journal this short whole (else only their own rows)
_MAINTAINER_READ_FOLDS = 16
_CHUNK = 400  # ids per IN (...): under every SQLite build's limit on parameters
_UNBOUNDED = 1 << 40  # minutes a fold merges (a spooled batch may span hours)
#: the maintainer's lease, how often its holder renews it and how often the others look at it
_MAINTAINER = "maintainer"
_LEASE_S = 10.0
_LEASE_RENEW_S = 1.0
_LEASE_CHECK_S = 5.0

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
        self._writer = ""
        # The maintainer's lease: held by this store now, and when to renew or look at it next.
        self._lease_held = False
        self._lease_check_at = 0.0
        # Reads fold the journal first (see _fresh): not from inside a fold or a write of this thread.
        self._folding = threading.local()
        self._writing_thread: int | None = None
        self._issues = IssueTables(self._query)
        self._settled = SettledTotals()

    def _after_maintenance(self, session: Session) -> None:
        """Outside the maintenance transaction (SQLite checkpoints its WAL here)."""

    # -- writing: appends, no deployment-wide lock -----------------------------------
    def write(self, batch: Batch, process: ProcessRow) -> None:
        """Append the batch: its statistics as one journal row, its log lines, this process's row.

        Nothing here waits for another process: no shared row is read or rewritten, so
        writers never queue behind each other; the maintainer folds the journal later.
        """
        payload = encode_batch(batch) if has_statistics(batch) else None
        self._writer = f"{process.host}|{process.pid}|{process.started!r}"
        with self._transaction(appends_only=True) as session:
            if payload is not None:
                session.execute(_APPEND, (self._writer, process.release, process.started, process.last_flush, payload))
            self._write_requests(session, batch.requests)
            self._write_slow(session, batch.slow)
            self._write_process(session, process)

    def append_payloads(self, payloads: Sequence[JournalEntry]) -> None:
        """Journal rows kept aside by processes that could not write them (the spool)."""
        with self._transaction(appends_only=True) as session:
            session.executemany(_APPEND, payloads)

    # -- folding: the elected maintainer, and readers catching up -----------------------
    def after_flush(self, now: float) -> None:
        """The maintainer's turn after this process's flush: hold the lease, fold the journal, and
        once a minute prune (the other processes only look at the lease now and then)."""
        if not self._writer or now < self._lease_check_at:
            return
        self._lease_check_at = now + (_LEASE_RENEW_S if self._lease_held else _LEASE_CHECK_S)
        if not self._lease_held:
            rows = self._look("SELECT holder, until FROM leases WHERE name = ?", (_MAINTAINER,))
            if rows and rows[0][0] != self._writer and float(rows[0][1]) > now:
                return
        self._lease_held = self.claim_lease(_MAINTAINER, self._writer, now, _LEASE_S)
        if self._lease_held:
            self._lease_check_at = now + _LEASE_RENEW_S
            self.fold_journal()
            if now - self._last_maintenance >= MAINTENANCE_S:
                self._last_maintenance = now
                self.maintain(now)

    def _fresh(self) -> None:
        """Before a read: fold what the journal holds, so the read sees every flush committed before it.

        One look at the journal's first rows when nothing is pending. While another process holds
        the maintainer's lease (it folds after each of its flushes), a read folds only this store's
        own rows: it sees its own process's requests at once and the others' within the
        maintainer's next fold, without paying for everyone's (a fold of sixteen rows took a
        reader 100 ms on a busy host). The maintainer's own reads fold a short journal whole and
        leave a long one to its next fold. Without a maintainer a read folds the whole journal,
        batch after batch. Only a read with rows of its own waits for another fold in progress
        (half its time at most); others go on with what is folded. A fold that cannot run leaves
        the read a moment behind, never failing it.
        """
        if self._writing_thread == threading.get_ident():
            return
        with self._folding_nothing_first() as first:
            if not first:
                return
            try:
                with self.time_limit(self.remaining(READ_TIMEOUT_S) / 2):
                    self._fold_for_read()
            except StoreUnavailable:
                pass

    @contextlib.contextmanager
    def _folding_nothing_first(self) -> Iterator[bool]:
        """Reads of this thread in the block fold nothing first (a fold's own looks at the journal,
        a look at bookkeeping); yields False inside a block that already said so."""
        if getattr(self._folding, "active", False):
            yield False
            return
        self._folding.active = True
        try:
            yield True
        finally:
            self._folding.active = False

    def _look(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._folding_nothing_first():
            return self._query(sql, params)

    def _fold_for_read(self) -> None:
        pending = self._query(_PENDING, (_MAINTAINER_READ_FOLDS + 1,))
        if not pending:
            return
        own = bool(self._writer) and bool(self._query(_READ_OWN_PENDING, (self._writer,)))
        # Another process's maintainer folds the rest after its next flush; this one's own reads fold
        # a short journal whole (every handle of the process then reads the same after its flushes).
        mine_only = len(pending) > _MAINTAINER_READ_FOLDS if self._lease_held else self._maintainer_active()
        if mine_only and not own:
            return  # the maintainer folds the rest
        # Until none is left or the read's time is up. Without rows of its own, a read waits
        # neither for this process's maintainer fold nor for another process's.
        self._fold_batches(own=mine_only, wait=own, ends=math.inf)

    def _try_begin(self, session: Session, wait: bool) -> bool:
        """Begin a folding transaction; without ``wait``, only if no other fold holds the lock now."""
        self._begin(session)
        return True

    def fold_journal(self, budget_s: float = _FOLD_BUDGET_S) -> int:
        """Fold journal rows into the shared rows, in bounded transactions; returns rows folded."""
        with self._folding_nothing_first() as first:
            return self._fold_batches(own=False, wait=True, ends=time.monotonic() + budget_s) if first else 0

    def _fold_batches(self, *, own: bool, wait: bool, ends: float) -> int:
        """Fold the journal (``own``: this store's rows only) batch after batch until none is left or
        ``ends``; without ``wait`` it stops where another fold holds the lock. Returns rows folded.

        The rows are read and decoded before the serialised transaction (the deployment waits
        only for the merge and the writes), which claims them with ``DELETE … RETURNING``: a
        row another folder took meanwhile is left out, a row appended meanwhile waits for the
        next fold, and a folder that dies midway deletes nothing.
        """
        folded = 0
        while True:
            if own:
                rows = self._query(_READ_OWN_JOURNAL, (self._writer, _FOLD_ROWS))
            else:
                rows = self._query(_READ_JOURNAL, (_FOLD_ROWS,))
            if not rows:
                return folded
            more = len(rows) == _FOLD_ROWS
            # A transaction holds the deployment's lock: a few large rows (a spool of hours) are enough.
            size = 0
            for count, row in enumerate(rows):
                size += len(row[5])
                if size > _FOLD_BYTES and count:
                    rows, more = rows[:count], True
                    break
            decoded = [_Journaled(row) for row in rows]
            with self._writing(wait=wait) as session:
                if not self._try_begin(session, wait=wait):
                    return folded  # another fold is under way: it will be there in a moment
                try:
                    folded += self._claim_and_apply(session, decoded)
                    session.execute("COMMIT")
                except BaseException:
                    if session.in_transaction:
                        session.execute("ROLLBACK")
                    raise
            if not more or time.monotonic() >= ends:
                return folded

    def _claim_and_apply(self, session: Session, decoded: list[_Journaled]) -> int:
        """Inside a folding transaction: delete these journal rows and apply those this one deleted."""
        ids = [entry.id for entry in decoded]
        claimed: set[int] = set()
        for offset in range(0, len(ids), _CHUNK):
            chunk = ids[offset : offset + _CHUNK]
            claimed.update(
                int(row[0])
                for row in session.execute(
                    f"DELETE FROM journal WHERE id IN ({placeholders(len(chunk))}) RETURNING id", chunk
                )
            )
        if len(claimed) != len(ids):
            # Another folder took some of them first: apply only what this one deletes
            # (decoded anew: merging shares objects with the batches merged).
            decoded = [_Journaled(entry.row) for entry in decoded if entry.id in claimed]
        if decoded:
            self._apply(session, decoded, _merged(decoded))
            self._trim_logs(session)
        return len(claimed)

    def _maintainer_active(self) -> bool:
        """Whether a process holds the maintainer's lease now (and so will fold what others wrote)."""
        rows = self._look("SELECT until FROM leases WHERE name = ?", (_MAINTAINER,))
        return bool(rows) and float(rows[0][0]) > time.time()

    def _apply(
        self, session: Session, decoded: list[_Journaled], merged: dict[str | None, tuple[Batch, float, float]]
    ) -> None:
        # One flush at a time, as of its own moment: the status changes its issues make (new,
        # regressed) are decided in the order the flushes were appended.
        for entry in decoded:
            if entry.batch is not None and entry.batch.issues:
                self._issues.write(session, entry.batch, entry.release, entry.written)
        minutes: dict[int, dict[EndpointKey, Aggregate]] = {}
        overflowed = 0
        for release, (batch, first, last) in merged.items():
            for minute, per_key in batch.minutes.items():
                target = minutes.setdefault(minute, {})
                for key, agg in per_key.items():
                    merge_into(target, key, agg)
            overflowed += batch.overflowed
            self._write_errors(session, batch)
            if release is not None:
                self._write_release(session, batch, release, first, last)
            write_dependencies(session, batch, release)
        self._merge_buckets(session, Batch(minutes=minutes))
        if overflowed:
            session.execute(
                "INSERT INTO counters (name, value) VALUES ('overflowed', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                (overflowed,),
            )

    def _merge_buckets(self, session: Session, batch: Batch) -> None:
        """Add the batch into the shared rows: one read per (resolution, start), one write per row."""
        upserts = []
        for (resolution, start), per_key in rollups(batch).items():
            stored = {
                (row[0], row[1]): row[2:]
                for row in session.execute(_SELECT_SHARED_SLOT, (resolution, start))
                if (row[0], row[1]) in per_key
            }
            for key, delta in per_key.items():
                row = stored.get(key)
                total = decode_aggregate(row) if row is not None else Aggregate()
                total.merge(delta)
                upserts.append((resolution, key[0], key[1], start, _SHARED, *encode_aggregate(total)))
        if upserts:
            session.executemany(_UPSERT_ROW, upserts)

    def _trim_logs(self, session: Session) -> None:
        """The request log and the slow requests back to their bounds (appends overshoot them)."""
        session.execute(
            "DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?",
            (self._recent_requests,),
        )
        session.execute(_TRIM_SLOW, (SLOW_PER_ENDPOINT,))

    def _write_requests(self, session: Session, requests: list[RequestEntry]) -> None:
        if not requests:
            return
        session.executemany(
            f"INSERT INTO requests ({_LOGGED}) VALUES ({placeholders(14)})",
            [(*entry[:9], int(entry.sampled), *entry[10:]) for entry in requests[-self._recent_requests :]],
        )

    def _write_slow(self, session: Session, slow: list[SlowRequest]) -> None:
        """Appended with their profiles; the fold keeps the slowest SLOW_PER_ENDPOINT per endpoint and method."""
        if not slow:
            return
        session.executemany(
            f"INSERT INTO slow_requests ({_SLOW}) VALUES ({placeholders(15)})",
            [(*s.request[:9], _compact(s.profile.to_json()), *s.request[10:], _compact(s.queries)) for s in slow],
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

    def _write_release(self, session: Session, batch: Batch, release: str, first: float, last: float) -> None:
        """A release's rows are shared, not per writer: the fold is serialised across the deployment,
        so reading, merging and writing them back within it counts each request once."""
        session.execute(
            "INSERT INTO releases (release, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT (release) DO UPDATE "
            "SET first_seen = CASE WHEN excluded.first_seen < releases.first_seen THEN excluded.first_seen "
            "ELSE releases.first_seen END, last_seen = CASE WHEN excluded.last_seen > releases.last_seen "
            "THEN excluded.last_seen ELSE releases.last_seen END",
            (release, first, last),
        )
        upserts = []
        for start, per_key in release_rollups(batch).items():
            for (endpoint, method), delta in per_key.items():
                where = (release, start, endpoint, method)
                stored = session.execute(
                    f"SELECT {_BUCKET_COLUMNS} FROM release_buckets WHERE {_RELEASE_KEY}", where
                ).fetchone()
                total = decode_aggregate(stored) if stored is not None else Aggregate()
                total.merge(delta)
                upserts.append((*where, *encode_aggregate(total)))
        if upserts:
            session.executemany(_UPSERT_RELEASE_ROW, upserts)

    def process_stopped(self, process: ProcessRow) -> None:
        with self._writing() as session:
            session.execute(
                "UPDATE processes SET stopped = ? WHERE host = ? AND pid = ? AND started = ?",
                (process.last_flush, process.host, process.pid, process.started),
            )
        if self._lease_held:
            # Handed over at once, not when the lease runs out.
            self._lease_held = False
            self.release_lease(_MAINTAINER, self._writer)

    def maintain(self, now: float) -> None:
        """Prune expired buckets; one process per minute does it, decided by a claimed row."""
        self.fold_journal()
        with self._writing() as session:
            self._begin(session)
            try:
                row = session.execute("SELECT value FROM meta WHERE key = 'maintained_at'").fetchone()
                if row is not None and float(row[0]) > now - MAINTENANCE_S:
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
                self._trim_logs(session)
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
        """Fold rows of one writer each (written before the journal existed) into the shared row.

        Rows of closed periods, and every row of processes that are gone. Safe against a
        process of an older version still writing its rows: its next update finds the row
        gone and starts a new one with only its new delta.
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
        # Rows of processes that are gone (every row of a store written before the journal, once
        # its processes have stopped), whatever their period: nobody adds to them any more.
        picked = {tuple(row[:5]) for row in rows}
        rows += [
            row
            for row in session.execute(f"SELECT {_KEY_COLUMNS}, {_BUCKET_COLUMNS} FROM buckets WHERE writer != ''")
            if row[4] not in live and tuple(row[:5]) not in picked
        ]
        merged: dict[tuple[int, str, str, int], Aggregate] = {}
        for row in rows:
            key = (row[0], row[1], row[2], row[3])
            target = merged.get(key)
            if target is None:
                stored = session.execute(_SELECT_ROW, (*key, _SHARED)).fetchone()
                target = merged[key] = decode_aggregate(stored) if stored is not None else Aggregate()
            target.merge(decode_aggregate(row[5:]))
        if rows:
            session.executemany(f"DELETE FROM buckets WHERE {_WHERE_KEY}", [row[:5] for row in rows])
            session.executemany(_UPSERT_ROW, [(*key, _SHARED, *encode_aggregate(agg)) for key, agg in merged.items()])

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
        return [(row[0], (row[1], row[2]), decode_aggregate(row[3:])) for row in rows]

    def _settled_totals(self, span: tuple[int, int, int]) -> dict[EndpointKey, Aggregate] | None:
        signature = tuple(self._query(_SETTLED_SIGNATURE, span)[0])
        kept = self._settled.get(span, signature)
        if kept is None:
            kept = {}
            for _start, key, agg in self.buckets(*span, None):
                merge_into(kept, key, agg)
            self._settled.put(span, signature, kept)
        return kept

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
        return [(int(row[0]), (row[1], row[2]), decode_aggregate(row[3:])) for row in rows]

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
        # Ranked here too: appends overshoot the bound until the next fold trims them.
        ranked = (
            f"SELECT {_SLOW} FROM (SELECT {_SLOW}, row_number() OVER (PARTITION BY endpoint, method "
            "ORDER BY duration_ms DESC, id) AS rank FROM slow_requests WHERE time >= ?{}) AS ranked "
            "WHERE rank <= ? ORDER BY duration_ms DESC LIMIT ?"
        )
        if endpoint is None:
            rows = self._query(ranked.format(""), (oldest, SLOW_PER_ENDPOINT, limit))
        else:
            rows = self._query(ranked.format(" AND endpoint = ?"), (oldest, endpoint, SLOW_PER_ENDPOINT, limit))
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


class _Journaled:
    """A journal row, decoded (``batch`` None: it could not be read, and is dropped with a log line)."""

    __slots__ = ("batch", "id", "release", "row", "started", "written")

    def __init__(self, row: Sequence[Any]) -> None:
        self.row = row
        self.id = int(row[0])
        self.release: str | None = row[2]
        self.started = float(row[3])
        self.written = float(row[4])
        try:
            self.batch: Batch | None = decode_batch(row[5])
        except CorruptPayload as exc:
            logger.error("wsgimon: a journal row could not be read and was dropped (%s)", exc)
            self.batch = None


def _merged(decoded: list[_Journaled]) -> dict[str | None, tuple[Batch, float, float]]:
    """The rows' statistics merged per release (issues apart), with the first start and last write of each."""
    per_release: dict[str | None, tuple[Batch, float, float]] = {}
    for entry in decoded:
        if entry.batch is None:
            continue
        issues, entry.batch.issues = entry.batch.issues, {}
        merged, first, last = per_release.get(entry.release) or (Batch(), entry.started, entry.written)
        merged.absorb(entry.batch, 0, _UNBOUNDED)
        entry.batch.issues = issues
        per_release[entry.release] = (merged, min(first, entry.started), max(last, entry.written))
    return per_release
