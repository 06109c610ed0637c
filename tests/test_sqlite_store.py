"""The SQLite store: persistence, several writers on one file, windows, retention and faults."""

from __future__ import annotations

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
from wsgimon.stats.time_windows import DAY, HOUR
from wsgimon.stores.contract import StoreUnavailable
from wsgimon.stores.records import ALL
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


def test_two_writers_on_one_file_merge_exactly(tmp_path: Path) -> None:
    now = time.time()
    a, b = store_at(tmp_path), store_at(tmp_path)
    a.write(batch_of([(now, "/x", "GET", 200, 10.0)] * 30), process())
    b.write(batch_of([(now, "/x", "GET", 500, 30.0)] * 10 + [(now, "/y", "POST", 200, 5.0)]), process())
    for reader in (a, b):
        totals = reader.endpoint_totals(now - 60, now)
        assert totals[("/x", "GET")].count == 40 and totals[("/x", "GET")].errors == 10
        assert totals[("/y", "POST")].count == 1
        overall = reader.overall(None, now)
        assert overall.count == 41 and overall.status_codes == {200: 31, 500: 10}
        assert overall.latency_ms()["p95"] == pytest.approx(30.0, rel=0.01)
    samples = a.error_samples()
    assert samples[("ValueError", "/x", "GET")].count == 10


def test_windows_select_the_right_history(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    now = time.time()
    ages = {"2m": 120, "30m": 1800, "5h": 5 * HOUR, "3d": 3 * DAY, "20d": 20 * DAY}
    store.write(batch_of([(now - age, "/e", "GET", 200, 1.0) for age in ages.values()], with_log=False), process())
    expected = {"5m": 1, "1h": 2, "24h": 3, "7d": 4, "30d": 5, "all": 5}
    from wsgimon.stats.time_windows import parse_window

    for label, count in expected.items():
        window = parse_window(label)
        assert store.overall(window.since(now), now).count == count, label
        assert store.endpoint_totals(window.since(now), now)[("/e", "GET")].count == count, label


def test_series_has_a_point_per_step_with_zeros(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    now = time.time()
    store.write(batch_of([(now - 125, "/s", "GET", 200, 2.0), (now - 5, "/s", "GET", 500, 4.0)]), process())
    points = store.series(now - 600, now, 60, ALL)
    assert len(points) in (10, 11)
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert sum(agg.count for _, agg in points) == 2
    assert sum(1 for _, agg in points if agg.count == 0) >= 8


def test_retention_prunes_old_minutes_but_keeps_hours(tmp_path: Path) -> None:
    store = store_at(tmp_path, minute_retention_s=2 * HOUR, retention_s=10 * DAY)
    now = time.time()
    store.write(batch_of([(now - 5 * HOUR, "/r", "GET", 200, 1.0), (now - 15 * DAY, "/r", "GET", 200, 1.0)]), process())
    store.maintain(now)
    with sqlite3.connect(store.path) as conn:
        by_resolution = dict(conn.execute("SELECT resolution, count(*) FROM buckets GROUP BY resolution").fetchall())
    assert 60 not in by_resolution  # both minutes are older than 2 h
    assert by_resolution[3600] == 2 and by_resolution[86400] == 2  # one per endpoint key and ALL
    assert store.overall(now - 7 * DAY, now).count == 1
    assert store.overall(None, now).count == 2  # all-time totals are never pruned


def test_recent_requests_are_bounded_and_newest_first(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    now = time.time()
    for chunk in range(3):
        store.write(batch_of([(now + chunk * 60 + i, f"/p{chunk}-{i}", "GET", 200, 1.0) for i in range(60)]), process())
    rows = store.recent_requests(1000)
    assert len(rows) == 100
    assert rows[0].path == "/p2-59" and rows[-1].path == "/p1-20"


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
    finally:
        release.set()
        holder.join(10)
    warnings = [r for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.WARNING]
    assert len(warnings) >= 1 and "cannot write to the store" in warnings[0].getMessage()
    monitor.store.write = write  # type: ignore[method-assign]
    monitor.flush()
    assert monitor.recorder.store_error is None
    assert get_json(monitor, "/monitoring/stats")["requests"] == 201
    monitor.close()


@pytest.mark.internal_errors
def test_deleted_then_blocked_file_degrades_health_and_is_restored_without_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
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
    assert sum("cannot write" in m for m in messages) == 1, messages
    assert sum("was deleted while in use" in m for m in messages) == 1, messages
    monitor.close()


def test_store_unavailable_reads_are_a_503_not_a_crash(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.close()
    os.remove(store.path)
    os.mkdir(store.path)
    with pytest.raises(StoreUnavailable):
        store.recent_requests(10)


def test_rows_of_several_writers_compact_without_loss_or_double_counting(tmp_path: Path) -> None:
    from wsgimon.stores.records import ProcessRow

    now = time.time()
    first, second = store_at(tmp_path), store_at(tmp_path)
    writer_a = ProcessRow("host", 1, now - 100, now, 0)
    writer_b = ProcessRow("host", 2, now - 100, now, 0)
    then = now - 3 * HOUR  # a closed hour, so compaction folds it
    expected = 0
    for round_ in range(3):
        first.write(batch_of([(then, "/c", "GET", 200, 1.0)] * 5 + [(now, "/c", "GET", 200, 2.0)] * 2), writer_a)
        second.write(batch_of([(then, "/c", "GET", 500, 3.0)] * 4), writer_b)
        expected += 11
        if round_ == 1:
            first.maintain(now + 2 * HOUR)  # compacts while both writers keep their own state
        for reader in (first, second):
            assert reader.overall(None, now).count == expected
            assert reader.overall(now - 4 * HOUR, now).count == expected
            assert reader.endpoint_totals(now - 4 * HOUR, now)[("/c", "GET")].errors == 4 * (round_ + 1)
    with sqlite3.connect(first.path) as conn:
        writers = {row[0] for row in conn.execute("SELECT writer FROM buckets WHERE resolution = 3600")}
    assert "" in writers, "closed hours were compacted into the shared row"


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


def test_late_records_for_a_forgotten_bucket_add_to_the_writers_own_row(tmp_path: Path) -> None:
    from wsgimon.stores.records import ProcessRow

    now = time.time()
    store = store_at(tmp_path)
    writer = ProcessRow("host", 1, now - 100, now, 0)
    then = now - 3 * HOUR  # closed: the store stops holding its rows in memory after each write
    for _ in range(3):
        store.write(batch_of([(then, "/late", "GET", 200, 1.0)] * 2 + [(now, "/late", "GET", 200, 1.0)]), writer)
    assert store.endpoint_totals(now - 4 * HOUR, now + 60)[("/late", "GET")].count == 9
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute(
            "SELECT resolution, count(*) FROM buckets WHERE endpoint = '/late' AND start < ? GROUP BY resolution",
            (now - 2 * HOUR,),
        ).fetchall()
    assert rows and all(count == 1 for _resolution, count in rows), rows


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
