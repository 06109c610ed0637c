"""The SQLite store: persistence, several writers on one file, windows, retention and faults."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.seeding import batch_of, process
from wsgimon import MonitorMiddleware
from wsgimon.stats.time_windows import HOUR
from wsgimon.stores.contract import StoreUnavailable
from wsgimon.stores.sqlite import SQLiteStore


def store_at(tmp_path: Path, **options: float) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "wsgimon.sqlite3"), recent_requests=100, **options)


def test_statistics_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stats.sqlite3"
    first = MonitorMiddleware(wsgi_apps.list_app, storage=url)
    for i in range(7):
        call(first, f"/a/{i}")
    first.close()
    second = MonitorMiddleware(wsgi_apps.list_app, storage=url)
    call(second, "/b")
    stats = get_json(second, "/monitoring/stats?window=all")
    assert stats["requests"] == 8
    assert len(get_json(second, "/monitoring/requests")["requests"]) == 8
    second.close()


def test_corrupt_file_is_a_clear_error_at_start(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ValueError, match="not a usable wsgimon database"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}")


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(ValueError, match="another application"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 1  # untouched


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.close()
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ValueError, match="newer"):
        store_at(tmp_path)


def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{tmp_path}/nope/x.sqlite3")


def warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.WARNING]


@pytest.mark.internal_errors
def test_locked_database_keeps_requests_fast_and_data_safe(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "locked.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=0.05)
    call(monitor, "/before")
    monitor.flush()
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(20)
        conn.execute("ROLLBACK")
        conn.close()

    # The request path never touches the store: any store call from this (the request) thread fails the test.
    request_thread = threading.current_thread()
    write = monitor.store.write

    def write_off_the_request_thread(*args: object, **kwargs: object) -> None:
        assert threading.current_thread() is not request_thread, "a request waited for the store"
        write(*args, **kwargs)  # type: ignore[arg-type]

    monitor.store.write = write_off_the_request_thread  # type: ignore[method-assign]
    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(5)
        for i in range(200):
            assert call(monitor, f"/during/{i}").body == b"hello"
        assert not release.is_set()
        deadline = time.monotonic() + 10
        while monitor.recorder.store_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.recorder.store_error is not None
        assert monitor.recorder.unsent_requests == 200
        assert not warned(caplog), "one write that waited out the lock is not news"
        while not warned(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        release.set()
        holder.join(10)
    warnings = warned(caplog)
    assert len(warnings) == 1 and "cannot write to the store" in warnings[0], "told once, the second time in a row"
    monitor.store.write = write  # type: ignore[method-assign]
    monitor.flush()
    assert monitor.recorder.store_error is None
    assert "writable again" in warned(caplog)[-1]
    assert get_json(monitor, "/monitoring/stats")["requests"] == 201
    monitor.close()


@pytest.mark.internal_errors
def test_deleted_then_blocked_file_degrades_health_and_is_restored_without_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsgimon")
    path = tmp_path / "gone.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}", flush_interval=30)
    call(monitor, "/one")
    monitor.flush()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    os.mkdir(path)  # the path is now unwritable as a database, even for root
    call(monitor, "/two")
    monitor.flush()  # as the background flush does
    health = get_json(monitor, "/monitoring/health")
    assert health["status"] == "degraded" and health["checks"]["store"]["status"] == "degraded"
    assert "kept in memory" in health["checks"]["store"]["detail"]
    os.rmdir(path)
    call(monitor, "/three")
    stats = get_json(monitor, "/monitoring/stats")
    # The file was restored from the open connection (with /one), then what waited in memory was written.
    assert stats["requests"] == 3
    assert get_json(monitor, "/monitoring/health")["checks"]["store"]["status"] == "ok"
    messages = [r.getMessage() for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.WARNING]
    assert not any("cannot write" in m for m in messages), "one failed write, then written: not a warning"
    assert sum("was deleted while in use" in m for m in messages) == 1, messages
    told = [r.getMessage() for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.INFO]
    assert sum("failed" in m and "went through with the next one" in m for m in told) == 1, told
    monitor.close()


def test_a_store_that_cannot_be_read_is_a_503_that_says_why(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.close()
    os.remove(store.path)
    os.mkdir(store.path)  # a directory where the file was: no read can succeed
    with pytest.raises(StoreUnavailable):
        store.recent_requests(10)
    monitor = MonitorMiddleware(lambda e, s: [], storage=f"sqlite:///{store.path}")
    answer = call(monitor, "/monitoring/requests")
    assert answer.status is not None and answer.status.startswith("503")
    assert "cannot be read now" in json.loads(answer.body)["error"]
    monitor.close()


def test_a_lone_writers_closed_rows_become_shared_and_late_records_still_add_up(tmp_path: Path) -> None:
    from wsgimon.stores.records import ProcessRow

    now = time.time()
    store = store_at(tmp_path)
    writer = ProcessRow("host", 1, now - 100, now, 0)
    then = now - 3 * HOUR
    store.write(batch_of([(then, "/solo", "GET", 200, 1.0)] * 3), writer)
    store.maintain(now)
    with sqlite3.connect(store.path) as conn:
        writers = {row[0] for row in conn.execute("SELECT writer FROM buckets WHERE resolution = 3600")}
    assert writers == {""}, "a closed hour with one writer is taken over as the shared row"
    for round_, late in enumerate((2, 4), start=1):  # late records for the same closed hour
        store.write(batch_of([(then, "/solo", "GET", 500, 5.0)] * late), writer)
        store.maintain(now + round_ * 61)  # maintenance runs at most once a minute
    totals = store.endpoint_totals(now - 4 * HOUR, now)[("/solo", "GET")]
    assert (totals.count, totals.errors) == (9, 6)
    assert store.overall(None, now).count == 9
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT count(*) FROM buckets WHERE resolution = 3600 AND endpoint = '/solo'").fetchone()
    assert rows == (1,), "late rows were merged into the one shared row"


def test_a_version_1_store_is_upgraded_in_place_with_its_names(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(batch_of([(time.time(), "/old/<int>", "GET", 200, 5.0)]), process())
    store.close()
    conn = sqlite3.connect(tmp_path / "wsgimon.sqlite3")
    conn.execute("DROP TABLE endpoint_names")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    upgraded = store_at(tmp_path)
    assert upgraded.admit_name("/old/<int>", cap=1), "a name already in the store stays admitted"
    assert not upgraded.admit_name("/new", cap=1), "the upgrade counted the names already stored"
    assert upgraded.overall(None, time.time()).count == 1
    upgraded.close()


def test_a_version_5_store_gains_the_slow_requests_and_in_flight_columns(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.write(batch_of([(time.time(), "/kept", "GET", 200, 5.0)]), process())
    store.close()
    conn = sqlite3.connect(tmp_path / "wsgimon.sqlite3")
    conn.execute("DROP TABLE slow_requests")
    for table, column in (("requests", "sampled"), ("processes", "in_flight"), ("processes", "oldest_request")):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    upgraded = store_at(tmp_path)
    upgraded.write(batch_of([(time.time(), "/new", "GET", 200, 5.0)]), process())
    assert upgraded.overall(None, time.time()).count == 2
    assert [entry.sampled for entry in upgraded.recent_requests(5)] == [False, False]
    assert upgraded.processes(0)[0].in_flight == 0


def test_no_shared_statement_holds_a_literal_question_mark_or_percent() -> None:
    """The PostgreSQL store turns every ``?`` into ``%s`` and doubles every ``%`` as text: a literal one inside
    a shared statement would silently become a placeholder (or break it)."""
    import ast
    import re

    import wsgimon.stores

    folder = Path(wsgimon.stores.__file__).parent
    sql_words = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|WITH|BEGIN|COMMIT|ROLLBACK)\b", re.I)
    found = []
    for name in ("sql.py", "issues_sql.py", "alerting_sql.py", "schema.py"):
        for node in ast.walk(ast.parse((folder / name).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and sql_words.search(node.value):
                text = node.value
                quoted = re.findall(r"'[^']*'", text)
                if "%" in text or any("?" in literal for literal in quoted):
                    found.append((name, text[:80]))
    assert not found, found
