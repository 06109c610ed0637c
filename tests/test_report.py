"""The weekly report: exactly once across workers and restarts, numbers that match the API, readable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.helpers import call, get_json
from tests.issues_app import create_app
from tests.seeding import batch_of, process
from tests.servers import ROOT, gunicorn_server, wait_until
from tests.standins.smtp import SMTPStandIn, smtp_server
from wsgimon import MonitorMiddleware
from wsgimon.alerts.silencing import parse_silence
from wsgimon.alerts.state import AlertingState, Incident
from wsgimon.config import Config
from wsgimon.reporting.options import parse_schedule
from wsgimon.reporting.period import period_before, period_from
from wsgimon.reporting.report import build_report, render_report, report_email, subject
from wsgimon.stats.issues import IssueChange
from wsgimon.stores.memory import MemoryStore
from wsgimon.stores.records import MAX_ALERTS, AlertRow, Batch, IssueSample, ProcessRow
from wsgimon.stores.sqlite import SQLiteStore

ARTIFACTS = ROOT / "test-artifacts"
UTC = timezone.utc


@pytest.fixture
def smtp() -> Iterator[SMTPStandIn]:
    with smtp_server() as server:
        yield server


def mail_env(smtp: SMTPStandIn, store: Path, **extra: str) -> dict[str, str]:
    return {
        "WSGIMON_STORAGE": f"sqlite:///{store}",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_SMTP_HOST": "127.0.0.1",
        "WSGIMON_SMTP_PORT": str(smtp.port),
        "WSGIMON_SMTP_STARTTLS": "0",
        "WSGIMON_EMAIL_FROM": "wsgimon@shop.example",
        "WSGIMON_REPORT_EMAIL_TO": "lead@shop.example",
        "WSGIMON_REPORT_TIMEZONE": "UTC",
        **extra,
    }


def last_week_traffic(now: datetime) -> list[tuple[float, str, str, int, float]]:
    """A week of traffic entirely inside the previous whole week (UTC)."""
    period = period_before(now, "week")
    start = period.start.timestamp()
    requests = []
    for i in range(2000):
        at = start + 3600 + i * 290  # spread over the seven days
        endpoint = ("/checkout", "/items/<int:id>", "/search")[i % 3]
        status = 500 if i % 40 == 0 else (404 if i % 25 == 0 else 200)
        requests.append((at, endpoint, "GET", status, 5.0 + (i % 50) * (3 if endpoint == "/search" else 1)))
    return requests


def warm_every_worker(url: str, workers: int) -> None:
    """Workers start their schedule on their first request."""
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < workers and time.monotonic() < deadline:
        with httpx.Client() as client:
            pids.add(client.get(url + "/monitoring/health").json()["process"]["pid"])
    assert len(pids) == workers


def test_the_numbers_match_the_api_and_both_parts_read_well(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    store_path = tmp_path / "store.sqlite3"
    monitor = MonitorMiddleware(lambda e, s: [], storage=f"sqlite:///{store_path}", public_url="https://shop.example")
    monitor.store.write(batch_of(last_week_traffic(now)), process())
    report = build_report(monitor.store, period_before(now, "week"), monitor.config)
    stats = get_json(monitor, "/monitoring/stats?window=all")
    assert report.totals["requests"] == stats["requests"] == 2000
    assert report.totals["errors"] == stats["errors"]
    assert report.totals["p95"] == stats["latency_ms"]["p95"]
    assert sum(day["requests"] for day in report.days) == 2000 and len(report.days) == 7
    assert report.busiest[0]["requests"] >= report.busiest[-1]["requests"]
    assert report.slowest[0]["endpoint"] == "/search"
    assert report.error_types[0]["type"] == "ValueError"
    message = report_email(report, "wsgimon@shop.example", ("lead@shop.example",))
    assert message["From"] == "wsgimon@shop.example" and message["To"] == "lead@shop.example"
    assert message["Date"] and "2,000 requests" in message["Subject"]
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = render_report(report)
    assert "2,000" in text and "https://shop.example/monitoring/" in text
    assert "<img" not in html and "src=" not in html and "<script" not in html
    monitor.close()


def test_the_html_part_renders_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    now = datetime.now(UTC)
    monitor = MonitorMiddleware(
        lambda e, s: [],
        storage=f"sqlite:///{tmp_path}/store.sqlite3",
        slo_availability=99.0,
        public_url="https://shop.example",
    )
    monitor.store.write(batch_of(last_week_traffic(now)), process())
    _text, html = render_report(build_report(monitor.store, period_before(now, "week"), monitor.config))
    ARTIFACTS.mkdir(exist_ok=True)
    page_file = ARTIFACTS / "report.html"
    page_file.write_text(html)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 720, "height": 1400})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        body = page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert "Busiest endpoints" in body and "/checkout" in body and "99 % of requests succeed" in body
    assert requests == [page_file.as_uri()], "the report fetches nothing"


@pytest.mark.slow
def test_three_workers_due_at_the_same_moment_send_one_report_and_a_restart_sends_nothing_more(
    tmp_path: Path, smtp: SMTPStandIn
) -> None:
    store = tmp_path / "shared.sqlite3"
    seeded = SQLiteStore(str(store), recent_requests=100)
    seeded.write(batch_of(last_week_traffic(datetime.now(UTC))), process())
    seeded.close()
    due = datetime.now(UTC) + timedelta(seconds=6)
    schedule = f"{due:%a} {due:%H:%M:%S}".lower()
    env = mail_env(smtp, store, WSGIMON_REPORT_SCHEDULE=schedule)
    with gunicorn_server("demo_app:app", "-w", "3", env=env) as (url, _):
        warm_every_worker(url, 3)
        (received,) = smtp.wait_for_messages(1, timeout=30)
        # The store's decision: the period is sent; every other worker's claim of it is refused from now on.
        wait_until(lambda: ": sent" in httpx.get(url + "/monitoring/health").json()["checks"]["report"]["detail"])
        assert len(smtp.received) == 1
        assert "2,000 requests" in received.message["Subject"]
        health = httpx.get(url + "/monitoring/health").json()
        assert health["checks"]["report"]["status"] == "ok"
    # Restarted right after: each worker's catch-up (run as its schedule starts) finds the period sent.
    with gunicorn_server("demo_app:app", "-w", "3", env=env) as (url, _):
        started = time.time()
        warm_every_worker(url, 3)
        wait_until(lambda: every_worker_flushed_since(url, started, 3), timeout=30)
        assert len(smtp.received) == 1


@pytest.mark.slow
def test_a_start_within_a_day_of_a_missed_run_sends_it_once(tmp_path: Path, smtp: SMTPStandIn) -> None:
    store = tmp_path / "shared.sqlite3"
    missed = datetime.now(UTC) - timedelta(hours=3)
    env = mail_env(smtp, store, WSGIMON_REPORT_SCHEDULE=f"{missed:%a} {missed:%H:%M}".lower())
    with gunicorn_server("demo_app:app", "-w", "2", env=env) as (url, _):
        warm_every_worker(url, 2)
        smtp.wait_for_messages(1, timeout=30)
        wait_until(lambda: ": sent" in httpx.get(url + "/monitoring/health").json()["checks"]["report"]["detail"])
        assert len(smtp.received) == 1


def every_worker_flushed_since(url: str, moment: float, workers: int) -> bool:
    """Each of ``workers`` processes wrote to the store after ``moment`` (they are sent traffic meanwhile)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(2 * workers):
            client.get("/")
        processes = client.get("/monitoring/health").json()["deployment"]["processes"]
    flushed = [datetime.fromisoformat(p["last_flush"].replace("Z", "+00:00")).timestamp() for p in processes]
    return sum(when > moment + 1.0 for when in flushed) >= workers


def test_a_send_refused_for_good_is_not_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(auth=("alerts", "the-right-password")) as server:
        monitor = MonitorMiddleware(
            lambda e, s: [],
            storage=f"sqlite:///{tmp_path}/store.sqlite3",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_starttls=False,
            smtp_username="alerts",
            smtp_password="a-wrong-password",
            email_from="wsgimon@shop.example",
            report_email_to="lead@shop.example",
        )
        assert monitor.report is not None
        assert monitor.report.send_period(period_before(datetime.now(UTC), "week")) is False
        attempts = [r.getMessage() for r in caplog.records if "was not sent" in r.getMessage()]
        assert len(attempts) == 1 and "refused the login" in attempts[0], attempts
        assert "a-wrong-password" not in " ".join(attempts)
        monitor.close()


def test_a_failed_send_is_retried_then_recorded_and_shown_in_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.servers import free_port
    from wsgimon.reporting import schedule as report_schedule

    monkeypatch.setattr(report_schedule, "RETRY_DELAYS_S", (0.01, 0.01))
    monitor = MonitorMiddleware(
        lambda e, s: [],
        storage=f"sqlite:///{tmp_path}/store.sqlite3",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_starttls=False,
        email_from="wsgimon@shop.example",
        report_email_to="lead@shop.example",
    )
    assert monitor.report is not None
    period = period_before(datetime.now(UTC), "week")
    assert monitor.report.send_period(period) is False
    assert monitor.report.send_period(period) is False, "a failed period is not sent again by the schedule"
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["report"]["status"] == "degraded" and "failed" in health["checks"]["report"]["detail"]
    assert sum("was not sent" in r.getMessage() for r in caplog.records) == 3
    monitor.close()


def test_schedules_and_zones_are_checked_at_start() -> None:
    assert parse_schedule("mon 09:00", "week") == ("mon", 9, 0, 0)
    assert parse_schedule("mon 09:00", "day") == (None, 9, 0, 0)
    assert parse_schedule("daily 07:30", "day") == (None, 7, 30, 0)
    with pytest.raises(ValueError, match="report_schedule"):
        Config.build({"report_schedule": "monday at nine"})
    with pytest.raises(ValueError, match="IANA"):
        Config.build({"report_timezone": "Mars/Olympus"})
    with pytest.raises(ValueError, match="report_period"):
        Config.build({"report_period": "month"})


def test_a_week_in_a_zone_with_a_dst_change_has_seven_days() -> None:
    before_change = datetime(2026, 11, 2, 10, 0, tzinfo=ZoneInfo("America/New_York"))  # DST ended on Nov 1
    period = period_before(before_change, "week")
    assert period.start.isoformat().startswith("2026-10-26T00:00") and period.end.isoformat().startswith(
        "2026-11-02T00:00"
    )
    assert len(period.days()) == 7


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("WSGIMON_")}
    full.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "wsgimon", "report", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_the_cli_previews_and_sends(tmp_path: Path, smtp: SMTPStandIn) -> None:
    store = tmp_path / "store.sqlite3"
    seeded = SQLiteStore(str(store), recent_requests=100)
    seeded.write(batch_of(last_week_traffic(datetime.now(UTC))), process())
    seeded.close()
    env: dict[str, Any] = mail_env(smtp, store)
    preview = tmp_path / "report.html"
    done = run_cli("--preview", str(preview), **env)
    assert done.returncode == 0, done.stderr
    assert "2,000" in preview.read_text()
    done = run_cli("--send", **env)
    assert done.returncode == 0, done.stderr
    assert len(smtp.wait_for_messages(1)) == 1


def test_the_cli_fails_in_one_clear_line(tmp_path: Path) -> None:
    missing = run_cli("--preview", str(tmp_path / "x.html"), WSGIMON_STORAGE=f"sqlite:///{tmp_path}/none.sqlite3")
    assert missing.returncode != 0 and "no store at" in missing.stderr and "Traceback" not in missing.stderr
    store = tmp_path / "store.sqlite3"
    SQLiteStore(str(store), recent_requests=10).close()
    from tests.servers import free_port

    unreachable = run_cli(
        "--send",
        WSGIMON_STORAGE=f"sqlite:///{store}",
        WSGIMON_SMTP_HOST="127.0.0.1",
        WSGIMON_SMTP_PORT=str(free_port()),
        WSGIMON_SMTP_STARTTLS="0",
        WSGIMON_EMAIL_FROM="wsgimon@shop.example",
        WSGIMON_REPORT_EMAIL_TO="lead@shop.example",
    )
    assert unreachable.returncode != 0 and "was not sent" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and len(unreachable.stderr.strip().splitlines()) == 1


def test_the_report_lists_the_weeks_releases_and_what_each_changed(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    period = period_before(now, "week")
    start = period.start.timestamp()
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    v1 = ProcessRow("host", 1, start + 3600, start + 3 * 86400, 0, release="v1")
    v2 = ProcessRow("host", 2, start + 4 * 86400, start + 6 * 86400, 0, release="v2")
    store.write(batch_of([(start + 7200 + i, "/search", "GET", 200, 10.0) for i in range(300)]), v1)
    slower = [(start + 4 * 86400 + 60 + i, "/search", "GET", 200, 90.0) for i in range(300)]
    store.write(batch_of([*slower, (start + 5 * 86400, "/pay", "POST", 500, 5.0)]), v2)
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    assert [(r["release"], r["requests"]) for r in report.releases] == [("v1", 300), ("v2", 301)]
    assert report.releases[0]["regressions"] == [] and report.releases[0]["compared_with"] is None
    (regression,) = report.releases[1]["regressions"]
    assert (regression["endpoint"], regression["metric"]) == ("/search", "p95")
    assert report.releases[1]["new_error_types"] == ["ValueError"]
    text, html = render_report(report)
    assert (
        "Releases deployed" in text and "v2" in text and "GET /search p95" in text and "new errors: ValueError" in text
    )
    assert "Releases deployed" in html and "no regression" not in html.split("v2")[-1].split("</tr>")[0]
    store.close()


def issue_batch(
    issue_id: str,
    type_name: str,
    at: list[float],
    endpoints: dict[str, int],
    message: str = "",
) -> Batch:
    """One issue's occurrences at the given times, the way a process's flush carries them."""
    minutes: dict[int, int] = {}
    for moment in at:
        minute = int(moment // 60 * 60)
        minutes[minute] = minutes.get(minute, 0) + 1
    sample = IssueSample(
        id=issue_id,
        fingerprint=issue_id,
        type=type_name,
        title=message or type_name,
        message=message or type_name,
        traceback=None,
        frames=[],
        culprit=f"shop.views in {issue_id}",
        count=len(at),
        first_seen=min(at),
        last_seen=max(at),
        endpoints={(endpoint, "GET"): n for endpoint, n in endpoints.items()},
        minutes=minutes,
    )
    return Batch(issues={issue_id: sample})


def flushed_at(moment: float) -> ProcessRow:
    """A process whose flush happened at ``moment``: what the store decides there, it decides as of then."""
    return ProcessRow("host", 1, moment - 60, moment, 0)


def section(text: str, title: str) -> str:
    """The lines of the plain-text part under ``title``, up to the next blank line."""
    return text.split("\n" + title, 1)[1].split("\n\n", 1)[0]


def text_time(epoch: float) -> str:
    """A time as the report writes it (in UTC, the zone of these reports)."""
    return f"{datetime.fromtimestamp(epoch, UTC):%a %d %b %H:%M}"


def test_the_weeks_failures_are_new_issues_and_top_issues_with_their_endpoints(tmp_path: Path) -> None:
    period = period_from(datetime.now(UTC).date(), "week", UTC)  # this week: the failures below are in it
    _, monitor = create_app(storage=f"sqlite:///{tmp_path}/store.sqlite3", public_url="https://shop.example")
    for path in ("/orders/1x", "/refunds/2x", "/invoices/3x", "/orders/4x", "/lookup/first", "/lookup/first"):
        call(monitor, path)
    call(monitor, "/unavailable")
    call(monitor, "/ok")
    monitor.flush()
    report = build_report(monitor.store, period, monitor.config)
    issues = report.issues
    assert [(x["type"], x["count"]) for x in issues.new] == [
        ("ValueError", 4),
        ("KeyError", 2),
        ("503 Service Unavailable", 1),
    ]
    assert [(x["type"], x["count"]) for x in issues.top] == [(x["type"], x["count"]) for x in issues.new]
    value_error = issues.new[0]
    assert {e["endpoint"] for e in value_error["endpoints"]} == {"/orders/<raw>", "/refunds/<raw>", "/invoices/<raw>"}
    assert value_error["culprit"] == "tests.issues_app in parse_amount" and value_error["more_endpoints"] == 0
    assert value_error["url"] == f"https://shop.example/monitoring/?issue={value_error['id']}"
    assert issues.regressed == [] and issues.counted_since is None
    text, html = render_report(report)
    new = section(text, "New issues")
    assert "ValueError: invalid literal for int() with base <num>: <str>" in new
    assert "tests.issues_app in parse_amount" in new and "GET /orders/<raw>" in new and "GET /lookup/<which>" in new
    assert "4 occurrences in the week" in new and "503 Service Unavailable" in new
    assert section(text, "Regressions").strip().endswith("(none)")
    top = section(text, "Top issues in the week").splitlines()
    assert [line.split()[:2] for line in top if line[:10].strip().isdigit()] == [
        ["4", "ValueError:"],
        ["2", "KeyError:"],
        ["1", "503"],
    ]
    # The HTML part: the same issues, escaped, each linked to its page of the dashboard.
    assert "New issues" in html and "Top issues in the week" in html and "Top error types" not in html
    assert "/orders/&lt;raw&gt;" in html and "<raw>" not in html
    assert f'href="https://shop.example/monitoring/?issue={value_error["id"]}"' in html
    monitor.close()


def test_an_issue_resolved_then_seen_again_is_a_regression_of_the_period(tmp_path: Path) -> None:
    period = period_from(datetime.now(UTC).date(), "week", UTC)
    _, monitor = create_app(storage=f"sqlite:///{tmp_path}/store.sqlite3")
    call(monitor, "/lookup/first")
    call(monitor, "/orders/1x")
    monitor.flush()
    ids = {row.type: row.id for row in monitor.store.issues(None)}
    resolved_at = time.time()
    for issue_id in ids.values():
        monitor.store.change_issue(issue_id, IssueChange("resolved"), resolved_at)
    call(monitor, "/lookup/first")  # back; the ValueError stays fixed
    monitor.flush()
    report = build_report(monitor.store, period, monitor.config)
    (regressed,) = report.issues.regressed
    assert regressed["id"] == ids["KeyError"] and regressed["status"] == "regressed"
    assert regressed["count"] == 2 and regressed["resolved_at"] == resolved_at
    assert period.start.timestamp() <= regressed["status_changed"] < period.end.timestamp()
    assert {(x["type"], x["status"]) for x in report.issues.top} == {
        ("KeyError", "regressed"),
        ("ValueError", "resolved"),
    }
    assert regressed["url"] is None, "no public_url: nothing to link to"
    text, html = render_report(report)
    regressions = section(text, "Regressions")
    assert "KeyError" in regressions and "ValueError" not in regressions and "GET /lookup/<which>" in regressions
    assert f"resolved {text_time(resolved_at)}" in regressions
    html_regressions = html.split("Regressions", 1)[1].split("Top issues", 1)[0]
    assert "KeyError" in html_regressions and "ValueError" not in html_regressions
    assert "/lookup/&lt;which&gt;" in html_regressions and "?issue=" not in html
    monitor.close()


def test_a_past_weeks_issues_new_regressed_and_top_by_occurrences_in_the_week(tmp_path: Path) -> None:
    period = period_before(datetime.now(UTC), "week")
    start = period.start.timestamp()
    day = 86400.0
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    # Seen a lot the week before and twice in the week: not new, and the top is the week's, not all time's.
    store.write(
        issue_batch("old", "TimeoutError", [start - 3 * day + i for i in range(50)], {"/feed": 50}),
        flushed_at(start - 3 * day + 60),
    )
    store.write(
        issue_batch("old", "TimeoutError", [start + day + i for i in range(2)], {"/feed": 2}),
        flushed_at(start + day + 60),
    )
    # Only seen before the week: neither new nor in the top.
    store.write(
        issue_batch("gone", "OSError", [start - 2 * day + i for i in range(90)], {"/upload": 90}),
        flushed_at(start - 2 * day + 120),
    )
    # Resolved before the week, back in it.
    store.write(
        issue_batch("back", "KeyError", [start - 4 * day], {"/cart": 1}, "'coupon'"), flushed_at(start - 4 * day + 60)
    )
    store.change_issue("back", IssueChange("resolved"), start - 3 * day)
    store.write(
        issue_batch("back", "KeyError", [start + 2 * day + i for i in range(3)], {"/cart": 3}, "'coupon'"),
        flushed_at(start + 2 * day + 60),
    )
    # New in the week, with more endpoints than are named.
    endpoints = {"/a": 5, "/b": 4, "/c": 3, "/d": 2, "/e": 1}
    store.write(
        issue_batch("fresh", "ValueError", [start + 3 * day + i * 60 for i in range(15)], endpoints, "bad price"),
        flushed_at(start + 3 * day + 3600),
    )
    for n, name in enumerate(("n1", "n2", "n3", "n4")):
        at = [start + 5 * day + n * 3600 + i for i in range(n + 4)]  # 4 to 7 occurrences
        store.write(
            issue_batch(name, "RuntimeError", at, {f"/{name}": n + 4}, f"broke {name}"), flushed_at(max(at) + 60)
        )
    # Just after the week: not counted in it.
    store.write(
        issue_batch("n1", "RuntimeError", [period.end.timestamp() + i for i in range(20)], {"/n1": 20}, "broke n1"),
        flushed_at(period.end.timestamp() + 60),
    )
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    issues = report.issues
    assert [x["id"] for x in issues.new] == ["fresh", "n4", "n3", "n2", "n1"]
    assert [(x["id"], x["count"]) for x in issues.top] == [("fresh", 15), ("n4", 7), ("n3", 6), ("n2", 5), ("n1", 4)]
    assert [(x["id"], x["count"]) for x in issues.regressed] == [("back", 3)]
    assert issues.regressed[0]["status_changed"] == start + 2 * day + 60
    fresh = issues.new[0]
    assert [e["endpoint"] for e in fresh["endpoints"]] == ["/a", "/b", "/c"] and fresh["more_endpoints"] == 2
    text, html = render_report(report)
    new = section(text, "New issues")
    assert "ValueError: bad price" in new and "GET /a, GET /b, GET /c +2 more" in new
    assert "15 occurrences in the week" in new and "TimeoutError" not in new and "OSError" not in text
    assert "&#39;coupon&#39;" in html.split("Regressions", 1)[1].split("Top issues", 1)[0]
    assert "+2 more" in html and "OSError" not in html
    store.close()


def test_a_week_without_issues_says_so_in_one_line(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    period = period_before(now, "week")
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    store.write(batch_of(last_week_traffic(now)), process())
    earlier = period.start.timestamp() - 1800  # just before the week
    store.write(issue_batch("earlier", "ValueError", [earlier], {"/checkout": 1}), flushed_at(earlier + 60))
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    assert report.issues.new == report.issues.regressed == report.issues.top == []
    text, html = render_report(report)
    issue_lines = [line for line in text.splitlines() if "issue" in line.lower()]
    assert issue_lines == ["Issues: none in the week (no new issue, no regression, no failure counted)"]
    assert "New issues" not in html and "Top issues" not in html and "none in the week" in html
    store.close()


def test_past_the_hour_retention_the_report_says_its_occurrences_are_not_counted() -> None:
    period = period_before(datetime.now(UTC), "week")
    start = period.start.timestamp()
    store = MemoryStore(recent_requests=10)  # keeps hour rows for two days: last week's are gone
    store.write(issue_batch("fresh", "ValueError", [start + 3600], {"/pay": 1}, "bad price"), flushed_at(start + 3660))
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    (fresh,) = report.issues.new
    assert fresh["id"] == "fresh" and fresh["count"] is None and report.issues.top == []
    assert report.issues.counted_since is not None and report.issues.counted_since >= period.end.timestamp()
    text, html = render_report(report)
    assert "– occurrences in the week" in section(text, "New issues")
    assert "(occurrences are past the retention and not counted)" in text
    assert "Occurrences are past the retention and not counted." in html


def visible(html: str) -> str:
    """The HTML part's text as a reader sees it (no tags, no styles)."""
    return re.sub(r"<[^>]*>", " ", html.split("<body", 1)[1])


def test_a_week_without_any_request_says_there_was_no_traffic_and_shows_no_numbers(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    period = period_before(now, "week")
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    # Traffic the week before, and today (what an SLO computed "now" would show): none in the week.
    week_before = [(at - 7 * 86400, e, m, s, d) for at, e, m, s, d in last_week_traffic(now)]
    today = [(time.time() - 600 + i, "/checkout", "GET", 500 if i % 2 else 200, 20.0) for i in range(100)]
    store.write(batch_of(week_before + today), process())
    config = Config.build({"storage": "memory://", "slo_availability": 99.0})
    report = build_report(store, period, config)
    assert report.totals["requests"] == 0 and not report.traffic
    assert report.slo == [] and set(report.changes.values()) == {None}
    assert subject(report).endswith(": no traffic")
    text, html = render_report(report)
    assert "No traffic in the week: no request was recorded from " in text
    assert "The week before: 2,000 requests." in text
    for part in (text, visible(html)):
        assert "%" not in part, "no availability, error rate, SLO or change to show"
        assert "error budget" not in part and "Availability" not in part and "p95" not in part
        assert "Per day" not in part and "Busiest endpoints" not in part
    assert "No traffic in the week" in html and "2,000 requests" in html
    store.close()


def test_with_traffic_the_slo_line_is_the_periods_error_budget(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    period = period_before(now, "week")
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    # 2,000 requests in the week, 50 of them failing; today's all fail, and must not count.
    today = [(time.time() - 600 + i, "/checkout", "GET", 500, 20.0) for i in range(100)]
    store.write(batch_of(last_week_traffic(now) + today), process())
    config = Config.build({"storage": "memory://", "slo_availability": 99.0})
    report = build_report(store, period, config)
    (slo,) = report.slo
    assert (slo["requests"], slo["bad"], slo["good"]) == (2000, 50, 0.975)
    assert slo["allowed"] == pytest.approx(20) and slo["budget_used"] == 2.5
    text, html = render_report(report)
    (line,) = [line for line in text.splitlines() if line.startswith("SLO")]
    assert line.split(None, 1)[1] == (
        "99 % of requests succeed: 97.50 % in the week, "
        "250 % of its error budget used (50 bad of 20 allowed): overspent"
    )
    html_slo = html.split("<b>SLO</b>", 1)[1].split("</tr>", 1)[0]
    assert "97.50 % in the week" in html_slo and "250 %" in html_slo and "overspent" in html_slo
    assert "50 bad requests of the 20 the 2,000 requests in the week allowed" in html_slo
    assert "30-day" not in text + html
    store.close()


def incident_message(number: int, state: str, title: str, opened: float, sent: float) -> AlertRow:
    """One message of an incident as the alert engine records it."""
    return AlertRow(f"incident|{number}", "error_rate", "critical", state, title, "", opened, sent, 0)


def told_incident(store: SQLiteStore | MemoryStore, number: int, about: str, opened: float, lasted: float) -> None:
    """An incident's first message, an update, and its resolve ``lasted`` seconds after it opened."""
    store.record_alert(incident_message(number, "firing", f"Incident #{number}: {about}", opened, opened + 30))
    update = f"Incident #{number} update: new: Latency of GET /pay above 800 ms"
    store.record_alert(incident_message(number, "firing", update, opened, opened + 330))
    resolved = f"Incident #{number} resolved after {lasted // 60:.0f} min: {about}"
    store.record_alert(incident_message(number, "resolved", resolved, opened, opened + lasted))


def test_the_weeks_incidents_their_longest_time_to_resolve_and_silences(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    period = period_before(now, "week")
    start, end = period.start.timestamp(), period.end.timestamp()
    day = 86400.0
    store = SQLiteStore(str(tmp_path / "store.sqlite3"), recent_requests=100)
    store.write(batch_of(last_week_traffic(now)), process())
    told_incident(store, 1, "Error rate of GET /checkout above 5.0 %", start + day + 3600, 20 * 60)
    # Still open: its first message in the log, the incident in the alerting state.
    opened = start + 3 * day
    still_open = Incident(2, "deployment", "open", opened, first_sent=opened + 30, messages=1)
    still_open.title = "Health check database failing"
    store.record_alert(incident_message(2, "firing", "Incident #2: Health check database failing", opened, opened + 30))

    def open_incident(state: AlertingState) -> None:
        state.incidents[2] = still_open
        state.changed_incidents.add(2)

    store.alerting(open_incident, time.time())
    told_incident(store, 3, "ValueError in POST /pay", start + 4 * day, 40 * 60)
    told_incident(store, 4, "Error rate of GET /search above 5.0 %", end - 3600, 3 * 3600)  # resolved after the week
    told_incident(store, 5, "Latency of GET /feed above 800 ms", end + 60, 600)  # opened after the week
    store.record_alert(AlertRow("test|1", "test", "info", "firing", "Test alert", "", start + day, start + day, 0))
    reason = "Payment <provider> migration"
    store.add_silence(
        parse_silence(
            {"rule": "error_rate", "endpoint": "/checkout", "for": "2h", "reason": reason, "created_by": "ana"},
            start + 2 * day,
        )
    )
    store.add_silence(parse_silence({"rule": "health", "for": "1h", "reason": "Old maintenance"}, start - 2 * day))
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    incidents = report.incidents
    assert [(x["id"], x["status"]) for x in incidents.opened] == [
        (1, "resolved"),
        (2, "open"),
        (3, "resolved"),
        (4, "resolved"),
    ]
    assert (incidents.count, incidents.still_open, incidents.resolved) == (4, 1, 3)
    assert incidents.opened[0]["title"] == "Error rate of GET /checkout above 5.0 %", "not the update's"
    assert incidents.opened[0]["duration"] == 20 * 60 and incidents.opened[3]["duration"] == 3 * 3600
    longest = incidents.longest
    assert longest is not None and (longest["id"], longest["status"]) == (2, "open")
    assert longest["duration"] >= time.time() - 60 - opened
    assert incidents.resolve_median_s == 40 * 60 and incidents.resolve_mean_s == 80 * 60
    (silence,) = incidents.silences
    assert silence["reason"] == reason and silence["matches"] == ["rule error_rate", "endpoint /checkout"]
    assert incidents.log_since is None and incidents.silences_since is None
    text, html = render_report(report)
    lines = section(text, "Incidents").splitlines()
    assert lines[0] == ": 4 opened in the week, 1 still open"
    assert lines[1].startswith("  Longest: #2 Health check database failing: still open, for ")
    assert lines[1].endswith(" so far")
    assert lines[2] == "  Time to resolve: median 40 min, mean 80 min (over 3 resolved)"
    assert lines[3].endswith("Error rate of GET /checkout above 5.0 % [critical]: resolved after 20 min")
    assert lines[4].endswith("Health check database failing [critical]: still open")
    assert lines[6].startswith("  #4 ") and lines[6].endswith("resolved after 3 h 0 min") and len(lines) == 7
    silenced = section(text, "Silenced in the week")
    assert f'rule error_rate, endpoint /checkout: "{reason}" (ana)' in silenced
    assert text_time(start + 2 * day) in silenced and "Old maintenance" not in text
    html_incidents = html.split(">Incidents", 1)[1].split("Releases", 1)[0]
    assert "4 opened in the week" in html_incidents and "1 still open" in html_incidents
    assert "still open</span>, for " in html_incidents and "median 40 min, mean 80 min" in html_incidents
    assert "Payment &lt;provider&gt; migration" in html_incidents and "<provider>" not in html
    assert "Old maintenance" not in html and "Test alert" not in text + html
    store.close()


def test_an_alert_log_that_does_not_reach_back_to_the_periods_start_says_so() -> None:
    period = period_before(datetime.now(UTC), "week")
    start = period.start.timestamp()
    store = MemoryStore(recent_requests=10)
    told_incident(store, 1, "Error rate of GET /checkout above 5.0 %", start + 3600, 600)  # pushed out below
    first_kept = start + 3 * 86400
    for number in range(2, 2 + MAX_ALERTS // 3 + 1):
        told_incident(store, number, "ValueError in POST /pay", first_kept + number * 3600, 600)
    report = build_report(store, period, Config.build({"storage": "memory://"}))
    kept = store.recent_alerts(MAX_ALERTS)
    assert len(kept) == MAX_ALERTS
    incidents = report.incidents
    assert incidents.log_since == min(row.sent_at for row in kept) > start
    assert 1 not in [x["id"] for x in incidents.opened]
    text, html = render_report(report)
    since = text_time(incidents.log_since)
    assert f"(the alert log reaches back to {since} only: incidents told before are not counted)" in text
    assert "incidents told before are not counted" in html
    assert f"10 of {incidents.count} listed" in text + html
