"""A report's period: a whole week (from Monday) or a whole day, in the report's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

__all__ = ["Period", "period_before", "period_from"]


@dataclass(frozen=True)
class Period:
    """[start, end) in a time zone: a whole week (from Monday 00:00) or a whole day."""

    kind: str  # "week" or "day"
    start: datetime  # aware, in the report's zone
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.start.date().isoformat()}"

    def previous(self) -> Period:
        length = self.end - self.start
        return Period(self.kind, _at_midnight(self.start - length, self.start.tzinfo), self.start)

    def label(self) -> str:
        last = (self.end - timedelta(seconds=1)).date()
        if self.kind == "day":
            return f"{self.start:%a %d %b %Y}"
        return f"{self.start:%d %b} – {last:%d %b %Y}"

    def days(self) -> list[date]:
        day, out = self.start.date(), []
        while day < self.end.date():
            out.append(day)
            day += timedelta(days=1)
        return out


def _at_midnight(moment: datetime, zone: tzinfo | None) -> datetime:
    return datetime(moment.year, moment.month, moment.day, tzinfo=zone)


def period_before(moment: datetime, kind: str) -> Period:
    """The whole week (or day) that ended last before ``moment`` (aware), in ``moment``'s zone."""
    zone = moment.tzinfo
    today = _at_midnight(moment, zone)
    if kind == "day":
        return Period("day", _at_midnight(today - timedelta(days=1), zone), today)
    this_monday = _at_midnight(today - timedelta(days=today.weekday()), zone)
    return Period("week", _at_midnight(this_monday - timedelta(days=7), zone), this_monday)


def period_from(day: date, kind: str, zone: tzinfo) -> Period:
    """The week (from the Monday on or before ``day``) or the day starting at ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    if kind == "week":
        start = _at_midnight(start - timedelta(days=start.weekday()), zone)
        return Period("week", start, _at_midnight(start + timedelta(days=7, hours=2), zone))
    return Period("day", start, _at_midnight(start + timedelta(days=1, hours=2), zone))
