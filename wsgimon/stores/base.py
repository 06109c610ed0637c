"""The store interface: processes write deltas, readers query the merged view.

A process folds its requests into a :class:`Batch` (per-minute aggregates per
endpoint, recent requests, error samples) and hands it to :meth:`Store.write`
once per flush. Every back end answers the same queries, so the JSON API never
knows which one it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import NamedTuple

from ..aggregate import Aggregate

__all__ = ["Batch", "EndpointKey", "ErrorSample", "RequestEntry", "Store"]

EndpointKey = tuple[str, str]  # (endpoint, method)


class RequestEntry(NamedTuple):
    """One line of the live request log; holds nothing secret (path already redacted)."""

    time: float
    method: str
    path: str
    endpoint: str
    status: int
    duration_ms: float
    ttfb_ms: float | None
    error_type: str | None
    response_bytes: int | None


@dataclass
class ErrorSample:
    """How often one error type occurred on one endpoint, with its latest message and traceback."""

    type: str
    endpoint: str
    method: str
    count: int
    first_seen: float
    last_seen: float
    message: str
    traceback: str | None

    def merge(self, other: ErrorSample) -> None:
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        if other.last_seen >= self.last_seen:
            self.last_seen = other.last_seen
            self.message = other.message
            self.traceback = other.traceback


@dataclass
class Batch:
    """What one process learned since its last flush."""

    minutes: dict[int, dict[EndpointKey, Aggregate]] = field(default_factory=dict)
    requests: list[RequestEntry] = field(default_factory=list)
    errors: dict[tuple[str, str, str], ErrorSample] = field(default_factory=dict)
    overflowed: int = 0

    def __bool__(self) -> bool:
        return bool(self.minutes or self.requests or self.errors or self.overflowed)


class Store(ABC):
    """Persists batches and answers merged queries."""

    @abstractmethod
    def write(self, batch: Batch) -> None:
        """Add one process's deltas; must be safe to call from any thread."""

    @abstractmethod
    def endpoint_totals(self, since: float | None = None) -> dict[EndpointKey, Aggregate]:
        """Aggregates per endpoint for requests at or after ``since`` (epoch s), or all."""

    @abstractmethod
    def recent_requests(self, limit: int) -> list[RequestEntry]:
        """The newest ``limit`` requests, newest first."""

    @abstractmethod
    def error_samples(self, since: float | None = None) -> list[ErrorSample]:
        """Error samples last seen at or after ``since``."""

    @abstractmethod
    def overflowed(self) -> int:
        """How many requests were counted under ``<other>`` because of the endpoint cap."""

    def health(self) -> tuple[bool, str]:
        """(healthy, detail) of the store itself."""
        return True, "ok"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
