"""Check-in schedules and states at fixed instants: intervals, cron across daylight-saving changes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wsgimon.stats.checkins import (
    DOWN,
    FAILED,
    LATE,
    NEW,
    RUNNING_TOO_LONG,
    UP,
    Run,
    Schedule,
    parse_monitor,
    state_of,
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_an_interval_monitor_goes_up_late_down_and_up_again() -> None:
    t0 = at("2026-12-01 00:00:00")
    monitor = parse_monitor("backup", {"every": "2s", "grace": "1s"}, t0)
    assert state_of(monitor, [], t0 + 1).state == NEW
    assert state_of(monitor, [], t0 + 2.5).state == LATE
    assert state_of(monitor, [], t0 + 3.5).state == DOWN
    runs = [Run(None, t0 + 4, ok=True)]
    assert state_of(monitor, runs, t0 + 5).state == UP
    assert state_of(monitor, runs, t0 + 6.5).state == LATE
    down = state_of(monitor, runs, t0 + 7.5)
    assert down.state == DOWN and down.expected == t0 + 6 and down.since == t0 + 7


def test_failures_and_runs_that_do_not_end() -> None:
    t0 = at("2026-12-01 00:00:00")
    monitor = parse_monitor("invoices", {"every": "1h", "grace": "10m"}, t0)
    failed = state_of(monitor, [Run(t0, t0 + 5, ok=False, exit_code=3)], t0 + 60)
    assert failed.state == FAILED and "exit code 3" in failed.detail
    assert state_of(monitor, [Run(t0, t0 + 5, ok=False), Run(t0 + 100, t0 + 110, ok=True)], t0 + 200).state == UP
    running = [Run(t0, t0 + 5, ok=True), Run(t0 + 3600, None)]
    assert state_of(monitor, running, t0 + 3600 + 300).state == UP
    too_long = state_of(monitor, running, t0 + 3600 + 601)
    assert too_long.state == RUNNING_TOO_LONG and too_long.since == t0 + 3600 + 600


def test_a_cron_schedule_follows_daylight_saving_changes_in_its_zone() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone="Europe/Paris")
    # Before the change (CET, UTC+1) 09:00 is 08:00 UTC; after it (CEST, UTC+2), 07:00 UTC.
    assert schedule.next_after(at("2026-03-28 10:00:00")) == at("2026-03-29 07:00:00")
    assert schedule.next_after(at("2026-03-27 10:00:00")) == at("2026-03-28 08:00:00")
    # And back in October.
    assert schedule.next_after(at("2026-10-24 12:00:00")) == at("2026-10-25 08:00:00")
    # An instant exactly on a fire time expects the next one.
    assert schedule.next_after(at("2026-03-28 08:00:00")) == at("2026-03-29 07:00:00")
    monitor = parse_monitor("report", {"cron": "0 9 * * *", "timezone": "Europe/Paris", "grace": "30m"}, 0.0)
    ran = [Run(None, at("2026-03-28 08:00:05"), ok=True)]
    assert state_of(monitor, ran, at("2026-03-29 07:20:00")).state == LATE
    assert state_of(monitor, ran, at("2026-03-29 07:31:00")).state == DOWN


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("backup", {}, "one of every or cron"),
        ("backup", {"every": "1d", "cron": "0 3 * * *"}, "one of every or cron"),
        ("backup", {"every": "soon"}, "every must look like"),
        ("backup", {"every": "0s"}, "more than 0"),
        ("backup", {"cron": "61 * * * *"}, "bad cron expression"),
        ("backup", {"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ("backup", {"every": "1d", "grace": "-1m"}, "grace must look like"),
        ("backup", {"every": "1d", "when": "now"}, "unknown key"),
        ("bad name!", {"every": "1d"}, "check-in name"),
    ],
)
def test_bad_declarations_are_refused_with_a_clear_message(name: str, spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_monitor(name, spec, 0.0)


def test_the_checkins_option_reads_a_mapping_or_json_and_refuses_bad_ones() -> None:
    from wsgimon.config import Config

    config = Config.build({"checkins": {"nightly-backup": {"every": "1d", "grace": "1h"}}}, {})
    (monitor,) = config.checkins
    assert (monitor.name, monitor.schedule.every_s, monitor.grace_s) == ("nightly-backup", 86400.0, 3600.0)
    from_env = Config.build({}, {"WSGIMON_CHECKINS": '{"report": {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}}'})
    assert from_env.checkins[0].schedule.cron == "0 9 * * 1"
    with pytest.raises(ValueError, match="checkins must be JSON"):
        Config.build({}, {"WSGIMON_CHECKINS": "{not json"})
    with pytest.raises(ValueError, match="check-in x: a check-in needs one of every or cron"):
        Config.build({"checkins": {"x": {}}}, {})


@pytest.mark.parametrize(
    ("cron", "weekday"),
    [("0 6 * * 1-5", "Mon"), ("0 9 * * 0", "Sun"), ("0 9 * * 7", "Sun"), ("0 9 * * 6", "Sat"), ("0 9 * * sat", "Sat")],
)
def test_cron_weekdays_count_from_sunday_as_cron_does(cron: str, weekday: str) -> None:
    friday_noon = at("2026-12-04 12:00:00")
    fire = Schedule(cron=cron).next_after(friday_noon)
    assert datetime.fromtimestamp(fire, timezone.utc).strftime("%a") == weekday
