"""The weekly report's options: who gets it, when, in which zone; checked at start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo

from ..alerts.options import MailOptions

__all__ = ["ReportOptions", "parse_schedule", "report_zone"]

DEFAULT_SCHEDULE = "mon 09:00"
_SCHEDULE = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun|daily)\s+)?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def parse_schedule(text: str, period: str) -> tuple[str | None, int, int, int]:
    """(day of week or None for every day, hour, minute, second) of ``mon 09:00``, ``09:00`` or ``daily 07:30``."""
    if period == "day" and text == DEFAULT_SCHEDULE:
        text = "09:00"
    match = _SCHEDULE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"report_schedule must look like 'mon 09:00' or '07:30' (every day), got {text!r}")
    day, hour, minute, second = match.groups()
    return (None if day in (None, "daily") else day), int(hour), int(minute), int(second or 0)


def report_zone(name: str | None) -> tzinfo:
    """The IANA zone named (e.g. Europe/Paris), else the system's."""
    if name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"report_timezone must be an IANA zone such as Europe/Paris, got {name!r}") from None
    from tzlocal import get_localzone

    zone: tzinfo = get_localzone()
    return zone


@dataclass(frozen=True)
class ReportOptions(MailOptions):
    report_email_to: tuple[str, ...] = ()
    report_schedule: str = "mon 09:00"
    report_timezone: str | None = None
    report_period: str = "week"
    report_discord: bool = False

    @property
    def report_wanted(self) -> bool:
        """Recipients and a way to mail them: the report is scheduled."""
        return bool(self.report_email_to and self.smtp_host)

    def validate_report(self) -> None:
        if self.report_period not in ("week", "day"):
            raise ValueError(f"report_period must be week or day, got {self.report_period!r}")
        parse_schedule(self.report_schedule, self.report_period)
        if self.report_timezone:  # the system's zone is looked up only when a report is scheduled
            report_zone(self.report_timezone)
        self.validate_mail()
        self.check_mail_to("report_email_to", self.report_email_to)
