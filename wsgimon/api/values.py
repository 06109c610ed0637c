"""How values look in every answer: ISO 8601 UTC times, rates, JSON with no NaN."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..stores.records import RequestEntry

__all__ = ["iso", "rate", "request_json", "to_json"]


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


def request_json(entry: RequestEntry, *, brief: bool = False) -> dict[str, Any]:
    """One request as every answer shows it; ``brief``: what /slow lists beside the profile."""
    row: dict[str, Any] = {
        "time": iso(entry.time),
        "method": entry.method,
        "path": entry.path,
        "endpoint": entry.endpoint,
        "status": entry.status,
        "duration_ms": round(entry.duration_ms, 3),
        "db_queries": entry.db_queries,
        "db_ms": None if entry.db_ms is None else round(entry.db_ms, 3),
        "http_calls": entry.http_calls,
        "http_ms": None if entry.http_ms is None else round(entry.http_ms, 3),
    }
    if not brief:
        row["ttfb_ms"] = None if entry.ttfb_ms is None else round(entry.ttfb_ms, 3)
        row["error_type"] = entry.error_type
        row["response_bytes"] = entry.response_bytes
        row["sampled"] = entry.sampled
    return row
