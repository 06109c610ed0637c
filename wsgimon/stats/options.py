"""When a release counts as a regression against the one before it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReleaseOptions"]


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
