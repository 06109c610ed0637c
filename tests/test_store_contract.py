"""The store contract: what every back end (memory, SQLite, PostgreSQL) answers the same.

Each test gets ``open_store``: every call opens another handle on one store, as
another worker would (the memory store, being one process's, hands out itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests import postgres
from tests.seeding import batch_of, process
from wsgimon.alerts.incidents import Settings, decide
from wsgimon.alerts.silencing import parse_silence
from wsgimon.alerts.state import Verdict
from wsgimon.stats.issues import IssueChange
from wsgimon.stats.profiles import collapse
from wsgimon.stats.time_windows import DAY, HOUR, parse_window
from wsgimon.stores.contract import Store
from wsgimon.stores.memory import MemoryStore
from wsgimon.stores.records import ALL, AlertRow, IssueSample, ProcessRow, RequestEntry, SlowRequest

postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url

Opener = Callable[..., Store]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Store] = []
    if request.param == "memory":
        shared: dict[str, MemoryStore] = {}

        def opener(**options: float) -> Store:
            if "store" not in shared:
                shared["store"] = MemoryStore(recent_requests=100)
            return shared["store"]

    elif request.param == "sqlite":
        from wsgimon.stores.sqlite import SQLiteStore

        def opener(**options: float) -> Store:
            store = SQLiteStore(str(tmp_path / "contract.sqlite3"), recent_requests=100, **options)
            opened.append(store)
            return store

    else:
        url = request.getfixturevalue("postgres_url")
        from wsgimon.stores.postgres import PostgresStore

        def opener(**options: float) -> Store:
            store = PostgresStore(url, recent_requests=100, **options)
            opened.append(store)
            return store

    yield opener
    for store in opened:
        store.close()


def test_two_writers_merge_exactly(open_store: Opener) -> None:
    now = time.time()
    a, b = open_store(), open_store()
    a.write(batch_of([(now, "/x", "GET", 200, 10.0)] * 30), process())
    b.write(batch_of([(now, "/x", "GET", 500, 30.0)] * 10 + [(now, "/y", "POST", 200, 5.0)]), process(now - 5))
    for reader in (a, b):
        totals = reader.endpoint_totals(now - 60, now)
        assert totals[("/x", "GET")].count == 40 and totals[("/x", "GET")].errors == 10
        assert totals[("/y", "POST")].count == 1
        overall = reader.overall(None, now)
        assert overall.count == 41 and overall.status_codes == {200: 31, 500: 10}
        assert overall.latency_ms()["p95"] == pytest.approx(30.0, rel=0.01)
    samples = a.error_samples()
    assert samples[("ValueError", "/x", "GET")].count == 10
    assert samples[("ValueError", "/x", "GET")].message.startswith("failed at")


def test_a_writer_adds_to_its_own_rows_flush_after_flush(open_store: Opener) -> None:
    store = open_store()
    writer = process()
    now = time.time()
    for _ in range(5):
        store.write(batch_of([(now, "/own", "GET", 200, 1.0)] * 3), writer)
    assert store.overall(now - 60, now).count == 15
    assert store.overall(None, now).count == 15


def test_a_read_after_the_writers_left_counts_every_flush(open_store: Opener) -> None:
    """Hundreds of flushes no maintainer folded (its process left): the next read sees them all."""
    writer, reader = open_store(), open_store()
    now = time.time()
    for i in range(300):
        writer.write(batch_of([(now - i % 50, "/left", "GET", 200, 1.0)], with_log=False), process(now - 60))
    assert reader.overall(None, now).count == 300, "the first read"
    assert reader.endpoint_totals(now - 3600, now)[("/left", "GET")].count == 300


def test_windows_select_the_right_history(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    ages = {"2m": 120, "30m": 1800, "5h": 5 * HOUR, "3d": 3 * DAY, "20d": 20 * DAY}
    store.write(batch_of([(now - age, "/e", "GET", 200, 1.0) for age in ages.values()], with_log=False), process())
    expected = {"5m": 1, "1h": 2, "24h": 3, "7d": 4, "30d": 5, "all": 5}
    for label, count in expected.items():
        window = parse_window(label)
        assert store.overall(window.since(now), now).count == count, label
        assert store.endpoint_totals(window.since(now), now)[("/e", "GET")].count == count, label


def test_a_long_window_stays_exact_when_a_closed_day_changes(open_store: Opener) -> None:
    """Closed days' totals are kept between reads: a late flush into one shows at once."""
    a, b = open_store(), open_store()
    now = time.time()
    a.write(batch_of([(now - 3 * DAY, "/old", "GET", 200, 1.0), (now - 2 * DAY, "/old", "GET", 500, 9.0)]), process())
    since = parse_window("7d").since(now)
    for _ in range(2):
        totals = a.endpoint_totals(since, now)
        assert (totals[("/old", "GET")].count, totals[("/old", "GET")].errors) == (2, 1)
    late = process(now - 3 * DAY)
    b.write(batch_of([(now - 3 * DAY, "/old", "GET", 200, 2.0), (now - 3 * DAY, "/late", "POST", 200, 3.0)]), late)
    totals = a.endpoint_totals(since, now)
    assert totals[("/old", "GET")].count == 3 and totals[("/late", "POST")].count == 1
    assert totals[("/old", "GET")].max_ms == 9.0 and a.endpoint_totals(since, now).keys() == totals.keys()


def test_series_and_sparklines_have_a_point_per_step(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    store.write(batch_of([(now - 125, "/s", "GET", 200, 2.0), (now - 5, "/s", "GET", 500, 4.0)]), process())
    points = store.series(now - 600, now, 60, ALL)
    assert len(points) in (10, 11)
    assert sum(agg.count for _, agg in points) == 2
    assert sum(1 for _, agg in points if agg.count == 0) >= 8
    lines = store.average_lines(now - 600, now, 10)
    line = lines[("/s", "GET")]
    assert len(line) == 10 and sorted(v for v in line if v is not None) == [2.0, 4.0]


def test_error_totals_count_types_per_endpoint(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    store.write(batch_of([(now, "/f", "GET", 500, 1.0)] * 3 + [(now, "/f", "GET", 404, 1.0)]), process())
    totals = store.error_totals(now - 60, now)
    counts, last_seen = totals[("/f", "GET")]
    assert counts == {"ValueError": 3, "404 Not Found": 1}
    assert last_seen == pytest.approx(now)


def test_retention_prunes_old_minutes_but_keeps_hours_and_all_time(open_store: Opener) -> None:
    store = open_store(minute_retention_s=2 * HOUR, retention_s=10 * DAY)
    now = time.time()
    store.write(batch_of([(now - 5 * HOUR, "/r", "GET", 200, 1.0), (now - 15 * DAY, "/r", "GET", 200, 1.0)]), process())
    store.maintain(now)
    assert store.overall(now - 7 * DAY, now).count == 1
    assert store.overall(None, now).count == 2


def test_recent_requests_are_bounded_and_newest_first(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    for chunk in range(3):
        store.write(batch_of([(now + chunk * 60 + i, f"/p{chunk}-{i}", "GET", 200, 1.0) for i in range(60)]), process())
    rows = store.recent_requests(1000)
    assert len(rows) == 100
    assert rows[0].path == "/p2-59" and rows[-1].path == "/p1-20"


def test_compaction_of_several_writers_loses_and_doubles_nothing(open_store: Opener) -> None:
    now = time.time()
    first, second = open_store(), open_store()
    writer_a = ProcessRow("host", 1, now - 100, now, 0)
    writer_b = ProcessRow("host", 2, now - 100, now, 0)
    then = now - 3 * HOUR
    expected = 0
    for round_ in range(3):
        first.write(batch_of([(then, "/c", "GET", 200, 1.0)] * 5 + [(now, "/c", "GET", 200, 2.0)] * 2), writer_a)
        second.write(batch_of([(then, "/c", "GET", 500, 3.0)] * 4), writer_b)
        expected += 11
        if round_ == 1:
            first.maintain(now + 2 * HOUR)
        for reader in (first, second):
            assert reader.overall(None, now).count == expected
            assert reader.overall(now - 4 * HOUR, now).count == expected
            assert reader.endpoint_totals(now - 4 * HOUR, now)[("/c", "GET")].errors == 4 * (round_ + 1)


def test_late_records_for_a_closed_bucket_still_add_up(open_store: Opener) -> None:
    now = time.time()
    store = open_store()
    writer = ProcessRow("host", 1, now - 100, now, 0)
    then = now - 3 * HOUR
    store.write(batch_of([(then, "/solo", "GET", 200, 1.0)] * 3), writer)
    store.maintain(now)
    for round_, late in enumerate((2, 4), start=1):
        store.write(batch_of([(then, "/solo", "GET", 500, 5.0)] * late), writer)
        store.maintain(now + round_ * 61)
    totals = store.endpoint_totals(now - 4 * HOUR, now)[("/solo", "GET")]
    assert (totals.count, totals.errors) == (9, 6)
    assert store.overall(None, now).count == 9


def test_processes_and_the_deployment_start(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    a = ProcessRow("host-a", 10, now - 50, now, 7)
    b = ProcessRow("host-b", 11, now - 40, now, 3)
    store.write(batch_of([(now, "/p", "GET", 200, 1.0)]), a)
    open_store().write(batch_of([(now, "/p", "GET", 200, 1.0)]), b)
    seen = store.processes(now - 60)
    assert [(p.host, p.requests) for p in seen] == [("host-a", 7), ("host-b", 3)]
    assert store.deployment_started() == pytest.approx(now - 50)
    store.process_stopped(ProcessRow("host-a", 10, now - 50, now + 1, 7))
    assert [p.host for p in store.processes(now - 60)] == ["host-b"]


def test_endpoint_names_are_capped_deployment_wide(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    assert a.admit_name("/one", cap=2) and b.admit_name("/two", cap=2)
    assert not a.admit_name("/three", cap=2) and not b.admit_name("/three", cap=2)
    assert a.admit_name("/one", cap=2), "a known name always passes"
    batch = batch_of([])
    batch.overflowed = 4
    a.write(batch, process())
    assert b.overflowed() == 4


def test_an_event_is_claimed_by_one_handle_for_its_cooldown(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = 1_000_000.0
    assert a.claim_occurrence("event|new_issue|v2|abc", now, 300, 1) == (True, 0)
    assert b.claim_occurrence("event|new_issue|v2|abc", now + 1, 300, 1) == (False, 0)
    assert b.claim_occurrence("event|new_issue|v2|abc", now + 301, 300, 1)[0], "claimable again after its cooldown"


def _verdict(true: bool) -> Verdict:
    return Verdict("issue|abc", "exception", true, "critical", "ValueError in GET /x", "it fails", {"issue": "abc"})


def test_incidents_are_decided_once_whichever_handle_evaluates(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    settings = Settings(group_wait_s=30, group_interval_s=300, resolve_after_s=60)
    t = 1_000_000.0
    assert a.alerting(lambda state: decide(state, [_verdict(True)], t, settings), t) == []
    # Both evaluate the same instant after the group wait: one of them tells.
    first = a.alerting(lambda state: decide(state, [_verdict(True)], t + 30, settings), t + 30)
    second = b.alerting(lambda state: decide(state, [_verdict(True)], t + 30, settings), t + 30)
    assert [n.kind for n in first] == ["firing"] and second == []
    # An evaluation older than one already applied changes nothing.
    assert b.alerting(lambda state: decide(state, [_verdict(False)], t + 10, settings), t + 10) == []
    assert b.alerting(lambda state: decide(state, [_verdict(False)], t + 40, settings), t + 40) == []
    done = b.alerting(lambda state: decide(state, [_verdict(False)], t + 100, settings), t + 100)
    assert [n.kind for n in done] == ["resolved"]
    view = a.alerting_view(t + 100)
    assert [(i.id, i.status, i.messages) for i in view.incidents.values()] == [(1, "resolved", 2)]
    assert view.conditions["issue|abc"].status == "resolved"


def test_silences_are_shared_and_end_when_expired(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = time.time()
    made = a.add_silence(parse_silence({"rule": "exception", "for": "1h", "reason": "deploy"}, now))
    other = b.add_silence(parse_silence({"endpoint": "/x", "for": "2h", "reason": "known"}, now))
    assert (made.id, other.id) == (1, 2)
    assert [s.active(now) for s in b.alerting_view(now).silences] == [True, True]
    ended = b.expire_silence(1, now + 10)
    assert ended is not None and not ended.active(now + 10) and b.expire_silence(7, now) is None
    assert [s.active(now + 10) for s in a.alerting_view(now + 10).silences] == [False, True]


def test_issues_merge_across_writers_and_a_resolved_one_regresses(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = time.time()

    def failures(store: Store, endpoint: str, count: int, at: float, release: str | None = None) -> None:
        batch = batch_of([])
        batch.issues["abc"] = IssueSample(
            "abc", "abc" * 10, "ValueError", "bad <num>", f"bad {count}", "Traceback…", [], "app in parse",
            count, at, at, {(endpoint, "GET"): count}, {int(at // 60 * 60): count},
        )  # fmt: skip
        store.write(batch, replace(process(), release=release))

    failures(a, "/orders", 3, now - 5, "v1")
    failures(b, "/refunds", 2, now - 4, "v1")
    issue = a.issue("abc")
    assert issue is not None and issue.count == 5 and issue.status == "open"
    assert sorted(issue.endpoints) == [("/orders", "GET", 3), ("/refunds", "GET", 2)]
    assert [(r[0], r[1]) for r in issue.releases] == [("v1", 5)]
    assert b.issue_window_counts(now - 3600, now) == {"abc": 5}
    resolved = b.change_issue("abc", IssueChange("resolved"), now - 3)
    assert resolved is not None and resolved.status == "resolved"
    failures(a, "/orders", 1, now - 1)
    again = b.issue("abc")
    assert again is not None and again.status == "regressed" and again.count == 6
    assert b.change_issue("nope", IssueChange("open"), now) is None


def test_an_issues_endpoints_read_most_broken_first_then_by_name(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = time.time()
    for store, endpoint, count in ((a, "/refunds", 1), (b, "/orders", 1), (a, "/invoices", 1), (b, "/lookup", 2)):
        batch = batch_of([])
        batch.issues["abc"] = IssueSample(
            "abc", "abc" * 10, "ValueError", "bad", "bad", None, [], None,
            count, now, now, {(endpoint, "GET"): count}, {int(now // 60 * 60): count},
        )  # fmt: skip
        store.write(batch, process())
    issue = b.issue("abc")
    assert issue is not None
    assert [(e, n) for e, _m, n in issue.endpoints] == [
        ("/lookup", 2),
        ("/invoices", 1),
        ("/orders", 1),
        ("/refunds", 1),
    ]
    assert [row.endpoints for row in a.issues(now - 60)] == [issue.endpoints], "the list reads it alike"


def test_the_alert_log_keeps_deliveries(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    row = AlertRow("k", "exception", "error", "firing", "ValueError on /x", "summary", 1.0, 2.0, 3)
    first = a.record_alert(row)
    second = b.record_alert(AlertRow("k2", "error_rate", "warning", "resolved", "t", "s", 4.0, 5.0, 0))
    assert second > first
    a.update_alert(first, {"discord": {"ok": True, "attempts": 1}})
    alerts = b.recent_alerts(10)
    assert [alert.key for alert in alerts] == ["k2", "k"]
    assert alerts[1].deliveries == {"discord": {"ok": True, "attempts": 1}} and alerts[1].suppressed == 3


def test_a_report_period_is_claimed_once_and_taken_over_when_stale(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    assert a.claim_report("2026-W48", 100.0, 600) and not b.claim_report("2026-W48", 101.0, 600)
    assert b.claim_report("2026-W48", 800.0, 600), "a claim whose process died is taken over"
    b.finish_report("2026-W48", "sent", "to 2 recipients", 801.0)
    assert not a.claim_report("2026-W48", 5000.0, 600), "a sent report is never sent again"
    assert a.report_runs(5) == [("2026-W48", "sent", 801.0, "to 2 recipients")]


def test_slow_requests_are_shared_and_only_the_slowest_per_endpoint_are_kept(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = time.time()
    stack = (("/app/views.py", 10, "view"), ("/app/db.py", 42, "slow_query"))
    profile = collapse([stack] * 8 + [stack[:1]] * 2)
    for store, durations in ((a, (1200.0, 3000.0, 1500.0)), (b, (2500.0, 1100.0, 4000.0, 1300.0))):
        batch = batch_of([])
        for n, duration in enumerate(durations):
            entry = RequestEntry(
                now + n, "GET", "/report?id=[redacted]", "/report", 200, duration, None, None, 10, True
            )
            batch.requests.append(entry)
            batch.slow.append(SlowRequest(entry, profile))
        store.write(batch, process())
    for reader in (a, b):
        kept = reader.slow_requests("/report", 20)
        assert [s.request.duration_ms for s in kept] == [4000.0, 3000.0, 2500.0, 1500.0, 1300.0]
        assert kept[0].profile.app_frame == ("/app/db.py", 42, "slow_query")
        assert kept[0].profile.samples == 10 and kept[0].profile.stacks[0] == (stack, 8)
        assert reader.slow_requests("/other", 20) == []
        assert len(reader.slow_requests(None, 2)) == 2
        assert all(entry.sampled for entry in reader.recent_requests(7))


def test_process_rows_carry_their_requests_in_flight(open_store: Opener) -> None:
    store = open_store()
    now = time.time()
    row = ProcessRow("host-a", 10, now - 50, now, 7, in_flight=3, oldest_in_flight=now - 40, oldest_request="GET /hold")
    store.write(batch_of([]), row)
    (seen,) = store.processes(now - 60)
    assert (seen.in_flight, seen.oldest_request) == (3, "GET /hold")
    assert seen.oldest_in_flight == pytest.approx(now - 40)


def test_processes_that_vanished_mid_request_are_counted_lost_once(open_store: Opener) -> None:
    now = time.time()
    a, b = open_store(), open_store()
    dead = ProcessRow("host-a", 10, now - 50, now - 1, 7, in_flight=2, oldest_request="GET /hold", capacity=4)
    idle_dead = ProcessRow("host-a", 11, now - 50, now - 1, 7)
    alive = ProcessRow("host-a", 12, now - 50, now - 1, 7, in_flight=1)
    quiet = ProcessRow("host-b", 13, now - 500, now - 300, 7, in_flight=3)
    talking = ProcessRow("host-b", 14, now - 500, now - 5, 7, in_flight=1)
    for row in (dead, idle_dead, alive, quiet, talking):
        a.write(batch_of([]), row)
    gone_pids = {10, 11}
    # Both handles look, as two workers would: each vanished process is counted by one of them.
    assert (
        a.reap_lost("host-a", now, lambda pid: pid not in gone_pids, 120.0)
        + b.reap_lost("host-a", now, lambda pid: pid not in gone_pids, 120.0)
        == 2
    )
    lost = {row.pid: row.lost for row in b.lost_processes(now - 60)}
    assert lost == {10: 2, 13: 3}
    assert {row.pid for row in b.processes(now - 3600)} == {11, 12, 14}
    assert next(row for row in b.lost_processes(now - 60) if row.pid == 10).oldest_request == "GET /hold"
    assert a.lost_processes(now + 1) == []


def test_statistics_per_release_are_exact_across_writers_and_bounded(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    now = time.time()
    old = ProcessRow("host", 1, now - 7200, now - 3600, 0, release="v1")
    new_a = ProcessRow("host", 2, now - 100, now, 0, release="v2")
    new_b = ProcessRow("host-b", 3, now - 90, now, 0, release="v2")
    a.write(batch_of([(now - 5000, "/r", "GET", 200, 5.0)] * 30), old)
    a.write(batch_of([(now - 50, "/r", "GET", 500, 80.0)] * 7 + [(now - 40, "/s", "POST", 200, 1.0)]), new_a)
    b.write(batch_of([(now - 30, "/r", "GET", 200, 90.0)] * 5), new_b)
    b.write(batch_of([(now - 20, "/r", "GET", 200, 90.0)] * 2), new_b)
    for reader in (a, b):
        assert [(r.release, r.first_seen) for r in reader.releases()] == [("v2", now - 100), ("v1", now - 7200)]
        v2 = reader.release_totals("v2", None, now)
        assert v2[("/r", "GET")].count == 14 and v2[("/r", "GET")].errors == 7
        assert v2[ALL].count == 15 and v2[ALL].error_types == {"ValueError": 7}
        assert reader.release_totals("v1", None, now)[ALL].count == 30
        assert reader.release_totals("v2", now - 3600, now)[ALL].count == 15
        assert (
            reader.release_totals("v1", now - 60, now) == {}
            or reader.release_totals("v1", now - 60, now)[ALL].count == 30
        ), "hour rows: a window starts at its whole hour"
    assert a.overall(None, now).count == 45, "the release rows are beside the buckets, not instead"
    for n in range(3, 6):
        a.write(
            batch_of([(now, "/r", "GET", 200, 1.0)]), ProcessRow("host", 10 + n, now + n, now + n, 0, release=f"v{n}")
        )
    a.max_releases = b.max_releases = 3
    a.maintain(now + 120)
    b.maintain(now + 240)
    assert [r.release for r in b.releases()] == ["v5", "v4", "v3"]
    assert b.release_totals("v1", None, now) == {}


def test_the_access_token_is_made_once_and_shared(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    made = iter(["first-token-0123456789", "second-token-0123456789"])
    assert a.access_token(lambda: next(made)) == "first-token-0123456789"
    assert b.access_token(lambda: next(made)) == "first-token-0123456789"


def test_check_in_monitors_and_runs_are_shared_bounded_and_pruned(open_store: Opener) -> None:
    from wsgimon.stats.checkins import FAILED, RUNNING_TOO_LONG, UP, parse_monitor, state_of
    from wsgimon.stores.contract import RUNS_PER_CHECKIN

    now = time.time()
    a, b = open_store(minute_retention_s=HOUR, retention_s=DAY), open_store(minute_retention_s=HOUR, retention_s=DAY)
    assert a.checkin_monitors() == [] and a.all_checkin_runs(10) == {}
    # Unknown and no schedule: nothing is kept.
    assert a.checkin_ping("backup", "success", now) is None and b.checkin_monitors() == []
    made = a.checkin_ping("backup", "start", now, declare=parse_monitor("backup", {"every": "1h"}, now))
    assert made is not None and made.schedule.every_s == 3600.0
    ended = b.checkin_ping("backup", "fail", now + 5, exit_code=3, error="Boom", log="tail")
    assert ended is not None and ended.created == made.created
    [run] = a.checkin_runs("backup", 10)
    assert (run.started, run.ended, run.ok, run.exit_code) == (now, now + 5, False, 3)
    assert (run.error, run.log) == ("Boom", "tail")
    assert state_of(ended, [run], now + 6).state == FAILED
    # An end with no run open is a run of its own, started duration_s before it when given.
    b.checkin_ping("backup", "success", now + 10, duration_s=4.0)
    assert a.checkin_runs("backup", 1)[0].started == now + 6 and a.checkin_runs("backup", 1)[0].ok is True
    a.checkin_ping("backup", "start", now + 20)
    assert state_of(made, a.checkin_runs("backup", 10), now + 20 + 301).state == RUNNING_TOO_LONG
    # A ping's schedule replaces one that pings declared; a declared (configured) one wins after.
    b.checkin_ping("backup", "success", now + 30, declare=parse_monitor("backup", {"every": "2h"}, now + 30))
    assert [m.schedule.every_s for m in a.checkin_monitors()] == [7200.0]
    a.declare_checkin(parse_monitor("backup", {"cron": "0 3 * * *", "timezone": "Europe/Paris"}, now + 40))
    b.checkin_ping("backup", "success", now + 50, declare=parse_monitor("backup", {"every": "5m"}, now + 50))
    [kept] = b.checkin_monitors()
    assert kept.schedule.cron == "0 3 * * *" and kept.schedule.timezone == "Europe/Paris"
    assert kept.created == made.created and state_of(kept, b.checkin_runs("backup", 50), now + 51).state == UP
    # The newest runs are kept, oldest first.
    for n in range(RUNS_PER_CHECKIN + 5):
        a.checkin_ping("backup", "success", now + 100 + n)
    runs = b.checkin_runs("backup", 100)
    assert len(runs) == RUNS_PER_CHECKIN and runs[-1].ended == now + 100 + RUNS_PER_CHECKIN + 4
    assert [r.ended for r in runs] == sorted(r.ended or 0 for r in runs)
    assert [r.ended for r in b.checkin_runs("backup", 2)] == [r.ended for r in runs[-2:]]
    a.declare_checkin(parse_monitor("report", {"every": "30d"}, now))
    a.checkin_ping("report", "success", now)
    assert {name: len(r) for name, r in b.all_checkin_runs(3).items()} == {"backup": 3, "report": 1}
    # Maintenance drops runs past the retention, never a monitor's newest run nor its newest ended one.
    a.checkin_ping("report", "start", now + 1)
    a.maintain(now + 10 * DAY)
    b.maintain(now + 10 * DAY)
    assert [(r.ended is None) for r in b.checkin_runs("report", 10)] == [False, True]
    assert len(b.checkin_runs("backup", 100)) == 1
    assert b.delete_checkin("report") and not a.delete_checkin("report")
    assert [m.name for m in a.checkin_monitors()] == ["backup"] and a.checkin_runs("report", 10) == []


def test_a_ping_cannot_create_a_monitor_past_the_cap(open_store: Opener) -> None:
    from wsgimon.stats.checkins import parse_monitor
    from wsgimon.stores.contract import MAX_CHECKINS, TooManyCheckIns

    now = time.time()
    store = open_store()
    for n in range(MAX_CHECKINS - 1):
        store.declare_checkin(parse_monitor(f"job-{n}", {"every": "1d"}, now))
    assert store.checkin_ping("last", "success", now, declare=parse_monitor("last", {"every": "1d"}, now))
    with pytest.raises(TooManyCheckIns):
        store.checkin_ping("extra", "success", now, declare=parse_monitor("extra", {"every": "1d"}, now))
    assert len(store.checkin_monitors()) == MAX_CHECKINS
    assert store.checkin_runs("extra", 10) == []
    # Known ones still ping, and the configuration may still declare more.
    assert store.checkin_ping("job-3", "success", now) is not None
    store.declare_checkin(parse_monitor("configured", {"every": "1d"}, now))
    assert len(store.checkin_monitors()) == MAX_CHECKINS + 1
