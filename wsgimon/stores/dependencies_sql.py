"""Statements and outbound targets in SQL, for SQLite and PostgreSQL alike: their writes, reads and pruning.

A dependency's rows are shared by every process, per (resolution, start, dependency, endpoint,
method, release), minute and hour: a flush merges its uses into them inside the write
transaction, which the store serialises across the deployment, so each execution counts once
(the sketch of a row is read, merged and written back, as the release rows are).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..stats.dependencies import Dependency, Use
from ..stats.time_windows import HOUR, MINUTE
from .contract import DependencyStore
from .records import Batch, EndpointKey
from .schema import DEPENDENCY_USE_COLUMNS, names, placeholders
from .session import Session, SQLAccess

__all__ = ["MAX_DEPENDENCIES", "SQLDependencies", "prune_dependencies", "write_dependencies"]

#: statements and targets kept (the most recently seen); their rows go with them
MAX_DEPENDENCIES = 2000

_USE = names(DEPENDENCY_USE_COLUMNS)
_KEY = "resolution = ? AND start = ? AND id = ? AND endpoint = ? AND method = ? AND release = ?"
_UPSERT_USE = (
    f"INSERT INTO dependency_uses (resolution, start, id, endpoint, method, release, {_USE}) "
    f"VALUES ({placeholders(6 + len(DEPENDENCY_USE_COLUMNS))}) "
    "ON CONFLICT (resolution, start, id, endpoint, method, release) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name, _kind in DEPENDENCY_USE_COLUMNS)
)
_UPSERT_DEPENDENCY = (
    "INSERT INTO dependencies (id, kind, text, frame, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET "
    "last_seen = CASE WHEN excluded.last_seen > dependencies.last_seen "
    "THEN excluded.last_seen ELSE dependencies.last_seen END, "
    "frame = COALESCE(dependencies.frame, excluded.frame)"
)
_Row = tuple[int, int, str, str, str, str]


def write_dependencies(session: Session, batch: Batch, release: str | None) -> None:
    """Inside the store's write transaction: the batch's dependencies and their uses, minute and hour."""
    if not batch.catalog and not batch.dependencies:
        return
    session.executemany(
        _UPSERT_DEPENDENCY,
        [(d.id, d.kind, d.text, d.frame, d.first_seen, d.last_seen) for d in batch.catalog.values()],
    )
    rows: dict[_Row, Use] = {}
    for (dependency_id, endpoint, method, minute), use in batch.dependencies.items():
        start = minute * MINUTE
        for resolution, slot in ((MINUTE, start), (HOUR, start - start % HOUR)):
            key = (resolution, slot, dependency_id, endpoint, method, release or "")
            total = rows.get(key)
            if total is None:
                total = rows[key] = Use()
            total.merge(use)
    upserts = []
    for key, total in rows.items():
        stored = session.execute(f"SELECT {_USE} FROM dependency_uses WHERE {_KEY}", key).fetchone()
        if stored is not None:
            total.merge(Use.from_values(stored))
        upserts.append((*key, *total.to_values()))
    session.executemany(_UPSERT_USE, upserts)


def prune_dependencies(session: Session, now: float, minute_retention_s: float, retention_s: float) -> None:
    """Uses past their retention, dependencies not seen within it, and the least recently seen past the cap."""
    session.execute(
        "DELETE FROM dependency_uses WHERE resolution = ? AND start < ?", (MINUTE, int(now - minute_retention_s))
    )
    session.execute("DELETE FROM dependency_uses WHERE resolution = ? AND start < ?", (HOUR, int(now - retention_s)))
    session.execute("DELETE FROM dependencies WHERE last_seen < ?", (now - retention_s,))
    excess = session.execute("SELECT count(*) FROM dependencies").fetchone()[0] - MAX_DEPENDENCIES
    if excess > 0:
        session.execute(
            "DELETE FROM dependencies WHERE id IN (SELECT id FROM dependencies ORDER BY last_seen LIMIT ?)", (excess,)
        )
        session.execute("DELETE FROM dependency_uses WHERE id NOT IN (SELECT id FROM dependencies)")


class SQLDependencies(SQLAccess, DependencyStore):
    """The store's dependencies part; the store's ``write`` and ``maintain`` call the functions above."""

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
        sql = (
            f"SELECT u.id, u.endpoint, u.method, {', '.join('u.' + name for name, _k in DEPENDENCY_USE_COLUMNS)} "
            "FROM dependency_uses AS u JOIN dependencies AS d ON d.id = u.id "
            "WHERE u.resolution = ? AND u.start >= ? AND u.start < ? AND d.kind = ?"
        )
        params: list[Any] = [resolution, first, end, kind]
        if endpoint is not None:
            sql += " AND u.endpoint = ?"
            params.append(endpoint)
        if method is not None:
            sql += " AND u.method = ?"
            params.append(method)
        if release is not None:
            sql += " AND u.release = ?"
            params.append(release)
        return [(str(row[0]), (row[1], row[2]), Use.from_values(row[3:])) for row in self._query(sql, params)]

    def dependency_catalog(self, kind: str) -> dict[str, Dependency]:
        rows = self._query(
            "SELECT id, kind, text, frame, first_seen, last_seen FROM dependencies WHERE kind = ?", (kind,)
        )
        return {str(row[0]): Dependency(str(row[0]), *row[1:]) for row in rows}
