"""The SQLite store under the faults operators meet: a directory or a lock where the file should be,
permissions taken away and given back, the file deleted under running workers, a locked store while
health is asked."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.servers import ROOT, gunicorn_server, wait_until
from tests.test_gunicorn_workers import every_view_is, send_plan, total_requests, worker_pids
from wsgimon import MonitorMiddleware


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.WARNING]


def test_a_directory_at_the_path_at_start_is_a_degraded_start_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.sqlite3"
    path.mkdir()
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=30)
    assert call(monitor, "/a").body == b"hello"
    monitor.flush()
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["store"]["status"] == "degraded"
    assert "1 requests kept in memory" in health["checks"]["store"]["detail"]
    assert any("unavailable at start" in message for message in warnings_of(caplog))
    path.rmdir()
    monitor.flush()
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1
    assert get_json(monitor, "/monitoring/health")["checks"]["store"]["status"] == "ok"
    monitor.close()


def test_a_new_file_locked_at_start_is_a_degraded_start_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=30)
        assert call(monitor, "/a").body == b"hello"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    monitor.flush()
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1
    monitor.close()


@pytest.mark.internal_errors
def test_health_does_not_wait_for_a_write_that_waits_for_a_locked_store(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=30)
    call(monitor, "/before")
    monitor.flush()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    flushing = threading.Thread(target=monitor.flush)  # waits up to the busy timeout (2 s)
    try:
        call(monitor, "/during")
        flushing.start()
        wait_until(lambda: monitor.recorder._write_lock.locked())
        status, health = call(monitor, "/monitoring/health").status, get_json(monitor, "/monitoring/health")
        # Answered while the write still waits: health never queues behind the store.
        assert monitor.recorder._write_lock.locked() and flushing.is_alive()
        assert status == "200 OK" and health["status"] in ("ok", "degraded")
        stats = call(monitor, "/monitoring/stats")
        assert stats.status == "200 OK", "reads go through their own connection"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        flushing.join(10)
    monitor.flush()
    assert get_json(monitor, "/monitoring/stats")["requests"] == 2
    monitor.close()


def test_a_deleted_file_is_restored_with_its_history(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gone.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=30)
    for n in range(5):
        call(monitor, f"/before/{n}")
    monitor.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    call(monitor, "/after")
    monitor.flush()
    assert path.is_file()
    assert get_json(monitor, "/monitoring/stats?window=all")["requests"] == 6
    assert sum("was deleted while in use" in message for message in warnings_of(caplog)) == 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    monitor.close()


@pytest.mark.slow
def test_a_store_deleted_under_four_workers_loses_no_request(tmp_path: Path) -> None:
    env = {"WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3", "WSGIMON_FLUSH_INTERVAL": "0.5"}
    with gunicorn_server("demo_app:app", "-w", "4", "-k", "gthread", "--threads", "4", env=env) as (url, _):
        sent = send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path}/shared.sqlite3{suffix}").unlink(missing_ok=True)
        sent += send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)
        health = httpx.get(url + "/monitoring/health").json()
        assert health["checks"]["store"]["status"] == "ok"


@pytest.mark.slow
def test_a_worker_restarted_with_a_directory_at_the_store_path_boots_and_serves(tmp_path: Path) -> None:
    """mv the file away, mkdir in its place, kill -9 a worker: the server stays up."""
    store = tmp_path / "shared.sqlite3"
    env = {"WSGIMON_STORAGE": f"sqlite:///{store}", "WSGIMON_FLUSH_INTERVAL": "0.5"}
    with gunicorn_server("demo_app:app", "-w", "2", env=env) as (url, master):
        sent = send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)
        store.rename(tmp_path / "moved.sqlite3")
        store.mkdir()
        workers = worker_pids(master.pid)
        os.kill(workers[0], signal.SIGKILL)
        wait_until(lambda: len(set(worker_pids(master.pid)) - set(workers)) == 1, 20)
        for _ in range(20):
            assert httpx.get(url + "/test/normal", timeout=10).status_code == 200
        assert master.poll() is None
        wait_until(lambda: httpx.get(url + "/monitoring/health").json()["checks"]["store"]["status"] == "degraded")
        store.rmdir()
        # Writable again: whichever worker comes first makes a file (the moved one keeps the history).
        more = send_plan(url)
        wait_until(lambda: total_requests(url) >= more, 20)
        wait_until(lambda: httpx.get(url + "/monitoring/health").json()["checks"]["store"]["status"] == "ok")


_AS_NOBODY = textwrap.dedent(
    """
    import json, os, pwd, sys
    import encodings.idna, wsgimon.api.app, wsgimon.stores.sqlite  # imported as root: the interpreter is not nobody's
    from wsgimon import MonitorMiddleware
    from tests import wsgi_apps
    from tests.helpers import call, get_json

    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)  # everything below runs as another, unprivileged user
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="sqlite:///" + sys.argv[1], flush_interval=60)
    if sys.argv[2] == "create":
        sys.exit(0)
    for n in range(50):
        call(monitor, f"/while-read-only/{n}")
    monitor.flush()
    print(json.dumps({"error": monitor.recorder.store_error}), flush=True)
    sys.stdin.readline()  # permissions are given back
    monitor.flush()
    print(json.dumps({"error": monitor.recorder.store_error,
                      "requests": get_json(monitor, "/monitoring/stats?window=all")["requests"]}), flush=True)
    """
)


@pytest.fixture
def directory_of_nobody() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    directory = Path(tempfile.mkdtemp(prefix="wsgimon-ro-", dir="/tmp"))
    shutil.chown(directory, "nobody", "nogroup")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.internal_errors
def test_a_connection_opened_while_read_only_is_reopened_when_writes_work_again(directory_of_nobody: Path) -> None:
    import json

    path = directory_of_nobody / "store.sqlite3"
    command = [sys.executable, "-c", _AS_NOBODY, str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    subprocess.run([*command, "create"], env=env, check=True, timeout=60, cwd=directory_of_nobody)
    # The store exists, owned by nobody; now nobody may not write it.
    for item in [*directory_of_nobody.iterdir(), directory_of_nobody]:
        item.chmod(0o555 if item.is_dir() else 0o444)
    worker = subprocess.Popen(
        [*command, "serve"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=directory_of_nobody,
    )
    try:
        assert worker.stdout is not None and worker.stdin is not None
        line = worker.stdout.readline()
        assert line, worker.stderr.read() if worker.stderr else ""
        first = json.loads(line)
        assert first["error"], "writing to a read-only store failed"
        directory_of_nobody.chmod(0o700)
        for item in directory_of_nobody.iterdir():
            item.chmod(0o600)
        worker.stdin.write("\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        assert line, worker.stderr.read() if worker.stderr else ""
        second = json.loads(line)
        assert second == {"error": None, "requests": 50}
    finally:
        worker.kill()
        worker.communicate(timeout=10)  # and closes the pipes
