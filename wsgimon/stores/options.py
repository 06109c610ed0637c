"""Where statistics live and for how long; checked at start."""

from __future__ import annotations

from dataclasses import dataclass

from ..secret_text import without_passwords

__all__ = ["StoreOptions"]


@dataclass(frozen=True)
class StoreOptions:
    storage: str = "sqlite:///wsgimon.sqlite3"
    recent_requests: int = 1000
    minute_retention_h: float = 48.0
    retention_days: float = 90.0
    max_releases: int = 20

    def validate_store(self) -> None:
        if "://" not in self.storage:
            raise ValueError(f"storage must be a URL such as 'memory://', got {without_passwords(self.storage)!r}")
        positive_int("recent_requests", self.recent_requests, maximum=1_000_000)
        positive_int("max_releases", self.max_releases, maximum=1000)
        positive_float("minute_retention_h", self.minute_retention_h)
        positive_float("retention_days", self.retention_days)
        if self.minute_retention_h > self.retention_days * 24:
            raise ValueError("minute_retention_h must not exceed retention_days")


def positive_int(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValueError(f"{name} must be an integer between 1 and {maximum}, got {value!r}")


def positive_float(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
