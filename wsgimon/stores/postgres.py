"""The PostgreSQL store: one database shared by every process of every host.

The logic is :mod:`.sql`'s, the same as SQLite's: each process overwrites its
own rows in one transaction per flush, readers merge every writer's rows, and
write transactions are serialised across the deployment by a transaction-level
advisory lock (what ``BEGIN IMMEDIATE`` is for SQLite), so claims read and
decide as one.

A database that is down, slow or refuses the connection is a store that is
unavailable, never an error of the application: every wait is bounded (connect
timeout, ``statement_timeout`` from the thread's time limit), a failed connect
is not retried for a moment (so reads answer at once), and the recorder keeps
its deltas until a write succeeds. Connections are per process and never used
across a fork. The password is in no message: every error text is scrubbed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..internal_errors import logger
from ..stats.time_windows import DAY, HOUR
from .contract import READ_TIMEOUT_S, StoreUnavailable
from .schema import ADDED_COLUMNS, added_column
from .sql import APPLICATION, SCHEMA_VERSION, Cursor, Session, SQLStore, schema_statements

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "parse_url"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_RETRY_AFTER_S = (0.5, 1.0, 2.0, 5.0)  # after 1, 2, 3, 4+ failed connects in a row
# Maintenance runs in the background and may fold many rows after an outage: it may take longer.
_MAINTENANCE_STATEMENT_S = 30.0
#: tables whose rows the maintainer rewrites in place at every fold
_REWRITTEN_TABLES = ("buckets", "release_buckets", "dependency_uses", "issues", "issue_counts", "leases")


def parse_url(url: str) -> tuple[str, str, str | None, str]:
    """(conninfo for libpq, schema name, password, the URL as it may be shown).

    ``?schema=name`` picks the schema (default ``wsgimon``); every other query
    parameter (``sslmode``, ``connect_timeout``, …) goes to libpq, and what the
    URL leaves out comes from the usual ``PG*`` variables.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = "wsgimon"
    rest = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            rest.append((name, value))
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"storage: schema name {schema!r} must be lowercase letters, digits and underscores")
    password = urllib.parse.unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD") or None
    conninfo = urllib.parse.urlunsplit(("postgresql", parts.netloc, parts.path, urllib.parse.urlencode(rest), ""))
    shown_netloc = parts.hostname or ""
    if parts.port:
        shown_netloc += f":{parts.port}"
    if parts.username:
        shown_netloc = f"{parts.username}@{shown_netloc}"
    shown = urllib.parse.urlunsplit(("postgresql", shown_netloc, parts.path, "", "")) + f" (schema {schema})"
    return conninfo, schema, password, shown


class _Link:
    """One connection of this process, and what it was last set to wait."""

    __slots__ = ("conn", "pid", "timeout_ms")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.timeout_ms = 0

    def wait_at_most(self, seconds: float) -> None:
        timeout_ms = max(1, int(seconds * 1000))
        if timeout_ms != self.timeout_ms:
            self.conn.execute(f"SET statement_timeout = {timeout_ms}")
            self.timeout_ms = timeout_ms


class _Session:
    """psycopg's connection as the shared SQL uses it (``?`` placeholders, sqlite3's calls)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(_placeholders(sql), parameters or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(_placeholders(sql), rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    # The shared statements hold no literal '?' or '%'.
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(SQLStore):
    """Construction never fails because the database is down or slow (it starts unavailable and
    retries); a schema that is not wsgimon's, or newer than this version, is a ``ValueError``."""

    _SLOT = "CAST(FLOOR((start - ?) / ?) AS BIGINT)"

    def __init__(
        self,
        url: str,
        *,
        recent_requests: int,
        minute_retention_s: float = 48 * HOUR,
        retention_s: float = 90 * DAY,
        busy_timeout_s: float = 2.0,
        connect_timeout_s: int = 2,
    ) -> None:
        super().__init__(
            recent_requests=recent_requests, minute_retention_s=minute_retention_s, retention_s=retention_s
        )
        try:
            import psycopg  # noqa: F401 - only when a PostgreSQL store is configured
        except ImportError:
            raise ValueError(
                "storage postgresql://…: the driver is missing; install it with pip install 'wsgimon[postgres]'"
            ) from None
        self._conninfo, self.schema, self._password, self.shown = parse_url(url)
        # Per user and database (never the password): this host's processes of the deployment share it.
        where = zlib.crc32(f"{self.shown}".encode())
        base = "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
        self.spool_directory = os.path.join(base, f"wsgimon-{os.geteuid()}-{where:08x}.spool")
        self._busy_timeout_s = busy_timeout_s
        self._connect_timeout_s = connect_timeout_s
        # The advisory lock that serialises write transactions: one per schema.
        self._lock_key = zlib.crc32(f"wsgimon:{self.schema}".encode()) - 2**31
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_link: _Link | None = None
        self._read_link: _Link | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._schema_ready = False
        self._maintaining = threading.local()
        with self._lock:
            try:
                # Checked (and created) at start; the connection is not kept, so a
                # preloading server's master holds none when it forks its workers.
                self._drop_link(self._connect(at_start=True))
            except StoreUnavailable as exc:
                logger.warning("wsgimon: the store is unavailable at start (%s); retrying in the background", exc)

    # -- connections -----------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
            quoted = urllib.parse.quote(self._password, safe="")
            if quoted != self._password:
                text = text.replace(quoted, "***")
        return text

    def _connect(self, at_start: bool = False) -> _Link:
        import psycopg

        now = time.monotonic()
        if now < self._retry_at:
            raise StoreUnavailable(f"{self.shown}: {self._last_error} (retrying)")
        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(2, self._connect_timeout_s),
                application_name="wsgimon",
                # A process stopped inside a transaction must not hold the lock for long.
                options=f"-c search_path={self.schema} -c idle_in_transaction_session_timeout=10000",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            self._connect_failed(self._scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)))
            raise StoreUnavailable(f"{self.shown}: {self._last_error}") from None
        link = _Link(conn)
        try:
            if not self._schema_ready:
                self._ensure_schema(link)
                self._schema_ready = True
        except ValueError as exc:
            self._drop_link(link)
            if at_start:
                raise
            self._connect_failed(str(exc))
            raise StoreUnavailable(str(exc)) from None
        except psycopg.Error as exc:
            self._drop_link(link)
            self._connect_failed(self._scrub(str(exc).strip()))
            raise StoreUnavailable(f"{self.shown}: {self._last_error}") from None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        return link

    def _connect_failed(self, reason: str) -> None:
        self._failures += 1
        self._last_error = reason
        self._retry_at = time.monotonic() + _RETRY_AFTER_S[min(self._failures, len(_RETRY_AFTER_S)) - 1]

    def _ensure_schema(self, link: _Link) -> None:
        """Create or check the schema, once per process, in a transaction no other process overlaps."""
        conn = link.conn
        link.wait_at_most(max(self._busy_timeout_s, 5.0))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,)
                )
            }
            if tables:
                if "meta" not in tables:
                    raise ValueError(
                        f"storage {self.shown}: the schema holds tables of another application "
                        f"({', '.join(sorted(tables)[:5])}); name another with ?schema="
                    )
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("application") != APPLICATION:
                    raise ValueError(f"storage {self.shown}: the schema is not wsgimon's; name another with ?schema=")
                version = int(meta.get("schema_version", "0"))
                if version > SCHEMA_VERSION:
                    raise ValueError(
                        f"storage {self.shown} has schema version {version}, newer than this wsgimon "
                        f"supports ({SCHEMA_VERSION}); upgrade wsgimon"
                    )
                if version == SCHEMA_VERSION:
                    return
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            for statement in schema_statements("postgresql"):
                conn.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {added_column(column, kind, 'postgresql')}")
            for table in _REWRITTEN_TABLES:
                # Room on each page for the next version of a row: the maintainer rewrites the shared
                # rows every fold, and an update that fits its page leaves no dead index entry (HOT).
                conn.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('application', %s), ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (APPLICATION, str(SCHEMA_VERSION)),
            )

    def _drop_link(self, link: _Link) -> None:
        if link.pid != os.getpid():
            # Inherited through fork: closing would end the parent's session on the shared
            # socket. The descriptor becomes /dev/null first, so closing touches nothing.
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(devnull, link.conn.pgconn.socket)
                finally:
                    os.close(devnull)
        with contextlib.suppress(Exception):
            link.conn.close()

    def _link(self, name: str) -> _Link:
        link: _Link | None = getattr(self, name)
        if link is not None:
            if link.pid == os.getpid() and not link.conn.closed:
                return link
            setattr(self, name, None)
            self._drop_link(link)
        link = self._connect()
        setattr(self, name, link)
        return link

    def _failed(self, name: str, link: _Link, exc: Exception) -> StoreUnavailable:
        if getattr(self, name) is link:
            setattr(self, name, None)
        self._drop_link(link)
        text = str(exc).strip().splitlines()
        return StoreUnavailable(f"{self.shown}: {self._scrub(text[0] if text else type(exc).__name__)}")

    @contextlib.contextmanager
    def _writing(self, wait: bool = True) -> Iterator[Session]:
        import psycopg

        if not self._lock.acquire(timeout=self.remaining(self._busy_timeout_s) if wait else 0):
            raise StoreUnavailable("another write of this process is waiting for the store")
        self._writing_thread = threading.get_ident()
        try:
            link = self._link("_write_link")
            try:
                if _Session(link.conn).in_transaction:
                    link.conn.execute("ROLLBACK")  # left open by a failure mid-statement: never built upon
                budget = _MAINTENANCE_STATEMENT_S if getattr(self._maintaining, "on", False) else self._busy_timeout_s
                link.wait_at_most(self.remaining(budget))
                yield _Session(link.conn)
            except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
                # Out of time or waiting for a lock: the connection is fine once the transaction
                # is rolled back (it may have failed in BEGIN's lock, before the caller's own
                # rollback); the caller retries later (the recorder keeps its batch).
                try:
                    if _Session(link.conn).in_transaction:
                        link.conn.execute("ROLLBACK")
                except psycopg.Error as broken:
                    raise self._failed("_write_link", link, broken) from None
                raise StoreUnavailable(f"{self.shown}: {self._scrub(str(exc).strip())}") from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # Cut off, or the server went away: a new connection next time.
                raise self._failed("_write_link", link, exc) from None
        finally:
            self._writing_thread = None
            self._lock.release()

    def maintain(self, now: float) -> None:
        self._maintaining.on = True
        try:
            super().maintain(now)
        finally:
            self._maintaining.on = False

    def _begin_append(self, session: Session) -> None:
        session.execute("BEGIN")  # appends conflict with no one: no advisory lock

    def _try_begin(self, session: Session, wait: bool) -> bool:
        if wait:
            self._begin(session)
            return True
        session.execute("BEGIN")
        if session.execute("SELECT pg_try_advisory_xact_lock(?)", (self._lock_key,)).fetchone()[0]:
            return True
        session.execute("ROLLBACK")
        return False

    def _begin(self, session: Session) -> None:
        session.execute("BEGIN")
        session.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key,))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read; a connection that turns out stale (the server restarted since it was opened) is
        replaced and the read tried once more, so a restart costs no read."""
        import psycopg

        self._fresh()
        if not self._read_lock.acquire(timeout=self.remaining(READ_TIMEOUT_S)):
            raise StoreUnavailable("another read of this process is waiting for the store")
        try:
            for attempt in (1, 2):
                reused = self._read_link is not None
                link = self._link("_read_link")
                try:
                    link.wait_at_most(self.remaining(READ_TIMEOUT_S))
                    return _Session(link.conn).execute(sql, params).fetchall()
                except psycopg.errors.QueryCanceled as exc:
                    # The statement ran out of time; the connection is fine.
                    raise StoreUnavailable(f"{self.shown}: {self._scrub(str(exc).strip())}") from None
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    failure = self._failed("_read_link", link, exc)
                    if attempt == 2 or not reused:
                        raise failure from None
            raise AssertionError("unreachable")
        finally:
            self._read_lock.release()

    def health(self) -> tuple[bool, str]:
        if self._last_error:
            return False, f"{self.shown}: {self._last_error}"
        return True, self.shown

    def close(self) -> None:
        for lock, name in ((self._lock, "_write_link"), (self._read_lock, "_read_link")):
            with lock:
                link: _Link | None = getattr(self, name)
                setattr(self, name, None)
                if link is not None:
                    self._drop_link(link)
