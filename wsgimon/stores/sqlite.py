"""The SQLite store: one file shared by every process on the host.

Several gunicorn workers (and several gunicorn masters) write to one file in
WAL mode. Each process writes its deltas in one short ``BEGIN IMMEDIATE``
transaction per flush (taking the write lock up front, so a busy database makes
it wait instead of failing on a lock upgrade); readers
merge what every process wrote (the logic is :mod:`.sql`'s, shared with
PostgreSQL). A connection is never carried across a fork, and a file deleted
or replaced underneath is noticed and recreated.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from ..internal_errors import logger
from ..stats.time_windows import DAY, HOUR
from . import sqlite_file
from .contract import READ_TIMEOUT_S, StoreUnavailable
from .schema import ADDED_COLUMNS, added_column
from .sql import APPLICATION, SCHEMA_VERSION, Session, SQLStore, schema_statements

__all__ = ["SQLiteStore", "SCHEMA_VERSION"]

# Names known before the deployment-wide cap existed (schema 2) are admitted.
_ADMIT_OLD_NAMES = (
    "INSERT OR IGNORE INTO endpoint_names (name, admitted) SELECT DISTINCT endpoint, 0 FROM buckets "
    "WHERE resolution = 0 AND endpoint NOT IN ('*', '<other>', '<unmatched>')"
)


#: the write-ahead log's checkpoint threshold (pages of 4 KiB) and the size it is cut back to
_WAL_PAGES = 256
_WAL_LIMIT_BYTES = 1024 * 1024
#: how long a writer sleeps between two tries for the write lock (on average; jittered)
_LOCK_POLL_S = 0.001


class _Link:
    """One connection of this process, and the file it was opened on."""

    __slots__ = ("conn", "pid", "inode", "busy_ms")

    def __init__(self, conn: sqlite3.Connection, inode: int, busy_ms: int) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.inode = inode
        self.busy_ms = busy_ms

    def wait_at_most(self, seconds: float) -> None:
        busy_ms = max(0, int(seconds * 1000))
        if busy_ms != self.busy_ms:
            self.conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            self.busy_ms = busy_ms


class SQLiteStore(SQLStore):
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
        super().__init__(
            recent_requests=recent_requests, minute_retention_s=minute_retention_s, retention_s=retention_s
        )
        self.path = os.path.abspath(path)
        self.spool_directory = self.path + ".spool"
        self._busy_timeout_s = busy_timeout_s
        # Writes and reads have a connection each, so a read never waits behind a flush
        # that waits for a locked file.
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_link: _Link | None = None
        self._read_link: _Link | None = None
        # The connection to a file deleted under us: the source to restore it from.
        self._orphan: _Link | None = None
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
            # SQLite opens whatever is at <store>-wal, -shm and -journal: ours, or none.
            sqlite_file.secure_companions(self.path)
        except sqlite_file.UnsafeStoreFile as exc:
            if at_start:
                raise
            raise StoreUnavailable(str(exc)) from None
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
            # The write-ahead log is checkpointed at about 1 MB and cut back to 1 MB after each
            # checkpoint: left alone it only grows, and on a small disk it fills it by itself.
            conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
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
            for statement in schema_statements("sqlite"):
                conn.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {added_column(column, kind, 'sqlite')}")
            conn.execute(_ADMIT_OLD_NAMES)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('application', ?), ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (APPLICATION, str(SCHEMA_VERSION)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _writing(self, wait: bool = True) -> Iterator[Session]:
        """The write connection, waiting for it no longer than the thread's time limit."""
        if not self._lock.acquire(timeout=self.remaining(self._busy_timeout_s) if wait else 0):
            raise StoreUnavailable("another write of this process is waiting for the store")
        self._writing_thread = threading.get_ident()
        try:
            link = self._write_connection()
            link.wait_at_most(self.remaining(self._busy_timeout_s))  # for single statements
            try:
                yield link.conn
            except sqlite3.OperationalError as exc:
                # Reopened next time, whatever the cause: a connection opened while the file was
                # read-only stays read-only for ever.
                self._drop(link)
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
        finally:
            self._writing_thread = None
            self._lock.release()

    def _drop(self, link: _Link) -> None:
        if self._write_link is link:
            self._write_link = None
            with contextlib.suppress(sqlite3.Error):
                link.conn.close()

    def _begin(self, session: Session) -> None:
        """Take the write lock, trying again every millisecond or so until the thread's time limit.

        SQLite's own busy handler sleeps longer and longer between its tries (up to 100 ms), so
        among many writers a waiter keeps missing the gaps between others' short transactions and
        waits out its whole timeout (measured: four processes each holding the lock 5 ms of 25,
        a waiter's p95 1.3 s with the handler, 6 ms with steady tries).
        """
        deadline = time.monotonic() + self.remaining(self._busy_timeout_s)
        link = self._write_link
        if link is not None:
            link.wait_at_most(0)  # each try answers at once; the next _writing sets the wait back
        while True:
            try:
                session.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(_LOCK_POLL_S * random.uniform(0.5, 1.5))

    def _try_begin(self, session: Session, wait: bool) -> bool:
        if wait:
            self._begin(session)
            return True
        link = self._write_link
        if link is not None:
            link.wait_at_most(0)
        try:
            session.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_transient(exc):
                return False  # another process writes now
            raise
        return True

    def _after_maintenance(self, session: Session) -> None:
        # TRUNCATE: the log back to nothing when no reader holds it. It holds off writers while it
        # waits for readers, so it waits 50 ms at most (the next minute tries again).
        link = self._write_link
        if link is not None:
            link.wait_at_most(0.05)
        session.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading ---------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._fresh()
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

    def health(self) -> tuple[bool, str]:
        """The file as every process sees it, so each worker answers the same."""
        try:
            status = sqlite_file.check_path(self.path)
            sqlite_file.check_companions(self.path)
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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_transient(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "unable to open", "readonly", "disk i/o"))
