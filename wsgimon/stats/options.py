"""When a release counts as a regression against the one before it; the check-ins a deployment declares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .checkins import Monitor, parse_monitor

__all__ = ["CheckinOptions", "ReleaseOptions", "read_checkins"]


@dataclass(frozen=True)
class ReleaseOptions:
    regression_min_requests: int = 200
    regression_p95_ratio: float = 1.25
    regression_p95_margin_ms: float = 10.0

    def validate_releases(self) -> None:
        if isinstance(self.regression_min_requests, bool) or not 0 < self.regression_min_requests <= 10**9:
            raise ValueError("regression_min_requests must be an integer between 1 and 1000000000")
        if not self.regression_p95_ratio >= 1.0:
            raise ValueError("regression_p95_ratio must be 1 or more")
        if not self.regression_p95_margin_ms >= 0.0:
            raise ValueError("regression_p95_margin_ms must be 0 or more")


@dataclass(frozen=True)
class CheckinOptions:
    #: the jobs beside the app to watch, declared here (config wins over pings that carry a schedule)
    checkins: tuple[Monitor, ...] = ()

    def validate_checkins(self) -> None:
        names = [monitor.name for monitor in self.checkins]
        if len(names) != len(set(names)):
            raise ValueError("checkins: a name is declared twice")


def read_checkins(value: Any) -> tuple[Monitor, ...]:
    """``{"nightly-backup": {"every": "1d", "grace": "1h"}}``, as a mapping or as JSON (``WSGIMON_CHECKINS``)."""
    if isinstance(value, tuple) and all(isinstance(item, Monitor) for item in value):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError('checkins must be JSON like {"nightly-backup": {"every": "1d", "grace": "1h"}}') from None
    if not isinstance(value, dict):
        raise ValueError('checkins must be a mapping like {"nightly-backup": {"every": "1d", "grace": "1h"}}')
    if len(value) > 1000:
        raise ValueError("checkins: at most 1000 monitors")
    return tuple(parse_monitor(name, spec, 0.0) for name, spec in value.items())
