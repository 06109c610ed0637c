"""Check-ins end to end: pings through the API, ``wsgimon.checkin`` in Python, ``wsgimon checkin`` as a
command, all on a real SQLite store file that the app's middleware reads."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wsgimon
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware
from wsgimon.stores.contract import MAX_CHECKINS

ROOT = Path(__file__).resolve().parent.parent


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/checkins.sqlite3"


@pytest.fixture
def monitor(storage: str) -> Iterator[MonitorMiddleware]:
    monitor = MonitorMiddleware(hello, storage=storage)
    yield monitor
    monitor.close()


def post(
    app: Any, path: str, body: bytes = b"", content_type: str = "text/plain", query: str = "", **extra: Any
) -> tuple[int, Any]:
    result = call(
        app,
        "/monitoring" + path,
        method="POST",
        query=query,
        **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type},
        **extra,
    )
    assert result.status is not None, result.error
    return int(result.status.split()[0]), json.loads(result.body)


def checkin_of(monitor: MonitorMiddleware, name: str, query: str = "") -> dict[str, Any]:
    found = get_json(monitor, f"/monitoring/checkins?name={name}" + (f"&{query}" if query else ""))["checkins"]
    assert len(found) == 1, found
    item: dict[str, Any] = found[0]
    return item


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_deployment_without_monitors_lists_none(monitor: MonitorMiddleware) -> None:
    assert get_json(monitor, "/monitoring/checkins") == {"checkins": []}
    assert monitor.store.checkin_monitors() == []


def test_a_ping_with_a_schedule_creates_the_monitor_and_runs_are_timed(monitor: MonitorMiddleware) -> None:
    status, body = post(monitor, "/checkins/nightly-backup/start", query="every=1d&grace=1h")
    assert status == 200 and body["name"] == "nightly-backup" and body["state"] == "new"
    assert body["schedule"] == {"every_s": 86400.0, "cron": None, "timezone": None} and body["grace_s"] == 3600.0
    assert body["recent_runs"][0]["ended"] is None
    status, body = post(monitor, "/checkins/nightly-backup", b"dumped 3 tables\n")
    assert status == 200 and body["state"] == "up"
    run = body["recent_runs"][0]
    assert run["ok"] is True and run["started"] and run["ended"] and run["duration_s"] >= 0
    item = checkin_of(monitor, "nightly-backup")
    assert item["recent_runs"][0]["log"] == "dumped 3 tables\n" and item["last_ping"] == run["ended"]
    assert item["next_expected"] > item["last_ping"]
    # A JSON body may carry the schedule; a cron with its zone.
    status, body = post(
        monitor,
        "/checkins/report",
        json.dumps({"cron": "0 3 * * *", "timezone": "Europe/Paris", "grace": "30m", "duration_s": 12.5}).encode(),
        "application/json",
    )
    assert status == 200 and body["schedule"]["cron"] == "0 3 * * *" and body["last_duration_s"] == 12.5
    assert [m["name"] for m in get_json(monitor, "/monitoring/checkins")["checkins"]] == ["nightly-backup", "report"]
    # The list shows no logs (only name= does).
    listed = get_json(monitor, "/monitoring/checkins")["checkins"]
    assert all("log" not in run for item in listed for run in item["recent_runs"])


def test_fail_and_exit_codes_make_it_failed_until_a_success(monitor: MonitorMiddleware) -> None:
    post(monitor, "/checkins/invoices/start", query="every=1h")
    status, body = post(monitor, "/checkins/invoices/fail", query="exit_code=3")
    assert status == 200 and body["state"] == "failed" and "exit code 3" in body["detail"]
    status, body = post(monitor, "/checkins/invoices", query="exit_code=2")  # a non-zero exit is a failure
    assert body["state"] == "failed" and body["recent_runs"][0]["exit_code"] == 2
    status, body = post(monitor, "/checkins/invoices", query="exit_code=0")
    assert body["state"] == "up"


def test_a_start_with_no_end_is_running_too_long_after_its_grace(monitor: MonitorMiddleware) -> None:
    status, body = post(monitor, "/checkins/export/start", query="every=1h&grace=1s")
    assert status == 200 and body["state"] == "new"
    wait_for(lambda: checkin_of(monitor, "export")["state"] == "running_too_long")
    item = checkin_of(monitor, "export")
    assert "not ended" in item["detail"] and item["recent_runs"][0]["ended"] is None


def test_the_log_is_kept_without_secrets_and_only_its_tail(monitor: MonitorMiddleware) -> None:
    body = b"connecting with password=hunter2\nAuthorization: Bearer abcdef0123456789\ndone\n"
    status, _ = post(monitor, "/checkins/sync", body, query="every=1h")
    assert status == 200
    log = checkin_of(monitor, "sync")["recent_runs"][0]["log"]
    assert "hunter2" not in log and "abcdef0123456789" not in log and log.endswith("done\n")
    assert "[REDACTED]" in log
    stored = monitor.store.checkin_runs("sync", 1)[0].log or ""
    assert "hunter2" not in stored
    long = b"x" * 30_000 + b"the end"
    assert post(monitor, "/checkins/sync", long)[0] == 200
    log = checkin_of(monitor, "sync")["recent_runs"][0]["log"]
    assert len(log) == 10_000 and log.endswith("the end")
    status, answer = post(monitor, "/checkins/sync", b"x" * (64 * 1024 + 1))
    assert status == 413 and "at most" in answer["error"]


def test_unknown_monitors_bad_input_and_cross_site_pings_are_clear_4xx(monitor: MonitorMiddleware) -> None:
    status, body = post(monitor, "/checkins/never-declared")
    assert status == 404 and "every=1d" in body["error"] and "checkins option" in body["error"]
    cases = [
        ("/checkins/backup", "every=soon", b"", "text/plain", "every must look like"),
        ("/checkins/backup", "cron=61+*+*+*+*", b"", "text/plain", "bad cron expression"),
        ("/checkins/backup", "cron=0+3+*+*+*&timezone=Mars/Olympus", b"", "text/plain", "unknown time zone"),
        ("/checkins/backup", "every=1d&cron=0+3+*+*+*", b"", "text/plain", "one of every or cron"),
        ("/checkins/backup", "grace=1h", b"", "text/plain", "one of every or cron"),
        ("/checkins/bad%20name!", "every=1d", b"", "text/plain", "check-in name"),
        ("/checkins/backup", "every=1d&exit_code=x", b"", "text/plain", "exit_code"),
        ("/checkins/backup", "every=1d&duration_s=-1", b"", "text/plain", "duration_s"),
        ("/checkins/backup", "every=1d&when=now", b"", "text/plain", "unknown parameter"),
        ("/checkins/backup/start", "every=1d&exit_code=1", b"", "text/plain", "end of a run"),
        ("/checkins/backup", "", b"[1, 2]", "application/json", "JSON body"),
        ("/checkins/backup", "", b'{"every": "1d", "colour": "red"}', "application/json", "unknown field"),
        ("/checkins/backup", "every=1d", b'{"every": "1.5h"}', "application/json", "every must look like"),
        ("/checkins/backup", "every=400d", b"", "text/plain", "every must look like"),
        ("/checkins/backup", "every=1d&grace=0s", b"", "text/plain", "grace must look like"),
        ("/checkins/backup", "every=1d&exit_code=-1", b"", "text/plain", "exit_code"),
        ("/checkins/backup", "every=1d&exit_code=256", b"", "text/plain", "exit_code"),
        ("/checkins/backup", "", b'{"every": "1d", "log": 5}', "application/json", "log must be"),
        ("/checkins/backup", "", b'{"every": "1d", "duration_s": NaN}', "application/json", "duration_s"),
    ]
    for path, query, body_bytes, content_type, message in cases:
        status, body = post(monitor, path, body_bytes, content_type, query=query)
        assert 400 <= status < 500 and message in body["error"], (path, query, status, body)
    assert monitor.store.checkin_monitors() == []
    status, body = post(monitor, "/checkins/backup", query="every=1d", HTTP_ORIGIN="https://evil.example")
    assert status == 403 and monitor.store.checkin_monitors() == []
    # A GET of a ping's address says which method to use.
    assert call(monitor, "/monitoring/checkins/backup").status == "405 METHOD NOT ALLOWED"
    assert get_json(monitor, "/monitoring/checkins?name=nope")["error"].startswith("no check-in monitor")


def test_pings_need_credentials_like_every_write(storage: str) -> None:
    guarded = MonitorMiddleware(hello, storage=storage, token="s3cret-token-for-tests")
    try:
        status, body = post(guarded, "/checkins/backup", query="every=1d")
        assert status == 401
        status, body = post(
            guarded, "/checkins/backup", query="every=1d", HTTP_AUTHORIZATION="Bearer s3cret-token-for-tests"
        )
        assert status == 200 and body["state"] == "up"
    finally:
        guarded.close()


def test_too_many_pings_for_one_monitor_get_a_429(monitor: MonitorMiddleware) -> None:
    statuses = [post(monitor, "/checkins/chatty", query="every=1m")[0] for _ in range(35)]
    assert statuses[:30] == [200] * 30 and 429 in statuses[30:]
    result = call(monitor, "/monitoring/checkins/chatty", method="POST")
    assert result.status is not None and result.status.startswith("429")
    assert dict(result.headers)["Retry-After"] == "2" and "at most 30 a minute" in json.loads(result.body)["error"]
    # Another monitor is not limited by it.
    assert post(monitor, "/checkins/quiet", query="every=1m")[0] == 200


def test_a_ping_cannot_add_a_monitor_past_the_cap(monitor: MonitorMiddleware) -> None:
    store = monitor.store
    now = time.time()
    from wsgimon.stats.checkins import parse_monitor

    for n in range(MAX_CHECKINS):
        store.declare_checkin(parse_monitor(f"job-{n}", {"every": "1d"}, now))
    status, body = post(monitor, "/checkins/one-too-many", query="every=1d")
    assert status == 409 and str(MAX_CHECKINS) in body["error"]
    assert len(store.checkin_monitors()) == MAX_CHECKINS
    # A known one still pings.
    assert post(monitor, "/checkins/job-7")[0] == 200
    assert len(get_json(monitor, "/monitoring/checkins?runs=1")["checkins"]) == MAX_CHECKINS


def test_the_python_api_as_a_block_and_as_a_decorator(monitor: MonitorMiddleware, storage: str) -> None:
    with wsgimon.checkin("nightly", storage=storage, every="1d", grace="1h"):
        time.sleep(0.01)
    item = checkin_of(monitor, "nightly")
    assert item["state"] == "up" and item["recent_runs"][0]["duration_s"] >= 0.01
    with pytest.raises(KeyError) as raised, wsgimon.checkin("nightly", storage=storage):
        raise KeyError("password=hunter2")
    assert raised.value.args == ("password=hunter2",)  # the job's own exception, unchanged
    item = checkin_of(monitor, "nightly")
    assert item["state"] == "failed" and item["recent_runs"][0]["error"] == "KeyError"
    assert "KeyError" in item["detail"] and "hunter2" not in (item["recent_runs"][0]["log"] or "")

    @wsgimon.checkin("decorated", storage=storage, every="1h")
    def job(n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n * 2

    assert job(21) == 42
    assert checkin_of(monitor, "decorated")["state"] == "up"
    with pytest.raises(ValueError, match="negative"):
        job(-1)
    assert checkin_of(monitor, "decorated")["recent_runs"][0]["error"] == "ValueError"
    assert job(1) == 2
    runs = checkin_of(monitor, "decorated")["recent_runs"]
    assert [run["ok"] for run in runs] == [True, False, True]
    # The app's own store object works too.
    with wsgimon.checkin("in-process", storage=monitor.store, every="1h"):
        pass
    assert checkin_of(monitor, "in-process")["state"] == "up"


def test_the_python_api_fails_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = f"sqlite:///{tmp_path}/nowhere/missing.sqlite3"
    with wsgimon.checkin("backup", storage=missing, every="1d"):
        ran = True
    assert ran and "not recorded" in caplog.text and "no store at" in caplog.text
    caplog.clear()
    with pytest.raises(RuntimeError, match="the job's own"), wsgimon.checkin("backup", storage="memory://"):
        raise RuntimeError("the job's own")
    assert "memory://" in caplog.text
    caplog.clear()
    with wsgimon.checkin("bad name!", storage=missing, every="1d"):
        pass
    assert "check-in name" in caplog.text
    assert wsgimon.checkin("nobody", storage=missing).start() is False


def test_the_python_api_on_an_undeclared_monitor_logs_how_to_declare_it(
    monitor: MonitorMiddleware, storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with wsgimon.checkin("undeclared", storage=storage):
        pass
    assert "no check-in monitor 'undeclared'" in caplog.text and "every=" in caplog.text
    assert monitor.store.checkin_monitors() == []


def run_cli(storage: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSGIMON_STORAGE": storage}
    return subprocess.run(
        [sys.executable, "-m", "wsgimon", "checkin", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_command_runs_a_job_between_its_pings_and_exits_as_it_did(monitor: MonitorMiddleware, storage: str) -> None:
    failed = run_cli(storage, "backup", "--every", "1h", "--", "sh", "-c", "echo working; exit 3")
    assert failed.returncode == 3, failed.stderr
    assert failed.stdout == "working\n" and failed.stderr == ""
    item = checkin_of(monitor, "backup")
    assert item["state"] == "failed" and item["recent_runs"][0]["exit_code"] == 3 and "exit code 3" in item["detail"]
    assert item["recent_runs"][0]["started"] is not None
    done = run_cli(storage, "backup", "--", "sh", "-c", "exit 0")
    assert done.returncode == 0, done.stderr
    item = checkin_of(monitor, "backup")
    assert item["state"] == "up" and item["recent_runs"][0]["ok"] is True
    missing = run_cli(storage, "backup", "--", "/nonexistent/command")
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    assert checkin_of(monitor, "backup")["state"] == "failed"


def test_the_command_pings_alone_and_reports_its_own_trouble_in_one_line(
    monitor: MonitorMiddleware, storage: str, tmp_path: Path
) -> None:
    started = run_cli(storage, "import", "--cron", "0 3 * * *", "--timezone", "Europe/Paris", "--start")
    assert started.returncode == 0, started.stderr
    item = checkin_of(monitor, "import")
    assert item["schedule"] == {"every_s": None, "cron": "0 3 * * *", "timezone": "Europe/Paris"}
    assert item["recent_runs"][0]["ended"] is None
    assert run_cli(storage, "import").returncode == 0
    assert checkin_of(monitor, "import")["recent_runs"][0]["ok"] is True
    assert run_cli(storage, "import", "--fail").returncode == 0
    assert checkin_of(monitor, "import")["state"] == "failed"
    unknown = run_cli(storage, "nobody-declared-me")
    assert unknown.returncode == 1 and "no check-in monitor" in unknown.stderr
    bad = run_cli(storage, "import", "--every", "soon")
    assert bad.returncode == 2 and "every must look like" in bad.stderr and "Traceback" not in bad.stderr
    nowhere = run_cli(f"sqlite:///{tmp_path}/missing.sqlite3", "import", "--", "sh", "-c", "exit 0")
    assert nowhere.returncode == 0 and "no store at" in nowhere.stderr  # the job ran anyway
    deleted = run_cli(storage, "import", "--delete")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert [m.name for m in monitor.store.checkin_monitors()] == []


def test_the_ping_limit_refills_and_stays_bounded_in_memory() -> None:
    from wsgimon.api.checkins import PingLimiter

    limiter = PingLimiter(30)
    assert all(limiter.allow("job", 100.0) for _ in range(30)) and not limiter.allow("job", 100.0)
    assert limiter.allow("job", 102.1) and not limiter.allow("job", 102.2)
    for n in range(10_000):
        limiter.allow(f"scan-{n}", 200.0)
    assert len(limiter._buckets) <= 4096


def test_a_job_that_exits_through_system_exit_is_told_by_its_code(monitor: MonitorMiddleware, storage: str) -> None:
    with pytest.raises(SystemExit), wsgimon.checkin("exiting", storage=storage, every="1h"):
        sys.exit(0)
    assert checkin_of(monitor, "exiting")["state"] == "up"
    with pytest.raises(SystemExit), wsgimon.checkin("exiting", storage=storage):
        sys.exit(4)
    run = checkin_of(monitor, "exiting")["recent_runs"][0]
    assert run["ok"] is False and run["exit_code"] == 4
