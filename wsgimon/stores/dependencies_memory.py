"""Statements and outbound targets in one process's memory: the memory store's dependencies part."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..stats.dependencies import Dependency, Use
from ..stats.time_windows import HOUR, MINUTE
from .contract import DependencyStore
from .dependencies_sql import MAX_DEPENDENCIES
from .records import Batch, EndpointKey

__all__ = ["MemoryDependencies"]

# (resolution, start, id, endpoint, method, release)
_Key = tuple[int, int, str, str, str, str]


class MemoryDependencies(DependencyStore):
    """Kept like the SQL stores' rows: per minute and hour, bounded, pruned with the buckets."""

    def __init__(self) -> None:
        self._dependency_lock = threading.Lock()
        self._catalog: dict[str, Dependency] = {}
        self._uses: dict[_Key, Use] = {}

    def _write_dependencies(self, batch: Batch, release: str | None) -> None:
        with self._dependency_lock:
            for dependency in batch.catalog.values():
                known = self._catalog.get(dependency.id)
                if known is None:
                    self._catalog[dependency.id] = Dependency(**vars(dependency))
                else:
                    known.last_seen = max(known.last_seen, dependency.last_seen)
                    known.frame = known.frame or dependency.frame
            for (dependency_id, endpoint, method, minute), use in batch.dependencies.items():
                start = minute * MINUTE
                for resolution, slot in ((MINUTE, start), (HOUR, start - start % HOUR)):
                    key = (resolution, slot, dependency_id, endpoint, method, release or "")
                    total = self._uses.get(key)
                    if total is None:
                        total = self._uses[key] = Use()
                    total.merge(use)

    def _prune_dependencies(self, now: float) -> None:
        with self._dependency_lock:
            horizon = {MINUTE: now - self.minute_retention_s, HOUR: now - self.hour_retention_s}
            for key in [k for k in self._uses if k[1] < horizon[k[0]]]:
                del self._uses[key]
            if len(self._catalog) > MAX_DEPENDENCIES:
                kept = sorted(self._catalog.values(), key=lambda d: -d.last_seen)[:MAX_DEPENDENCIES]
                self._catalog = {d.id: d for d in kept}
                self._uses = {k: u for k, u in self._uses.items() if k[2] in self._catalog}

    def dependency_uses(
        self,
        kind: str,
        resolution: int,
        first: int,
        end: int,
        endpoint: str | None,
        method: str | None,
        release: str | None,
    ) -> Iterable[tuple[str, EndpointKey, Use]]:
        method_wanted = method
        with self._dependency_lock:
            found = []
            for (row_resolution, start, dependency_id, name, method, row_release), use in self._uses.items():
                if row_resolution != resolution or not first <= start < end:
                    continue
                known = self._catalog.get(dependency_id)
                if known is None or known.kind != kind:
                    continue
                if (endpoint is not None and name != endpoint) or (
                    method_wanted is not None and method != method_wanted
                ):
                    continue
                if release is not None and row_release != release:
                    continue
                copy = Use()
                copy.merge(use)
                found.append((dependency_id, (name, method), copy))
            return found

    def dependency_catalog(self, kind: str) -> dict[str, Dependency]:
        with self._dependency_lock:
            return {d.id: Dependency(**vars(d)) for d in self._catalog.values() if d.kind == kind}
