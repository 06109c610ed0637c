"""A private PostgreSQL server for tests, on 127.0.0.1 and a free port; never the system instance.

``PostgresServer`` runs ``initdb`` in a temporary directory and starts the server with
``pg_ctl``: it listens on 127.0.0.1 only, keeps its unix socket in that directory and runs
with ``fsync=off`` (a committed transaction still reaches the kernel, so it survives an
``immediate`` stop, the equivalent of a crash of the server). As root it runs the server
binaries as an unprivileged user (``postgres``, else ``nobody``), since PostgreSQL refuses
to run as root.

Local (unix socket) connections are trusted; TCP connections need the password, so
``server.url`` (``postgresql://wsgimon:secret@127.0.0.1:PORT/wsgimon``) exercises a real
password login. That URL carries the password: do not print it in logs or assertions.

Fixtures: list ``"tests.postgres"`` in ``pytest_plugins`` of ``tests/conftest.py``, or
bind them in the test module that uses them::

    from tests import postgres

    postgres_server = postgres.postgres_server
    postgres_url = postgres.postgres_url

``postgres_server`` is one server for the session; ``postgres_url`` is the URL of a fresh,
empty database per test (dropped afterwards).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import pytest

StopMode = Literal["smart", "fast", "immediate"]

USER = "wsgimon"
PASSWORD = "pw-Tr0ub4dor-9731"  # distinctive, so a test can look for it in any text
DATABASE = "wsgimon"

INITDB_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
QUERY_TIMEOUT = 30.0

_BINARIES = ("initdb", "pg_ctl", "postgres")
# A unix socket path is limited to 107 bytes; ".s.PGSQL.65535" takes 15 of them.
_MAX_SOCKET_DIR = 90


class PostgresError(RuntimeError):
    """The test server could not be set up, started, stopped or queried."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, newest version first.

    ``WSGIMON_PG_BINDIR`` overrides; then Debian's ``/usr/lib/postgresql/<version>/bin``;
    then whatever ``pg_ctl`` is on PATH.
    """
    candidates: list[Path] = []
    override = os.environ.get("WSGIMON_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    candidates.extend(sorted(debian, key=lambda p: _version_key(p.parent.name), reverse=True))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in _BINARIES):
            return bindir
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _traversable_by_others(path: Path) -> bool:
    """Whether every directory on the way to ``path`` lets any user through."""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def _base_dir(as_other_user: bool) -> str:
    base = Path(tempfile.gettempdir()).resolve()
    if len(str(base)) > _MAX_SOCKET_DIR - 30 or (as_other_user and not _traversable_by_others(base)):
        return "/tmp"
    return str(base)


class PostgresServer:
    """A throwaway PostgreSQL cluster: ``start()``, ``stop()``, ``psql()``, ``cleanup()``.

    The data directory and the port stay the same across ``stop()`` and ``start()``, so a
    test can take the database away under load and bring it back with its data.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        user: str = USER,
        password: str = PASSWORD,
        database: str = DATABASE,
        settings: dict[str, str] | None = None,
    ) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PostgresError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
        self.bindir: Path = found
        self.user = user
        self.password = password
        self.database = database
        #: postgresql.conf settings over the defaults below (``{"max_connections": "600"}``)
        self.settings = dict(settings or {})
        self._owner_pid = os.getpid()
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._run_as = _unprivileged_user()
            if self._run_as is None:
                raise PostgresError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
        self.base_dir = Path(tempfile.mkdtemp(prefix="wsgimon-pg-", dir=_base_dir(self._run_as is not None)))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_path = self.base_dir / "server.log"
        self.port = _free_port()
        self._db_counter = itertools.count(1)
        self._cleaned = False
        atexit.register(self.cleanup)
        try:
            self._initdb()
            self._start(first=True)
            self.psql(f"CREATE DATABASE {_ident(database)}", database="postgres")
        except BaseException:
            self.cleanup()
            raise

    # -- public API ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE`` (carries the password)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The URL, with password, of another database of this server."""
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def run_as(self) -> str | None:
        """The unprivileged user that runs the server when the tests run as root."""
        return self._run_as.pw_name if self._run_as else None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def is_running(self) -> bool:
        if self._cleaned:
            return False
        result = self._run_pg(["pg_ctl", "-D", str(self.data_dir), "status"], timeout=STOP_TIMEOUT, check=False)
        return result.returncode == 0

    def start(self) -> None:
        """Start the server again (same data directory, same port); a no-op if it runs."""
        if self._cleaned:
            raise PostgresError("this server was cleaned up")
        if not self.is_running():
            self._start(first=False)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: ``fast`` rolls back and disconnects, ``immediate`` is a crash."""
        if self._cleaned or not self.is_running():
            return
        self._run_pg(
            ["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(STOP_TIMEOUT)), "stop"],
            timeout=STOP_TIMEOUT + 15,
            what=f"pg_ctl stop -m {mode}",
        )

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL (several statements allowed) and return rows as psql ``-At`` prints them.

        Columns are separated by ``|``, rows by newlines; NULL is an empty string. Uses
        psql over the unix socket, or psycopg over TCP when psql is missing.
        """
        database = database or self.database
        psql = self.bindir / "psql"
        if not os.access(psql, os.X_OK):
            return self._query_psycopg(sql, database)
        command = [
            str(psql),
            *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
            *("-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", database),
            *("-f", "-"),
        ]
        try:
            result = subprocess.run(
                command,
                input=sql,
                capture_output=True,
                text=True,
                timeout=QUERY_TIMEOUT,
                env=self._env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"psql timed out after {QUERY_TIMEOUT} s on port {self.port}") from exc
        if result.returncode != 0:
            raise PostgresError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout.rstrip("\n")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (``test_N`` unless named) and return its name."""
        name = name or f"test_{next(self._db_counter)}"
        self.psql(f"CREATE DATABASE {_ident(name)}", database="postgres")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)", database="postgres")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def cleanup(self) -> None:
        """Stop the server at once and remove its directory; safe to call twice."""
        if self._cleaned or os.getpid() != self._owner_pid:
            return  # a forked child must not take its parent's server down
        with contextlib.suppress(Exception):
            if (self.data_dir / "postmaster.pid").exists():
                self.stop("immediate")
        self._cleaned = True
        atexit.unregister(self.cleanup)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, dir={str(self.base_dir)!r}, run_as={self.run_as!r})"

    # -- internals -----------------------------------------------------------------------

    def _initdb(self) -> None:
        if self._run_as is not None:
            os.chown(self.base_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        self.socket_dir.mkdir(mode=0o700)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._run_as is not None:
            for path in (self.socket_dir, pwfile):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            self._run_pg(
                [
                    "initdb",
                    *("-D", str(self.data_dir), "-U", self.user, f"--pwfile={pwfile}"),
                    *("--auth-local=trust", "--auth-host=scram-sha-256"),
                    *("--encoding=UTF8", "--locale=C", "--no-sync"),
                ],
                timeout=INITDB_TIMEOUT,
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'test_settings.conf'\n")
        self._write_settings()

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "shared_buffers": "16MB",
            "max_connections": "100",
            "jit": "off",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            **self.settings,
        }
        path = self.data_dir / "test_settings.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _start(self, *, first: bool) -> None:
        # Another process may take the free port between probing and binding it: on the
        # first start only (later starts must keep the port), try a new one.
        attempts = 3 if first else 1
        for attempt in range(attempts):
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._run_pg(
                    [
                        "pg_ctl",
                        *("-D", str(self.data_dir), "-l", str(self.log_path)),
                        *("-w", "-t", str(int(START_TIMEOUT)), "-s", "start"),
                    ],
                    timeout=START_TIMEOUT + 15,
                    what="pg_ctl start",
                )
                return
            except PostgresError:
                new_log = self._log_since(log_size)
                with contextlib.suppress(PostgresError):
                    self.stop("immediate")
                if attempt + 1 < attempts and "could not bind" in new_log:
                    self.port = _free_port()
                    self._write_settings()
                    continue
                raise

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _run_pg(
        self, args: Sequence[str], *, timeout: float, what: str = "", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        extra: dict[str, Any] = {}
        if self._run_as is not None:
            extra = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                cwd=self.base_dir,
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **extra,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(
                f"{what or args[0]} timed out after {time.monotonic() - started:.1f} s "
                f"(port {self.port}, log {self.log_path}):\n{self.log_tail()}"
            ) from exc
        if check and result.returncode != 0:
            raise PostgresError(
                f"{what or args[0]} failed ({result.returncode}; port {self.port}, log {self.log_path}):\n"
                f"{(result.stdout + result.stderr).strip()}\n--- server log ---\n{self.log_tail()}"
            )
        return result

    def _env(self) -> dict[str, str]:
        # PG* variables (PGHOST, PGPORT, PGDATABASE, ...) would point the tools elsewhere.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(self.base_dir))
        return env

    def _query_psycopg(self, sql: str, database: str) -> str:
        import psycopg

        lines: list[str] = []
        with psycopg.connect(self.url_for(database), autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(sql)
            while True:
                if cursor.description is not None:
                    lines.extend("|".join(_text(value) for value in row) for row in cursor.fetchall())
                if not cursor.nextset():
                    break
        return "\n".join(lines)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the whole session (skips if none is installed)."""
    if find_bindir() is None:
        pytest.skip(
            "PostgreSQL server binaries not found: install Debian's postgresql package "
            "(/usr/lib/postgresql/<version>/bin) or set WSGIMON_PG_BINDIR"
        )
    if os.geteuid() == 0 and _unprivileged_user() is None:
        pytest.skip("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL (with password) of a fresh, empty database, dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url_for(name)
    # A test may leave the server stopped; the next test needs it back.
    postgres_server.start()
    postgres_server.drop_database(name)
