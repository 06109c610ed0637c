"""The report's "Check-ins": each monitor's runs over the period, written through a real SQLite store with
fixed times: what succeeded, what failed (and how), what was missed (interval and cron schedules), and the
state at the end of the period; and no such section for a deployment without a monitor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.seeding import batch_of, process
from wsgimon import MonitorMiddleware
from wsgimon.reporting.period import Period, period_before
from wsgimon.reporting.report import build_report, render_report
from wsgimon.stats.checkins import parse_monitor
from wsgimon.stores.contract import RUNS_PER_CHECKIN

UTC = timezone.utc
DAY = 86400.0
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[MonitorMiddleware]:
    middleware = MonitorMiddleware(lambda e, s: [], storage=f"sqlite:///{tmp_path}/store.sqlite3")
    yield middleware
    middleware.close()


@pytest.fixture
def period() -> Period:
    return period_before(datetime.now(UTC), "week")


def ping(monitor: MonitorMiddleware, name: str, spec: dict[str, Any], kind: str, at: float, **extra: Any) -> None:
    """A ping at ``at``; the monitor is created (at ``spec["created"]``) by its first one."""
    declare = parse_monitor(name, {k: v for k, v in spec.items() if k != "created"}, spec["created"])
    assert monitor.store.checkin_ping(name, kind, at, declare=declare, **extra) is not None


def seed_backup(monitor: MonitorMiddleware, start: float) -> dict[str, Any]:
    """Daily at 03:00 UTC: Mon, Tue ran, Wed failed, Thu and Fri missed, Sat and Sun ran."""
    spec = {"every": "1d", "grace": "1h", "created": start - 3 * DAY}
    ping(monitor, "nightly-backup", spec, "success", start - DAY + 3 * 3600, duration_s=60)  # the Sunday before
    for day in (0, 1, 2, 5, 6):  # in time order, as pings come
        ping(monitor, "nightly-backup", spec, "start", start + day * DAY + 3 * 3600 - 60)
        if day == 2:
            extra = {"exit_code": 3, "error": "BackupError: disk full"}
            ping(monitor, "nightly-backup", spec, "fail", start + day * DAY + 3 * 3600, **extra)
        else:
            ping(monitor, "nightly-backup", spec, "success", start + day * DAY + 3 * 3600)
    return spec


def seed_weekdays(monitor: MonitorMiddleware, start: float) -> None:
    """Weekdays at 06:00 in Paris (a cron in a zone): ran each time, two minutes after."""
    spec = {"cron": "0 6 * * mon-fri", "timezone": "Europe/Paris", "grace": "30m", "created": start - 7 * DAY}
    first = datetime.fromtimestamp(start, UTC).date()
    for day in range(5):
        date = first + timedelta(days=day)
        fire = datetime(date.year, date.month, date.day, 6, tzinfo=PARIS).timestamp()
        ping(monitor, "invoices", spec, "start", fire + 5)
        ping(monitor, "invoices", spec, "success", fire + 120)


def texts_of(monitor: MonitorMiddleware, period: Period) -> tuple[Any, str, str]:
    report = build_report(monitor.store, period, monitor.config)
    text, html = render_report(report)
    return report, text, html


def test_runs_failures_and_missed_runs_per_monitor(monitor: MonitorMiddleware, period: Period) -> None:
    start = period.start.timestamp()
    seed_backup(monitor, start)
    seed_weekdays(monitor, start)
    monitor.store.write(batch_of([(start + 3600, "/checkout", "GET", 200, 12.0)]), process())
    report, text, html = texts_of(monitor, period)

    checkins = report.checkins
    assert checkins is not None and checkins.count == 2 and checkins.troubled == 1
    assert (checkins.succeeded, checkins.failed, checkins.missed) == (4 + 5, 1, 2)
    backup, invoices = checkins.monitors  # the one in trouble first
    assert backup["name"] == "nightly-backup" and backup["describe"] == "every 1d"
    assert (backup["succeeded"], backup["failed"], backup["missed"]) == (4, 1, 2)
    assert backup["missed_at"] == [start + 3 * DAY + 3 * 3600, start + 4 * DAY + 3 * 3600]
    assert backup["failures"] == [{"at": start + 2 * DAY + 3 * 3600, "exit_code": 3, "error": "BackupError: disk full"}]
    assert backup["state"] == "up" and backup["troubled"] and backup["known_from"] is None
    assert invoices["name"] == "invoices" and invoices["describe"] == "cron 0 6 * * mon-fri (Europe/Paris)"
    assert (invoices["succeeded"], invoices["failed"], invoices["missed"]) == (5, 0, 0)
    assert invoices["state"] == "up" and not invoices["troubled"] and invoices["missed_at"] == []

    when = report_when(period)
    assert "Check-ins: 2 jobs: 9 runs succeeded, 1 failed, 2 missed in the week" in text
    assert "nightly-backup (every 1d, grace 1h): 4 succeeded, 1 failed, 2 missed" in text
    assert f"failed {when(start + 2 * DAY + 3 * 3600)}: BackupError: disk full, exit code 3" in text
    assert f"missed: expected {when(start + 3 * DAY + 3 * 3600)}, {when(start + 4 * DAY + 3 * 3600)}" in text
    assert "invoices (cron 0 6 * * mon-fri (Europe/Paris), grace 30m): 5 succeeded, 0 failed, 0 missed" in text
    assert text.count("at the end: up") == 2
    assert "Check-ins" in html and "nightly-backup" in html and "BackupError: disk full, exit code 3" in html
    assert ">up</span>" in html and "2 missed</span>" in html
    assert text.index("Check-ins") > text.index("Incidents")


def report_when(period: Period) -> Any:
    """A time as the report writes it."""
    return lambda epoch: f"{datetime.fromtimestamp(epoch, period.start.tzinfo):%a %d %b %H:%M}"


def test_the_state_at_the_end_of_the_period_and_a_job_that_stopped(monitor: MonitorMiddleware, period: Period) -> None:
    start, end = period.start.timestamp(), period.end.timestamp()
    spec = {"every": "6h", "grace": "30m", "created": start}
    ping(monitor, "sync", spec, "success", start + 3600)
    ping(monitor, "sync", spec, "fail", end - 3 * 3600, exit_code=1)  # the last run of the period failed
    ping(monitor, "sync", spec, "success", end + 3600)  # after the period: its state then is not the period's
    spec_cron = {"cron": "0 * * * *", "grace": "5m", "created": start + 2 * DAY}
    ping(monitor, "hourly", spec_cron, "start", start + 2 * DAY + 60)  # started once, never ended
    report, text, _html = texts_of(monitor, period)
    assert report.checkins is not None
    by_name = {x["name"]: x for x in report.checkins.monitors}
    sync = by_name["sync"]
    # From the run at start + 1h, the next is expected every 6h: none came until end - 3h.
    gap = (end - 3 * 3600) - (start + 3600)
    assert sync["missed"] == int((gap - 1800) // (6 * 3600)) and sync["failed"] == 1 and sync["succeeded"] == 1
    assert sync["state"] == "failed" and "exit code 1" in sync["detail"]
    hourly = by_name["hourly"]
    assert hourly["created"] == start + 2 * DAY and hourly["unfinished"] == 1
    # Expected every hour from its creation: the first (start + 2d + 0h) came (a start within its grace); none
    # after, until the end of the period: the count stops at the bound and says so.
    assert hourly["missed"] == 5 * 24 - 1 and not hourly["missed_at_least"]
    assert hourly["state"] == "running_too_long"
    assert "at the end: running too long (started " in text and "hourly (cron 0 * * * * (UTC), grace 5m)" in text
    assert "1 not ended" in text and "created " in text


def test_a_cron_every_minute_that_never_ran_is_bounded(monitor: MonitorMiddleware, period: Period) -> None:
    start = period.start.timestamp()
    monitor.store.declare_checkin(parse_monitor("every-minute", {"cron": "* * * * *", "grace": "1m"}, start))
    report, text, html = texts_of(monitor, period)
    assert report.checkins is not None
    [row] = report.checkins.monitors
    assert row["missed"] == 300 and row["missed_at_least"] and row["state"] == "down" and row["succeeded"] == 0
    assert "at least 300 missed" in text and "≥ 300 missed" in html
    assert len(row["missed_at"]) == 5 and "and 295+ more" in text


def test_only_the_runs_kept_are_counted(monitor: MonitorMiddleware, period: Period) -> None:
    """An hourly job over three days: the store keeps its newest runs only; nothing before them is missed."""
    start = period.start.timestamp()
    spec = {"every": "1h", "grace": "10m", "created": start - DAY}
    runs = 72
    for n in range(runs):
        ping(monitor, "hourly-sync", spec, "success", start + 4 * DAY + n * 3600, duration_s=5)
    report, text, _html = texts_of(monitor, period)
    assert report.checkins is not None
    [row] = report.checkins.monitors
    oldest = start + 4 * DAY + (runs - RUNS_PER_CHECKIN) * 3600
    assert row["succeeded"] == RUNS_PER_CHECKIN and row["missed"] == 0 and row["known_from"] == oldest - 5
    assert "(runs kept from " in text and "earlier ones are not counted)" in text


def test_no_monitor_no_section(monitor: MonitorMiddleware, period: Period) -> None:
    start = period.start.timestamp()
    monitor.store.write(batch_of([(start + 3600, "/checkout", "GET", 200, 12.0)]), process())
    report, text, html = texts_of(monitor, period)
    assert report.checkins is None
    assert "Check-ins" not in text and "Check-ins" not in html
    # A monitor created after the period was not there in it.
    monitor.store.declare_checkin(parse_monitor("later", {"every": "1d"}, period.end.timestamp() + 60))
    report, text, _html = texts_of(monitor, period)
    assert report.checkins is None and "Check-ins" not in text
