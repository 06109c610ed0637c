"""The weekly report: exactly once across workers and restarts, numbers that match the API, readable."""

from __future__ import annotations

import os
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

from tests.helpers import get_json
from tests.seeding import batch_of, process
from tests.servers import ROOT, gunicorn_server
from tests.standins.smtp import SMTPStandIn, smtp_server
from wsgimon import MonitorMiddleware
from wsgimon.config import Config
from wsgimon.report import build_report, period_before, render_report, report_email
from wsgimon.report_schedule import parse_schedule
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
        time.sleep(2)  # the other two workers fired too: give a second message the time it would need
        assert len(smtp.received) == 1
        assert "2,000 requests" in received.message["Subject"]
        health = httpx.get(url + "/monitoring/health").json()
        assert health["checks"]["report"]["status"] == "ok" and "sent" in health["checks"]["report"]["detail"]
    # Restarted right after: the catch-up finds the period sent.
    with gunicorn_server("demo_app:app", "-w", "3", env=env) as (url, _):
        warm_every_worker(url, 3)
        time.sleep(2)
        assert len(smtp.received) == 1


@pytest.mark.slow
def test_a_start_within_a_day_of_a_missed_run_sends_it_once(tmp_path: Path, smtp: SMTPStandIn) -> None:
    store = tmp_path / "shared.sqlite3"
    missed = datetime.now(UTC) - timedelta(hours=3)
    env = mail_env(smtp, store, WSGIMON_REPORT_SCHEDULE=f"{missed:%a} {missed:%H:%M}".lower())
    with gunicorn_server("demo_app:app", "-w", "2", env=env) as (url, _):
        warm_every_worker(url, 2)
        smtp.wait_for_messages(1, timeout=30)
        time.sleep(2)
        assert len(smtp.received) == 1


def test_a_failed_send_is_retried_then_recorded_and_shown_in_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.servers import free_port
    from wsgimon import report_schedule

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
    from wsgimon.stores.base import ProcessRow

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
