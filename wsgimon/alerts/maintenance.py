"""Maintenance windows: ``alert_maintenance="sun 02:00-03:00, daily 04:00-04:15"`` mutes every alert.

Each window is a day (``mon`` … ``sun``, or ``daily``) and a time range in the zone of
``report_timezone`` (else the system's); a range that ends before it starts runs past midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, tzinfo

__all__ = ["Window", "in_maintenance", "parse_windows"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun|daily)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    day: int | None  # 0 = Monday; None: every day
    start: time
    end: time

    def covers(self, moment: datetime) -> bool:
        clock = moment.time()
        if self.start <= self.end:
            return (self.day is None or moment.weekday() == self.day) and self.start <= clock < self.end
        # Past midnight: the evening of the day, and the morning after it.
        if clock >= self.start:
            return self.day is None or moment.weekday() == self.day
        return clock < self.end and (self.day is None or moment.weekday() == (self.day + 1) % 7)


def parse_windows(text: str) -> list[Window]:
    """ValueError naming the part that is wrong."""
    windows = []
    for part in (piece.strip().lower() for piece in text.split(",")):
        if not part:
            continue
        match = _WINDOW.match(part)
        if match is None:
            raise ValueError(f"alert_maintenance: {part!r} is not like 'sun 02:00-03:00' or 'daily 04:00-04:15'")
        day, h1, m1, h2, m2 = match.groups()
        try:
            start, end = time(int(h1), int(m1)), time(int(h2), int(m2))
        except ValueError:
            raise ValueError(f"alert_maintenance: {part!r} has an impossible time") from None
        if start == end:
            raise ValueError(f"alert_maintenance: {part!r} is empty")
        windows.append(Window(None if day == "daily" else _DAYS.index(day), start, end))
    return windows


def in_maintenance(windows: list[Window], epoch: float, zone: tzinfo | None) -> bool:
    moment = datetime.fromtimestamp(epoch, zone)
    return any(window.covers(moment) for window in windows)
