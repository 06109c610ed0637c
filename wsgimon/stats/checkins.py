"""Check-ins: the jobs beside the app (cron, Celery beat, scripts) and whether they ran when expected.

Pure: a :class:`Monitor` (a name, a schedule, a grace time) and what its pings said, in, a
state out, at an instant. The store keeps monitors and runs; the alert rules ask :func:`state_of`
at each evaluation, so a deployment with no monitor pays nothing.

States, as healthchecks.io and Sentry Crons name them:

- ``new``: never pinged; expected from its creation on (so a job that never starts is ``down``).
- ``up``: the last run succeeded and the next is not due yet.
- ``late``: past the time it was expected, within its grace.
- ``down``: past expected time and grace: it missed a run.
- ``failed``: its last run failed (a ``/fail`` ping, an exception, a non-zero exit).
- ``running_too_long``: started and not ended within its grace.

A schedule is an interval (``every="1d"``) or a cron expression with an IANA time zone
(``cron="0 3 * * *", timezone="Europe/Paris"``), whose times follow the zone's daylight-saving
changes (APScheduler's cron trigger computes them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "DOWN",
    "FAILED",
    "LATE",
    "NEW",
    "RUNNING_TOO_LONG",
    "UP",
    "Monitor",
    "Run",
    "Schedule",
    "checkin_duration",
    "parse_monitor",
    "state_of",
]

NEW = "new"
UP = "up"
LATE = "late"
DOWN = "down"
FAILED = "failed"
RUNNING_TOO_LONG = "running_too_long"

#: states that alert (the next success resolves them)
ALERTING = (DOWN, FAILED, RUNNING_TOO_LONG)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_S = 366 * 86400


def checkin_duration(text: object, name: str) -> float:
    """``30s``, ``5m``, ``1h``, ``1d`` (or a number of seconds) → seconds; ValueError naming ``name``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text).lower())
        if not match:
            raise ValueError(f"{name} must look like 30s, 5m, 1h or 1d, got {str(text)[:40]!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= _MAX_S:
        raise ValueError(f"{name} must be more than 0 and at most 366d, got {str(text)[:40]!r}")
    return seconds


@dataclass(frozen=True)
class Schedule:
    """When a job is expected: every ``every_s`` seconds after its last run, or at a cron's times."""

    every_s: float | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError("a check-in needs one of every or cron")
        if self.cron is not None:
            self._trigger()  # a bad expression or zone is refused when declared

    def next_after(self, instant: float) -> float:
        """The first expected time after ``instant``."""
        if self.every_s is not None:
            return instant + self.every_s
        moment = datetime.fromtimestamp(instant, timezone.utc)
        fire = self._trigger().get_next_fire_time(None, moment)
        if fire is not None and fire.timestamp() <= instant:
            fire = self._trigger().get_next_fire_time(fire, moment.replace(microsecond=0) + _ONE_SECOND)
        return _MAX_S * 10.0 if fire is None else fire.timestamp()

    def describe(self) -> str:
        if self.every_s is not None:
            return f"every {_words(self.every_s)}"
        return f"cron {self.cron} ({self.timezone})"

    def to_json(self) -> dict[str, Any]:
        return {"every_s": self.every_s, "cron": self.cron, "timezone": self.timezone if self.cron else None}

    def _trigger(self) -> Any:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from apscheduler.triggers.cron import CronTrigger

        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        fields = str(self.cron).split()
        if len(fields) != 5:
            raise ValueError(f"bad cron expression {self.cron!r}: five fields expected")
        try:
            # Not from_crontab: APScheduler 3 counts weekdays from Monday = 0, cron from Sunday = 0.
            return CronTrigger(
                minute=fields[0],
                hour=fields[1],
                day=fields[2],
                month=fields[3],
                day_of_week=_cron_weekdays(fields[4]),
                timezone=zone,
            )
        except ValueError as exc:
            raise ValueError(f"bad cron expression {self.cron!r}: {exc}") from exc


@dataclass(frozen=True)
class Monitor:
    """A job wsgimon watches: its name, schedule and grace, and since when it exists."""

    name: str
    schedule: Schedule
    grace_s: float
    created: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.schedule.to_json(), "grace_s": self.grace_s}


@dataclass
class Run:
    """One run of a job as its pings told it: started (if it said so), ended, how."""

    started: float | None
    ended: float | None = None
    ok: bool | None = None  # None while running
    exit_code: int | None = None
    error: str | None = None  # an exception's type, or a short reason
    log: str | None = None  # the tail of its output, redacted

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


@dataclass
class CheckInState:
    """Where a monitor stands at an instant, and when it is next expected."""

    state: str
    expected: float
    since: float
    last: Run | None = None
    detail: str = field(default="")


def parse_monitor(name: str, spec: dict[str, Any], now: float) -> Monitor:
    """A monitor from ``{"every": "1d", "grace": "1h"}`` or ``{"cron": "0 3 * * *", "timezone":
    "Europe/Paris", "grace": "30m"}``; ValueError says what is wrong."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"a check-in name is 1 to 64 letters, digits, '.', '_' or '-', got {str(name)[:70]!r}")
    if not isinstance(spec, dict):
        raise ValueError(f"check-in {name}: expected an object like {{'every': '1d', 'grace': '1h'}}")
    unknown = sorted(set(spec) - {"every", "cron", "timezone", "tz", "grace"})
    if unknown:
        raise ValueError(f"check-in {name}: unknown key(s) {', '.join(unknown)}")
    every = spec.get("every")
    cron = spec.get("cron")
    zone = str(spec.get("timezone") or spec.get("tz") or "UTC")
    try:
        schedule = Schedule(
            every_s=None if every is None else checkin_duration(every, "every"),
            cron=None if cron is None else str(cron).strip(),
            timezone=zone,
        )
        grace = checkin_duration(spec.get("grace", "5m"), "grace")
    except ValueError as exc:
        raise ValueError(f"check-in {name}: {exc}") from None
    return Monitor(name, schedule, grace, now)


def state_of(monitor: Monitor, runs: list[Run], now: float) -> CheckInState:
    """The monitor's state at ``now`` from its runs (oldest first)."""
    finished = [run for run in runs if run.ended is not None]
    last_end = finished[-1] if finished else None
    running = runs[-1] if runs and runs[-1].ended is None else None
    anchor = last_end.ended if last_end is not None and last_end.ended is not None else monitor.created
    expected = monitor.schedule.next_after(anchor)
    if running is not None and running.started is not None and now - running.started > monitor.grace_s:
        return CheckInState(
            RUNNING_TOO_LONG,
            expected,
            running.started + monitor.grace_s,
            running,
            f"started {_words(now - running.started)} ago and not ended (grace {_words(monitor.grace_s)})",
        )
    if last_end is not None and last_end.ok is False:
        what = last_end.error or (f"exit code {last_end.exit_code}" if last_end.exit_code is not None else "failed")
        return CheckInState(FAILED, expected, float(last_end.ended or now), last_end, f"last run failed: {what}")
    if running is not None and now <= expected + monitor.grace_s:
        return CheckInState(UP if last_end is not None else NEW, expected, running.started or now, running, "running")
    if now > expected + monitor.grace_s:
        return CheckInState(
            DOWN,
            expected,
            expected + monitor.grace_s,
            last_end,
            f"expected at {_iso(expected)}, nothing by the end of its grace ({_words(monitor.grace_s)})",
        )
    if now > expected:
        return CheckInState(LATE, expected, expected, last_end, f"expected at {_iso(expected)}, within grace")
    if last_end is None:
        return CheckInState(NEW, expected, monitor.created, None, "never pinged yet")
    return CheckInState(UP, expected, float(last_end.ended or now), last_end, "")


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_weekdays(field: str) -> str:
    """cron's day-of-week field (0 or 7 = Sunday, ranges, steps, names) as APScheduler's names."""
    if field == "*":
        return field
    days: list[str] = []
    for item in field.lower().split(","):
        part, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if not part.replace("-", "").replace("*", "").isdigit() and part != "*":
            if step_text:
                raise ValueError(f"a step on named days ({item}) is not supported")
            days.append(part)  # names (mon-fri) mean the same to both
            continue
        if part == "*":
            first, last = 0, 6
        elif "-" in part:
            low, high = part.split("-", 1)
            first, last = int(low), int(high)
        else:
            first = last = int(part)
            if step_text:
                last = 6
        if not 0 <= first <= 7 or not 0 <= last <= 7 or first > last:
            raise ValueError(f"day of week {item!r} is not 0-7")
        days.extend(_DAY_NAMES[number] for number in range(first, last + 1, step))
    return ",".join(dict.fromkeys(days))


_ONE_SECOND = datetime.fromtimestamp(1, timezone.utc) - datetime.fromtimestamp(0, timezone.utc)


def _words(seconds: float) -> str:
    """``1d``, ``1.5h``, ``90s``: the largest unit that reads well."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f}{unit}" if value == int(value) or value >= 10 else f"{value:.1f}{unit}"
    return f"{seconds:.3g}s"


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
