"""What requests waited on: each normalised SQL statement and each outbound HTTP target, and how it did.

A :class:`Use` is a sum like an aggregate: executions, failures, time (total, max, and a sketch
per execution for the p95), and in how many requests the statement repeated
``n_plus_one_repeats`` times or more, the sign of an N+1. The store keeps uses per
(dependency, endpoint, method, release) and minute or hour; :func:`dependencies_in` adds them
up over a window into the rows ``/monitoring/queries`` and ``/monitoring/outbound`` answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .sketch import QuantileSketch
from .time_windows import DAY, HOUR, MINUTE

if TYPE_CHECKING:
    from ..stores.contract import DependencyStore

__all__ = [
    "DB",
    "HTTP",
    "Dependency",
    "DependencyKey",
    "DependencyRow",
    "Use",
    "dependencies_in",
]

DB = "db"
HTTP = "http"
#: (dependency id, endpoint, method, epoch minute)
DependencyKey = tuple[str, str, str, int]
#: endpoints listed per dependency; more are counted
_ENDPOINTS_LISTED = 10


class Use:
    """Executions of one dependency: how many, how many failed, how long, and N+1 requests."""

    __slots__ = ("count", "errors", "total_ms", "max_ms", "sketch", "repeated", "last_seen")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.sketch = QuantileSketch()
        self.repeated = 0  # requests in which it ran n_plus_one_repeats times or more
        self.last_seen = 0.0

    def add(self, times_ms: list[float], errors: int, repeated: bool, wall: float) -> None:
        if times_ms:
            self.count += len(times_ms)
            self.total_ms += sum(times_ms)
            self.max_ms = max(self.max_ms, max(times_ms))
            self.sketch.add_many(times_ms)
        self.errors += errors
        self.repeated += repeated
        self.last_seen = max(self.last_seen, wall)

    def merge(self, other: Use) -> None:
        self.count += other.count
        self.errors += other.errors
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sketch.merge(other.sketch)
        self.repeated += other.repeated
        self.last_seen = max(self.last_seen, other.last_seen)

    def to_values(self) -> tuple[int, int, float, float, bytes, int, float]:
        """As the SQL stores keep it (``count, errors, total_ms, max_ms, sketch, repeated, last_seen``)."""
        return (
            self.count,
            self.errors,
            self.total_ms,
            self.max_ms,
            self.sketch.to_bytes(),
            self.repeated,
            self.last_seen,
        )

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> Use:
        count, errors, total_ms, max_ms, sketch, repeated, last_seen = values
        use = cls.__new__(cls)
        use.count, use.errors, use.total_ms, use.max_ms = int(count), int(errors), float(total_ms), float(max_ms)
        use.sketch = QuantileSketch.from_bytes(bytes(sketch))
        use.repeated, use.last_seen = int(repeated), float(last_seen)
        return use


@dataclass
class Dependency:
    """What a dependency is: a statement (literals out) or ``METHOD origin/path/<int>``, and where the
    app ran it from (``module in function, line N``), when known."""

    id: str
    kind: str  # DB or HTTP
    text: str
    frame: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0


@dataclass
class DependencyRow:
    """One dependency over a window, every endpoint (or the one asked for) added up."""

    dependency: Dependency
    use: Use = field(default_factory=Use)
    #: (endpoint, method) -> executions
    endpoints: dict[tuple[str, str], int] = field(default_factory=dict)

    def to_json(self, requests_by_endpoint: dict[tuple[str, str], int] | None = None) -> dict[str, Any]:
        use = self.use
        p95 = use.sketch.quantile(0.95)
        ranked = sorted(self.endpoints.items(), key=lambda item: (-item[1], item[0]))
        found: dict[str, Any] = {
            "id": self.dependency.id,
            "count": use.count,
            "errors": use.errors,
            "total_ms": round(use.total_ms, 3),
            "avg_ms": round(use.total_ms / use.count, 3) if use.count else None,
            "p95_ms": None if p95 is None else round(min(p95, use.max_ms), 3),
            "max_ms": round(use.max_ms, 3),
            "endpoints": [{"endpoint": e, "method": m, "count": n} for (e, m), n in ranked[:_ENDPOINTS_LISTED]],
            "more_endpoints": max(0, len(ranked) - _ENDPOINTS_LISTED),
            "first_seen": self.dependency.first_seen,
            "last_seen": use.last_seen or self.dependency.last_seen,
        }
        if self.dependency.kind == DB:
            found["statement"] = self.dependency.text
            found["frame"] = self.dependency.frame
            found["n_plus_one"] = use.repeated
        else:
            method, _, target = self.dependency.text.partition(" ")
            found["method"] = method
            found["target"] = target
        return found


def dependencies_in(
    store: DependencyStore,
    kind: str,
    since: float | None,
    now: float,
    *,
    endpoint: str | None = None,
    method: str | None = None,
    release: str | None = None,
    resolution: int | None = None,
) -> list[DependencyRow]:
    """The dependencies of ``kind`` used in the window (None: as far back as kept), most time first.

    Minute rows while they are kept and the window is under a day, hour rows beyond (a window
    then starts at its hour), as the statistics do; ``resolution=HOUR`` asks for hour rows
    whatever the window (a report of a past period, whose minutes may be pruned).
    """
    if since is None:
        since = now - store.hour_retention_s
    if resolution is None:
        short = now - since < DAY and since >= now - store.minute_retention_s
        resolution = MINUTE if short else HOUR
    first = int(since // resolution * resolution)
    rows: dict[str, DependencyRow] = {}
    catalog: dict[str, Dependency] | None = None
    for dependency_id, key, use in store.dependency_uses(
        kind, resolution, first, int(now) + 1, endpoint, method, release
    ):
        row = rows.get(dependency_id)
        if row is None:
            if catalog is None:
                catalog = store.dependency_catalog(kind)
            known = catalog.get(dependency_id)
            if known is None:
                continue  # dropped from the catalog (bounded): its counts go with it
            row = rows[dependency_id] = DependencyRow(known)
        row.use.merge(use)
        row.endpoints[key] = row.endpoints.get(key, 0) + use.count
    return sorted(rows.values(), key=lambda row: (-row.use.total_ms, row.dependency.id))
