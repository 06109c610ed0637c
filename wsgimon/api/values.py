"""How values look in every answer: ISO 8601 UTC times, rates, JSON with no NaN."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

__all__ = ["iso", "rate", "to_json"]


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a ``Z``; None for 'never'."""
    if not timestamp:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def to_json(body: dict[str, Any]) -> str:
    return json.dumps(body, allow_nan=False, separators=(",", ":"))
