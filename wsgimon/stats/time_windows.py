"""Time windows and steps: parsing ``5m``/``24h``/``all`` and covering a window with stored buckets.

Statistics are kept in minute, hour and day buckets plus an all-time total.
A window is answered from the coarsest buckets that fit it, so a 30-day query
reads about thirty day buckets per endpoint instead of 43,200 minutes. The
leading edge of windows shorter than a day is exact to the minute; longer
windows, and any window reaching past the retained minutes, start at the hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "TEN_MINUTES",
    "RESOLUTIONS",
    "TOTAL",
    "BucketRange",
    "Window",
    "parse_duration",
    "parse_window",
    "plan_ranges",
]

MINUTE = 60
TEN_MINUTES = 600
HOUR = 3600
DAY = 86400
TOTAL = 0  # the all-time bucket
RESOLUTIONS = (MINUTE, TEN_MINUTES, HOUR, DAY)

_UNITS = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY}
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
MAX_WINDOW_S = 366 * DAY


@dataclass(frozen=True)
class Window:
    """A window ending now: ``seconds`` long, or everything when ``seconds`` is None."""

    label: str
    seconds: int | None

    def since(self, now: float) -> float | None:
        return None if self.seconds is None else now - self.seconds


@dataclass(frozen=True)
class BucketRange:
    """Buckets of one resolution whose start lies in [first, end)."""

    resolution: int
    first: int
    end: int


def parse_duration(text: str, name: str) -> int:
    """``90s``, ``5m``, ``24h``, ``7d`` → seconds; ValueError with a message naming ``name``."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"{name} must look like 5m, 1h, 24h or 7d, got {text!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_WINDOW_S:
        raise ValueError(f"{name} must be at most 366d, got {text!r}")
    return seconds


def parse_window(text: str | None, default: str = "24h") -> Window:
    raw = default if text is None else text.strip().lower()
    if raw == "all":
        return Window("all", None)
    seconds = parse_duration(raw, "window")
    if seconds < MINUTE:
        raise ValueError(f"window must be at least 1m, got {raw!r}")
    return Window(raw, seconds)


def plan_ranges(since: float, now: float, minute_floor: float, hour_floor: float) -> list[BucketRange]:
    """Cover [since, now] with the coarsest aligned buckets available.

    ``minute_floor``/``hour_floor``: the oldest time for which minute (and
    ten-minute) / hour buckets are still kept. Buckets after the leading edge may be partial (the current
    day holds data up to now), which is exactly what the window wants.
    """
    end = int(now) + 1
    t = int(since // MINUTE) * MINUTE
    ranges: list[BucketRange] = []
    for resolution, coarser in ((MINUTE, TEN_MINUTES), (TEN_MINUTES, HOUR), (HOUR, DAY)):
        if t % coarser == 0:
            continue
        floor = hour_floor if resolution == HOUR else minute_floor
        if t < floor:
            t = t // coarser * coarser  # finer data pruned: start at the coarser boundary
            continue
        boundary = (t // coarser + 1) * coarser
        ranges.append(BucketRange(resolution, t, min(boundary, end)))
        t = boundary
        if t >= end:
            return ranges
    ranges.append(BucketRange(DAY, t, end))
    return ranges
