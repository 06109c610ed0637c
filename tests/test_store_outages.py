"""Nothing dropped silently: workers that exit or are killed while the store cannot be written, the
maintainer killed in the middle of a fold, a PostgreSQL restart under readers, a full disk.

Each runs a real gunicorn against a real SQLite file or a private PostgreSQL server, and counts
every request back.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.servers import gunicorn_server, wait_until
from tests.test_gunicorn_workers import send_plan, total_requests, worker_pids
from wsgimon.recording.process_info import pid_exists
from wsgimon.stores.postgres import PostgresStore

FLUSH = 0.3
pytestmark = pytest.mark.slow
postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def env(storage: str) -> dict[str, str]:
    return {"WSGIMON_STORAGE": storage, "WSGIMON_FLUSH_INTERVAL": str(FLUSH)}


def spooled_requests(directory: Path) -> int:
    """Requests the spool files in ``directory`` hold (0 when there are none)."""
    if not directory.is_dir():
        return 0
    total = 0
    for path in directory.iterdir():
        try:
            total += int(json.loads(path.read_bytes())["requests"])
        except (OSError, ValueError):
            continue  # being replaced
    return total


def counted(url: str) -> int:
    """Requests the store counts (-1 while it answers that it is unavailable)."""
    answer = httpx.get(url + "/monitoring/stats?window=all", timeout=10)
    return int(answer.json()["requests"]) if answer.status_code == 200 else -1


def hup_and_wait(master: subprocess.Popen[bytes]) -> None:
    """A graceful restart of every worker (gunicorn's HUP), until the old ones have exited."""
    old = worker_pids(master.pid)
    master.send_signal(signal.SIGHUP)
    wait_until(lambda: not any(pid_exists(pid) for pid in old), 20)
    wait_until(lambda: len(worker_pids(master.pid)) >= 2, 20)


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "shared.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    yield path, holder
    holder.close()


def test_a_hup_while_the_sqlite_store_is_locked_loses_nothing(locked_sqlite: tuple[Path, sqlite3.Connection]) -> None:
    path, holder = locked_sqlite
    with gunicorn_server("demo_app:app", "-w", "3", env=env(f"sqlite:///{path}")) as (url, master):
        before = send_plan(url)
        wait_until(lambda: total_requests(url) == before, 20)
        holder.execute("BEGIN EXCLUSIVE")
        during = send_plan(url)
        hup_and_wait(master)
        # The exiting workers could not write: what they held is in the spool, every request of it.
        assert spooled_requests(Path(f"{path}.spool")) == during
        holder.execute("ROLLBACK")
        wait_until(lambda: counted(url) == before + during, 30)
        wait_until(lambda: spooled_requests(Path(f"{path}.spool")) == 0, 20)


def test_workers_killed_while_the_sqlite_store_is_locked_lose_nothing_they_kept(
    locked_sqlite: tuple[Path, sqlite3.Connection],
) -> None:
    path, holder = locked_sqlite
    spool = Path(f"{path}.spool")
    with gunicorn_server("demo_app:app", "-w", "3", env=env(f"sqlite:///{path}")) as (url, master):
        before = send_plan(url)
        wait_until(lambda: total_requests(url) == before, 20)
        holder.execute("BEGIN EXCLUSIVE")
        during = send_plan(url)
        # Each failed flush keeps the whole unwritten batch: once they cover every request, kill.
        wait_until(lambda: spooled_requests(spool) == during, 20)
        for pid in worker_pids(master.pid):
            os.kill(pid, signal.SIGKILL)
        holder.execute("ROLLBACK")
        wait_until(lambda: counted(url) == before + during, 30)


def test_a_hup_while_postgresql_is_down_loses_nothing(
    postgres_url: str, postgres_server: postgres.PostgresServer
) -> None:
    with gunicorn_server("demo_app:app", "-w", "3", env=env(postgres_url)) as (url, master):
        before = send_plan(url)
        wait_until(lambda: total_requests(url) == before, 20)
        postgres_server.stop("immediate")
        during = send_plan(url)
        hup_and_wait(master)
        postgres_server.start()
        wait_until(lambda: counted(url) == before + during, 30)


def test_no_read_fails_after_a_postgresql_restart(postgres_url: str, postgres_server: postgres.PostgresServer) -> None:
    with gunicorn_server("demo_app:app", "-w", "2", env=env(postgres_url)) as (url, _master):
        sent = send_plan(url)
        wait_until(lambda: total_requests(url) == sent, 20)
        # Every worker holds a connection opened before the restart.
        for _ in range(8):
            assert httpx.get(url + "/monitoring/stats", timeout=10).status_code == 200
        postgres_server.stop("fast")
        postgres_server.start()
        answers = [httpx.get(url + "/monitoring/stats?window=all", timeout=10) for _ in range(12)]
        assert [a.status_code for a in answers] == [200] * 12
        assert {a.json()["requests"] for a in answers} == {sent}


def test_the_maintainer_killed_in_the_middle_of_a_fold_loses_nothing_and_another_takes_over(
    postgres_url: str, postgres_server: postgres.PostgresServer
) -> None:
    import psycopg

    def lease_holder() -> str | None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            row = conn.execute("SELECT holder, until FROM wsgimon.leases WHERE name = 'maintainer'").fetchone()
        return None if row is None else str(row[0])

    def flushed() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            return int(conn.execute("SELECT coalesce(sum(requests), 0) FROM wsgimon.processes").fetchone()[0])

    def folds_waiting() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wsgimon' "
                    "AND wait_event_type = 'Lock' AND state = 'active'"
                ).fetchone()[0]
            )

    store = PostgresStore(postgres_url, recent_requests=10)
    spool = Path(str(store.spool_directory))
    store.close()
    with gunicorn_server("demo_app:app", "-w", "3", env=env(postgres_url)) as (url, master):
        before = send_plan(url)
        wait_until(lambda: total_requests(url) == before, 20)
        holder = wait_until(lease_holder, 20)
        maintainer = int(holder.split("|")[1])
        assert maintainer in worker_pids(master.pid)
        blocker = psycopg.connect(postgres_url)
        blocker.execute("LOCK TABLE wsgimon.buckets IN ACCESS EXCLUSIVE MODE")
        try:
            during = send_plan(url)
            # Appends go on; the maintainer's fold reads the journal and waits to write the shared rows.
            # Its own process's flushes wait behind that fold and keep their requests in the spool.
            wait_until(lambda: folds_waiting() >= 1, 20)
            wait_until(lambda: flushed() + spooled_requests(spool) == before + during, 20)
            os.kill(maintainer, signal.SIGKILL)
        finally:
            blocker.rollback()
            blocker.close()
        wait_until(lambda: (lease_holder() or holder) != holder, 30)
        assert int(str(lease_holder()).split("|")[1]) in worker_pids(master.pid)
        wait_until(lambda: counted(url) == before + during, 30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB filesystem of its own (tmpfs; needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def store_status(url: str) -> str:
    return str(httpx.get(url + "/monitoring/health", timeout=10).json()["checks"]["store"]["status"])


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    return filler


def test_a_small_disk_is_not_filled_by_the_store_and_a_full_one_that_frees_up_loses_nothing(
    small_disk: Path,
) -> None:
    store = small_disk / "store.sqlite3"
    with gunicorn_server("demo_app:app", "-w", "2", env=env(f"sqlite:///{store}")) as (url, _master):
        sent = 0
        for _ in range(6):
            sent += send_plan(url)
        wait_until(lambda: total_requests(url) == sent, 30)
        # The store and its write-ahead log leave most of the disk free.
        free = shutil.disk_usage(small_disk).free
        assert free > 512 * 1024, f"{free} bytes left"
        filler = fill(small_disk)
        # Writes that need new space fail until it is freed; the requests wait in memory meanwhile.
        during = send_plan(url) + send_plan(url)
        assert store_status(url) in ("ok", "degraded")
        filler.unlink()
        wait_until(lambda: total_requests(url) == sent + during, 30)
