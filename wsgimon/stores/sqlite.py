"""The SQLite store: one file shared by every process on the host.

Several gunicorn workers (and several gunicorn masters) write to one file in
WAL mode. Each process writes its deltas in one short ``BEGIN IMMEDIATE``
transaction per flush (taking the write lock up front, so a busy database makes
it wait for ``busy_timeout`` instead of failing on a lock upgrade); readers
merge what every process wrote. A connection is never carried across a fork,
and a file deleted or replaced underneath is noticed and recreated.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from ..aggregate import Aggregate
from ..guard import logger
from ..sketch import QuantileSketch
from ..windows import DAY, HOUR, MINUTE, TEN_MINUTES, TOTAL
from . import sqlite_file
from .base import (
    ALL,
    MAX_ALERTS,
    READ_TIMEOUT_S,
    STORED_RESOLUTIONS,
    AlertRow,
    Batch,
    EndpointKey,
    ErrorSample,
    ProcessRow,
    RequestEntry,
    Store,
    StoreUnavailable,
    rollups,
)

__all__ = ["SQLiteStore", "SCHEMA_VERSION"]

# 2: endpoint_names (the deployment-wide endpoint cap); 3: alert_state, alerts; 4: report_runs;
# 5: buckets.histogram (exact counts at the metrics' bucket bounds)
SCHEMA_VERSION = 5
APPLICATION = "wsgimon"
_MAINTENANCE_EVERY_S = 60.0
_ADMIT_TIMEOUT_S = 0.5
_DEPLOYMENT_GAP_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    resolution INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    client_errors INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    min_ms REAL,
    max_ms REAL NOT NULL,
    sketch BLOB NOT NULL,
    status_codes TEXT NOT NULL,
    error_types TEXT NOT NULL,
    last_seen REAL NOT NULL,
    writer TEXT NOT NULL,
    histogram TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (resolution, endpoint, method, start, writer)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS buckets_by_time ON buckets (resolution, start);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    ttfb_ms REAL,
    error_type TEXT,
    response_bytes INTEGER
);
CREATE TABLE IF NOT EXISTS error_samples (
    type TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    message TEXT NOT NULL,
    traceback TEXT,
    PRIMARY KEY (type, endpoint, method)
);
CREATE TABLE IF NOT EXISTS processes (
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    last_flush REAL NOT NULL,
    requests INTEGER NOT NULL,
    stopped REAL,
    PRIMARY KEY (host, pid, started)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint_names (name TEXT PRIMARY KEY, admitted REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    firing INTEGER NOT NULL DEFAULT 0,
    until REAL NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0,
    changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS report_runs (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    opened_at REAL NOT NULL,
    sent_at REAL NOT NULL,
    suppressed INTEGER NOT NULL,
    deliveries TEXT NOT NULL
);
INSERT OR IGNORE INTO endpoint_names (name, admitted)
    SELECT DISTINCT endpoint, 0 FROM buckets WHERE resolution = 0 AND endpoint NOT IN ('*', '<other>', '<unmatched>');
"""

_ADOPT_SOLE_ROWS = """
UPDATE buckets SET writer = ?
WHERE resolution = ? AND start < ? AND writer != ? AND NOT EXISTS (
    SELECT 1 FROM buckets AS other
    WHERE other.resolution = buckets.resolution AND other.endpoint = buckets.endpoint
    AND other.method = buckets.method AND other.start = buckets.start AND other.writer != buckets.writer
)
"""
_BUCKET_COLUMNS = (
    "count, errors, client_errors, total_ms, min_ms, max_ms, sketch, status_codes, error_types, last_seen, histogram"
)
_KEY_COLUMNS = "resolution, endpoint, method, start, writer"
_WHERE_KEY = "resolution = ? AND endpoint = ? AND method = ? AND start = ? AND writer = ?"
_SELECT_OWN = f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE {_WHERE_KEY}"
_UPDATE_OWN = (
    "UPDATE buckets SET count = ?, errors = ?, client_errors = ?, total_ms = ?, min_ms = ?, max_ms = ?, "
    f"sketch = ?, status_codes = ?, error_types = ?, last_seen = ?, histogram = ? WHERE {_WHERE_KEY}"
)
_INSERT_OWN = (
    f"INSERT OR REPLACE INTO buckets ({_KEY_COLUMNS}, {_BUCKET_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SHARED = ""  # the writer of compacted rows
# Rows of closed periods are folded into the shared row this long after the period ends.
_COMPACT_AFTER = {MINUTE: 2 * MINUTE, TEN_MINUTES: 5 * MINUTE, HOUR: 10 * MINUTE, DAY: 10 * MINUTE}


class _Link:
    """One connection of this process, and the file it was opened on."""

    __slots__ = ("conn", "pid", "inode", "busy_ms")

    def __init__(self, conn: sqlite3.Connection, inode: int, busy_ms: int) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.inode = inode
        self.busy_ms = busy_ms

    def wait_at_most(self, seconds: float) -> None:
        busy_ms = max(1, int(seconds * 1000))
        if busy_ms != self.busy_ms:
            self.conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            self.busy_ms = busy_ms


class SQLiteStore(Store):
    """Construction never fails for a condition that may pass (locked, unwritable, missing):
    the store starts unavailable and every write retries; only a file that must not be used
    (foreign, corrupt, newer, unsafe) or a missing directory is a ``ValueError``."""

    def __init__(
        self,
        path: str,
        *,
        recent_requests: int,
        minute_retention_s: float = 48 * HOUR,
        retention_s: float = 90 * DAY,
        busy_timeout_s: float = 2.0,
    ) -> None:
        self.path = os.path.abspath(path)
        self.minute_retention_s = minute_retention_s
        self.hour_retention_s = retention_s
        self._retention_s = retention_s
        self._recent_requests = recent_requests
        self._busy_timeout_s = busy_timeout_s
        # Writes and reads have a connection each, so a read never waits behind a flush
        # that waits for a locked file.
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_link: _Link | None = None
        self._read_link: _Link | None = None
        # The connection to a file deleted under us: the source to restore it from.
        self._orphan: _Link | None = None
        # This process's own bucket rows, exactly as last committed: a flush adds its
        # deltas here and overwrites its rows, with no read and no decode of stored data.
        self._own: dict[tuple[int, int, str, str], Aggregate] = {}
        # Per resolution: buckets starting before this may hold a row of ours that _own
        # no longer knows (forgotten when closed, or after a failed write); later ones cannot.
        self._unsure_before: dict[int, float] = {}
        self._writer = ""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise ValueError(f"storage: directory {directory!r} does not exist")
        # A foreign, corrupt, newer or unsafe file is a clear error at start; a file that
        # cannot be opened now (locked, read-only, a directory in its place) is retried later.
        with self._lock:
            try:
                self._write_connection(at_start=True)
            except StoreUnavailable as exc:
                logger.warning("wsgimon: the store is unavailable at start (%s); retrying in the background", exc)

    # -- connections -----------------------------------------------------------------
    def _write_connection(self, at_start: bool = False) -> _Link:
        """This process's write connection; reopened after a fork, a failure, or a new file at the path."""
        link = self._write_link
        status = self._current_file(at_start)
        if link is not None and link.pid == os.getpid():
            if status is not None and status.st_ino == link.inode:
                return link
            self._write_link = None
            if status is None and self._orphan is None:
                # Deleted under us: keep the open connection to restore the file from.
                self._orphan = link
            else:
                link.conn.close()
        elif link is not None:
            # Inherited through fork: abandoned, never used or closed here.
            self._write_link = None
        # What we knew of our own rows no longer matches a new file or a new process.
        self._forget_own_rows()
        if status is None and self._orphan is not None and self._orphan_is_ours():
            self._restore()
            status = self._current_file(at_start)
        link = self._open(status, at_start)
        self._write_link = link
        return link

    def _read_connection(self) -> _Link:
        link = self._read_link
        status = self._current_file(False)
        if link is not None and link.pid == os.getpid():
            if status is not None and status.st_ino == link.inode:
                return link
            link.conn.close()
        self._read_link = None
        if status is None and self._lock.acquire(blocking=False):
            # Deleted: the write connection may still have it open to restore it from.
            try:
                self._write_connection()
            except StoreUnavailable:
                pass
            finally:
                self._lock.release()
            status = self._current_file(False)
        if status is None:
            raise StoreUnavailable(f"{self.path} is missing")
        link = self._open(status, False)
        self._read_link = link
        return link

    def _current_file(self, at_start: bool) -> os.stat_result | None:
        try:
            return sqlite_file.check_path(self.path)
        except sqlite_file.UnsafeStoreFile as exc:
            if at_start:
                raise
            raise StoreUnavailable(str(exc)) from None

    def _orphan_is_ours(self) -> bool:
        return self._orphan is not None and self._orphan.pid == os.getpid()

    def _restore(self) -> None:
        orphan = self._orphan
        assert orphan is not None
        if sqlite_file.restore_into(self.path, orphan.conn):
            logger.warning(
                "wsgimon: the store %s was deleted while in use; it was restored with all its history "
                "from this process's open connection",
                self.path,
            )
        orphan.conn.close()
        self._orphan = None

    def _open(self, status: os.stat_result | None, at_start: bool) -> _Link:
        if status is None:
            sqlite_file.create_private(self.path)
            status = self._current_file(at_start)
            if status is None:
                raise StoreUnavailable(f"{self.path} vanished while it was created")
        elif at_start:
            sqlite_file.warn_if_readable_by_others(self.path, status)
        try:
            # Checked read-only first: nothing is written to a file that is not ours.
            self._validate(status)
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        except ValueError as exc:
            if at_start:
                raise
            raise StoreUnavailable(str(exc)) from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            self._ensure_schema(conn)
        except (sqlite3.DatabaseError, ValueError) as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and _is_transient(exc):
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            message = str(exc) if isinstance(exc, ValueError) else f"storage {self.path!r}: {exc}"
            if at_start:
                raise ValueError(message) from None
            raise StoreUnavailable(message) from None
        after = self._current_file(at_start)
        if after is None or after.st_ino != status.st_ino:
            conn.close()
            raise StoreUnavailable(f"{self.path} was replaced while it was opened")
        return _Link(conn, status.st_ino, int(self._busy_timeout_s * 1000))

    def _validate(self, status: os.stat_result) -> None:
        """Refuse a file that is not a wsgimon database (or a newer one) without writing to it."""
        if status.st_size == 0:
            return
        # Only through SQLite: closing any other descriptor of the file would drop the POSIX
        # locks this process's connections hold on it, and another process could then
        # checkpoint and delete a WAL that is still in use.
        check = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=ro", uri=True, timeout=0.5)
        try:
            tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise ValueError(
                    f"storage {self.path!r} is a SQLite database of another application "
                    f"(tables: {', '.join(sorted(tables)[:5])}); choose another path"
                )
            if "meta" in tables:
                meta = dict(check.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("application") != APPLICATION:
                    raise ValueError(f"storage {self.path!r} is not a wsgimon database")
                version = int(meta.get("schema_version", "0"))
                if version > SCHEMA_VERSION:
                    raise ValueError(
                        f"storage {self.path!r} has schema version {version}, newer than this wsgimon "
                        f"supports ({SCHEMA_VERSION}); upgrade wsgimon"
                    )
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_transient(exc):
                raise
            raise ValueError(f"storage {self.path!r} is not a usable wsgimon database: {exc}") from None
        finally:
            check.close()

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("application") == APPLICATION and int(meta.get("schema_version", "0")) == SCHEMA_VERSION:
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(buckets)")}
            if "histogram" not in columns:  # a store of schema 4 or older
                conn.execute("ALTER TABLE buckets ADD COLUMN histogram TEXT NOT NULL DEFAULT '{}'")
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('application', ?), ('schema_version', ?)",
                (APPLICATION, str(SCHEMA_VERSION)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The write connection, waiting for it no longer than the thread's time limit."""
        if not self._lock.acquire(timeout=self.remaining(self._busy_timeout_s)):
            raise StoreUnavailable("another write of this process is waiting for the store")
        try:
            link = self._write_connection()
            link.wait_at_most(self.remaining(self._busy_timeout_s))
            try:
                yield link.conn
            except sqlite3.OperationalError as exc:
                # Reopened next time, whatever the cause: a connection opened while the file was
                # read-only stays read-only for ever.
                self._drop(link)
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
        finally:
            self._lock.release()

    def _drop(self, link: _Link) -> None:
        if self._write_link is link:
            self._write_link = None
            self._forget_own_rows()
            with contextlib.suppress(sqlite3.Error):
                link.conn.close()

    # -- writing ---------------------------------------------------------------------
    def write(self, batch: Batch, process: ProcessRow) -> None:
        with self._writing() as conn:
            writer = f"{process.host}|{process.pid}|{process.started!r}"
            if writer != self._writer:
                # A new identity has written nothing yet.
                self._own.clear()
                self._unsure_before.clear()
                self._writer = writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                own = self._write_buckets(conn, batch)
                self._write_requests(conn, batch.requests)
                self._write_errors(conn, batch)
                if batch.overflowed:
                    conn.execute(
                        "INSERT INTO counters (name, value) VALUES ('overflowed', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                        (batch.overflowed,),
                    )
                self._write_process(conn, process)
                conn.execute("COMMIT")
            except BaseException:
                self._forget_own_rows()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._own.update(own)
            self._forget_closed(process.last_flush)

    def _forget_own_rows(self) -> None:
        self._own.clear()
        self._unsure_before = dict.fromkeys(STORED_RESOLUTIONS, time.time() + MINUTE)

    def _forget_closed(self, now: float) -> None:
        # Late records for a forgotten bucket take the slow path (read our row, merge).
        horizon = {MINUTE: now - 5 * MINUTE, TEN_MINUTES: now - HOUR, HOUR: now - 2 * HOUR, DAY: now - 2 * DAY}
        for key in [k for k in self._own if k[0] in horizon and k[1] < horizon[k[0]]]:
            del self._own[key]
            resolution, start = key[0], key[1]
            if start >= self._unsure_before.get(resolution, -math.inf):
                self._unsure_before[resolution] = start + 1

    def _write_buckets(self, conn: sqlite3.Connection, batch: Batch) -> dict[tuple[int, int, str, str], Aggregate]:
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
                stored = conn.execute(_SELECT_OWN, where).fetchone()
                total = _decode(stored) if stored is not None else Aggregate()
                total.merge(delta)
                conn.execute(_INSERT_OWN, (*where, *_encode(total)))
                written[own_key] = total
        if inserts:
            conn.executemany(_INSERT_OWN, inserts)
        if updates and conn.executemany(_UPDATE_OWN, updates).rowcount != len(updates):
            # Some of our rows were compacted into the shared row meanwhile: those start
            # anew with only their delta, so nothing is counted twice.
            for own_key, where, known, delta in updated:
                if conn.execute(f"SELECT 1 FROM buckets WHERE {_WHERE_KEY}", where).fetchone() is None:
                    fresh = Aggregate()
                    fresh.merge(delta)
                    conn.execute(_INSERT_OWN, (*where, *_encode(fresh)))
                    written[own_key] = fresh
                else:
                    written[own_key] = known
        else:
            written.update((own_key, known) for own_key, _where, known, _delta in updated)
        return written

    def _write_requests(self, conn: sqlite3.Connection, requests: list[RequestEntry]) -> None:
        if not requests:
            return
        conn.executemany(
            "INSERT INTO requests (time, method, path, endpoint, status, duration_ms, ttfb_ms, error_type, "
            "response_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [entry[:9] for entry in requests[-self._recent_requests :]],
        )
        conn.execute(
            "DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?",
            (self._recent_requests,),
        )

    def _write_errors(self, conn: sqlite3.Connection, batch: Batch) -> None:
        conn.executemany(
            "INSERT INTO error_samples (type, endpoint, method, count, first_seen, last_seen, message, traceback) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (type, endpoint, method) DO UPDATE SET "
            "count = count + excluded.count, first_seen = min(first_seen, excluded.first_seen), "
            "message = CASE WHEN excluded.last_seen >= last_seen THEN excluded.message ELSE message END, "
            "traceback = CASE WHEN excluded.last_seen >= last_seen THEN excluded.traceback ELSE traceback END, "
            "last_seen = max(last_seen, excluded.last_seen)",
            [
                (s.type, s.endpoint, s.method, s.count, s.first_seen, s.last_seen, s.message, s.traceback)
                for s in batch.errors.values()
            ],
        )

    def _write_process(self, conn: sqlite3.Connection, process: ProcessRow) -> None:
        known = conn.execute(
            "SELECT 1 FROM processes WHERE host = ? AND pid = ? AND started = ?",
            (process.host, process.pid, process.started),
        ).fetchone()
        if known is None:
            # A process that starts after a quiet gap begins a new deployment.
            last_activity = conn.execute("SELECT max(last_flush) FROM processes").fetchone()[0]
            if last_activity is None or last_activity < process.started - _DEPLOYMENT_GAP_S:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('deployment_started', ?)",
                    (repr(process.started),),
                )
        conn.execute(
            "INSERT INTO processes (host, pid, started, last_flush, requests) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (host, pid, started) DO UPDATE SET last_flush = excluded.last_flush, "
            "requests = excluded.requests",
            (process.host, process.pid, process.started, process.last_flush, process.requests),
        )

    def process_stopped(self, process: ProcessRow) -> None:
        with self._writing() as conn:
            conn.execute(
                "UPDATE processes SET stopped = ? WHERE host = ? AND pid = ? AND started = ?",
                (process.last_flush, process.host, process.pid, process.started),
            )

    def maintain(self, now: float) -> None:
        """Prune expired buckets; one process per minute does it, decided by a claimed row."""
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'maintained_at'").fetchone()
                if row is not None and float(row[0]) > now - _MAINTENANCE_EVERY_S:
                    conn.execute("COMMIT")
                    return
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('maintained_at', ?)", (repr(now),))
                for resolution, keep_s in (
                    (MINUTE, self.minute_retention_s),
                    (TEN_MINUTES, self.minute_retention_s),
                    (HOUR, self._retention_s),
                    (DAY, self._retention_s),
                ):
                    conn.execute(
                        "DELETE FROM buckets WHERE resolution = ? AND start < ?",
                        (resolution, int(now - keep_s) - resolution),
                    )
                self._compact(conn, now)
                conn.execute("DELETE FROM error_samples WHERE last_seen < ?", (now - self._retention_s,))
                # Names not seen within the retention go, all-time totals included (a path that
                # once leaked a secret is not kept for ever).
                conn.execute(
                    "DELETE FROM buckets WHERE resolution = ? AND last_seen < ? AND NOT (endpoint = ? AND method = ?)",
                    (TOTAL, now - self._retention_s, *ALL),
                )
                conn.execute(
                    "DELETE FROM endpoint_names WHERE admitted < ? AND name NOT IN "
                    "(SELECT endpoint FROM buckets WHERE resolution = ?)",
                    (now - self._retention_s, TOTAL),
                )
                conn.execute("DELETE FROM processes WHERE last_flush < ?", (now - DAY,))
                conn.execute("DELETE FROM alert_state WHERE firing = 0 AND suppressed = 0 AND until < ?", (now - DAY,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _compact(self, conn: sqlite3.Connection, now: float) -> None:
        """Fold per-process rows of closed periods (and of gone processes' totals) into one row.

        Safe against a writer still holding a row: its next update finds the row gone
        and starts a new one with only its new delta.
        """
        live = {
            f"{host}|{pid}|{started!r}"
            for host, pid, started in conn.execute(
                "SELECT host, pid, started FROM processes WHERE stopped IS NULL AND last_flush >= ?", (now - HOUR,)
            )
        }
        rows = []
        for resolution, after in _COMPACT_AFTER.items():
            # A closed bucket written by one process alone needs no merge: it becomes the shared row.
            conn.execute(_ADOPT_SOLE_ROWS, (_SHARED, resolution, int(now - resolution - after), _SHARED))
            rows += conn.execute(
                f"SELECT {_KEY_COLUMNS}, {_BUCKET_COLUMNS} FROM buckets "
                "WHERE resolution = ? AND start < ? AND writer != ?",
                (resolution, int(now - resolution - after), _SHARED),
            ).fetchall()
        rows += [
            row
            for row in conn.execute(
                f"SELECT {_KEY_COLUMNS}, {_BUCKET_COLUMNS} FROM buckets WHERE resolution = ? AND writer != ?",
                (TOTAL, _SHARED),
            )
            if row[4] not in live
        ]
        merged: dict[tuple[int, str, str, int], Aggregate] = {}
        for row in rows:
            key = (row[0], row[1], row[2], row[3])
            target = merged.get(key)
            if target is None:
                stored = conn.execute(_SELECT_OWN, (*key, _SHARED)).fetchone()
                target = merged[key] = _decode(stored) if stored is not None else Aggregate()
            target.merge(_decode(row[5:]))
        conn.executemany(f"DELETE FROM buckets WHERE {_WHERE_KEY}", [row[:5] for row in rows])
        conn.executemany(_INSERT_OWN, [(*key, _SHARED, *_encode(agg)) for key, agg in merged.items()])

    # -- reading ---------------------------------------------------------------------
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self._read_lock.acquire(timeout=self.remaining(READ_TIMEOUT_S)):
            raise StoreUnavailable("another read of this process is waiting for the store")
        try:
            link = self._read_connection()
            link.wait_at_most(self.remaining(READ_TIMEOUT_S))
            try:
                return link.conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                self._read_link = None
                with contextlib.suppress(sqlite3.Error):
                    link.conn.close()
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
        finally:
            self._read_lock.release()

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
        # Summed into slots by SQLite: a 1-hour window over 1,000 endpoints is 60,000 minute rows.
        rows = self._query(
            "SELECT CAST((start - ?) / ? AS INTEGER) AS slot, endpoint, method, sum(count), sum(total_ms) "
            "FROM buckets WHERE resolution = ? AND start >= ? AND start < ? AND NOT (endpoint = ? AND method = ?) "
            "GROUP BY endpoint, method, slot",
            (first, float(slot_s), resolution, first, end, *ALL),
        )
        return [(row[0], (row[1], row[2]), row[3], row[4]) for row in rows]

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
        rows = self._query(
            "SELECT time, method, path, endpoint, status, duration_ms, ttfb_ms, error_type, response_bytes "
            "FROM requests ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [RequestEntry(*row) for row in rows]

    def error_samples(self) -> dict[tuple[str, str, str], ErrorSample]:
        rows = self._query(
            "SELECT type, endpoint, method, count, first_seen, last_seen, message, traceback FROM error_samples"
        )
        return {(row[0], row[1], row[2]): ErrorSample(*row) for row in rows}

    # -- alerts ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def claim_occurrence(self, key: str, now: float, cooldown_s: float, count: int) -> tuple[bool, int]:
        with self._transaction() as conn:
            row = conn.execute("SELECT until, suppressed FROM alert_state WHERE key = ?", (key,)).fetchone()
            if row is None or now >= row[0]:
                conn.execute(
                    "INSERT INTO alert_state (key, until, suppressed, changed) VALUES (?, ?, 0, ?) ON CONFLICT (key) "
                    "DO UPDATE SET until = excluded.until, suppressed = 0, changed = excluded.changed",
                    (key, now + cooldown_s, now),
                )
                return True, 0 if row is None else int(row[1])
            conn.execute("UPDATE alert_state SET suppressed = suppressed + ? WHERE key = ?", (count, key))
            return False, 0

    def claim_followups(self, now: float, cooldown_s: float) -> list[tuple[str, int]]:
        with self._transaction() as conn:
            due = conn.execute(
                "SELECT key, suppressed FROM alert_state WHERE suppressed > 0 AND until <= ?", (now,)
            ).fetchall()
            conn.executemany(
                "UPDATE alert_state SET suppressed = 0, until = ?, changed = ? WHERE key = ?",
                [(now + cooldown_s, now, key) for key, _n in due],
            )
        return [(str(key), int(n)) for key, n in due]

    def transition(self, key: str, firing: bool, now: float) -> bool:
        with self._transaction() as conn:
            row = conn.execute("SELECT firing FROM alert_state WHERE key = ?", (key,)).fetchone()
            if bool(row[0] if row else 0) == firing:
                return False
            conn.execute(
                "INSERT INTO alert_state (key, firing, changed) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET firing = excluded.firing, changed = excluded.changed",
                (key, int(firing), now),
            )
            return True

    def firing_keys(self) -> set[str]:
        return {str(row[0]) for row in self._query("SELECT key FROM alert_state WHERE firing = 1")}

    def record_alert(self, row: AlertRow) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO alerts (key, rule, severity, state, title, summary, opened_at, sent_at, suppressed, "
                "deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            )
            conn.execute("DELETE FROM alerts WHERE id <= (SELECT max(id) FROM alerts) - ?", (MAX_ALERTS,))
            return int(cursor.lastrowid or 0)

    def update_alert(self, alert_id: int, deliveries: dict[str, dict[str, object]]) -> None:
        with self._writing() as conn:
            conn.execute("UPDATE alerts SET deliveries = ? WHERE id = ?", (json.dumps(deliveries), alert_id))

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

    def claim_report(self, key: str, now: float, stale_s: float) -> bool:
        with self._transaction() as conn:
            row = conn.execute("SELECT state, updated FROM report_runs WHERE key = ?", (key,)).fetchone()
            if row is not None and not (row[0] == "sending" and row[1] < now - stale_s):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO report_runs (key, state, updated, detail) VALUES (?, 'sending', ?, '')",
                (key, now),
            )
            return True

    def finish_report(self, key: str, state: str, detail: str, now: float) -> None:
        with self._writing() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO report_runs (key, state, updated, detail) VALUES (?, ?, ?, ?)",
                (key, state, now, detail[:500]),
            )

    def report_runs(self, limit: int) -> list[tuple[str, str, float, str]]:
        rows = self._query(
            "SELECT key, state, updated, detail FROM report_runs ORDER BY updated DESC LIMIT ?", (limit,)
        )
        return [(str(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]

    def admit_name(self, name: str, cap: int) -> bool:
        """One short transaction for a name not seen before (rare once the routes are known)."""
        with self.time_limit(_ADMIT_TIMEOUT_S), self._writing() as conn:
            if conn.execute("SELECT 1 FROM endpoint_names WHERE name = ?", (name,)).fetchone() is not None:
                return True
            conn.execute("BEGIN IMMEDIATE")
            try:
                known = conn.execute("SELECT 1 FROM endpoint_names WHERE name = ?", (name,)).fetchone()
                if known is None:
                    if conn.execute("SELECT count(*) FROM endpoint_names").fetchone()[0] >= cap:
                        conn.execute("COMMIT")
                        return False
                    conn.execute("INSERT INTO endpoint_names (name, admitted) VALUES (?, ?)", (name, time.time()))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return True

    def overflowed(self) -> int:
        rows = self._query("SELECT value FROM counters WHERE name = 'overflowed'")
        return int(rows[0][0]) if rows else 0

    def processes(self, seen_since: float) -> list[ProcessRow]:
        rows = self._query(
            "SELECT host, pid, started, last_flush, requests FROM processes "
            "WHERE last_flush >= ? AND stopped IS NULL ORDER BY started",
            (seen_since,),
        )
        return [ProcessRow(*row) for row in rows]

    def deployment_started(self) -> float | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'deployment_started'")
        return float(rows[0][0]) if rows else None

    def health(self) -> tuple[bool, str]:
        """The file as every process sees it, so each worker answers the same."""
        try:
            status = sqlite_file.check_path(self.path)
        except (StoreUnavailable, sqlite_file.UnsafeStoreFile) as exc:
            return False, str(exc)
        if status is None:
            return False, f"{self.path} is missing"
        if not os.access(self.path, os.R_OK | os.W_OK) or not os.access(os.path.dirname(self.path), os.W_OK):
            return False, f"{self.path} (or its directory) is not writable"
        return True, f"sqlite {self.path}"

    def close(self) -> None:
        for lock, name in ((self._lock, "_write_link"), (self._read_lock, "_read_link")):
            with lock:
                link: _Link | None = getattr(self, name)
                if link is not None and link.pid == os.getpid():
                    link.conn.close()
                setattr(self, name, None)
        with self._lock:
            if self._orphan is not None and self._orphan_is_ours():
                self._orphan.conn.close()
            self._orphan = None


def _is_transient(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "unable to open", "readonly", "disk i/o"))


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
    )


def _decode(row: tuple[Any, ...] | list[Any]) -> Aggregate:
    # Readers decode thousands of rows: skip Aggregate.__init__ and its empty sketch.
    agg = Aggregate.__new__(Aggregate)
    agg.count, agg.errors, agg.client_errors, agg.total_ms = row[0], row[1], row[2], row[3]
    agg.min_ms = float("inf") if row[4] is None else row[4]
    agg.max_ms = row[5]
    agg.sketch = QuantileSketch.from_bytes(row[6])
    agg.status_codes = {int(code): n for code, n in json.loads(row[7]).items()}
    agg.error_types = json.loads(row[8]) if row[8] != "{}" else {}
    agg.last_seen = row[9]
    agg.histogram = json.loads(row[10]) if row[10] != "{}" else {}
    return agg
