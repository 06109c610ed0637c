"""The fold's part for queries and outbound calls: raw statements and URLs in, dependencies out.

Statements are normalised here, off the request thread, before anything is kept: the raw text
(which may hold literals) never leaves the process's memory. A statement that ran
``n_plus_one_repeats`` times in one request (counted after normalisation, so literals inlined
by the app still add up) is counted as an N+1 in that request. Outbound paths become templates
as endpoints do (``/items/42`` → ``/items/<int>``).
"""

from __future__ import annotations

from ..stats.dependencies import DB, HTTP, Dependency, DependencyKey, Use
from ..stats.spent import SpentByRequest
from ..stores.records import Batch
from ..wsgi.time_spent import OTHER_STATEMENTS, Frame, TimeSpent
from .fingerprint import module_name
from .naming import normalise_path
from .sql_text import normalise_statement, statement_id

__all__ = ["DependencyFolder", "spent_by_request", "target_path"]

#: statements listed with a slow request, the most time first
_QUERIES_PER_SLOW_REQUEST = 10


def target_path(url: str) -> str:
    """The path alone of a call's request target: a proxy's absolute URL loses its origin, every URL
    its query and fragment (cut here, off the request thread)."""
    if "://" in url:
        rest = url.split("://", 1)[1]
        slash = rest.find("/")
        url = rest[slash:] if slash >= 0 else "/"
    return url.split("?", 1)[0].split("#", 1)[0] or "/"


def spent_by_request(spent: TimeSpent) -> SpentByRequest:
    return (spent.queries, spent.db_s * 1000.0, spent.calls, spent.http_s * 1000.0)


class DependencyFolder:
    """Adds each request's queries and calls to the batch, per endpoint and minute."""

    def __init__(self, repeats: int) -> None:
        self._repeats = repeats

    def add(self, batch: Batch, endpoint: str, method: str, minute: int, wall: float, spent: TimeSpent) -> None:
        uses = batch.dependencies
        for dependency_id, (times, failed, frame) in self._statements(batch, spent, wall).items():
            key: DependencyKey = (dependency_id, endpoint, method, minute)
            use = uses.get(key)
            if use is None:
                use = uses[key] = Use()
            use.add(times, failed, len(times) >= self._repeats, wall)
            known = batch.catalog[dependency_id]
            known.last_seen = max(known.last_seen, wall)
            if frame is not None and known.frame is None:
                known.frame = frame
        for call_method, origin, path, outcome, seconds in spent.targets:
            text = f"{call_method} {origin}{normalise_path(target_path(path))}"
            dependency_id = statement_id(f"{HTTP} {text}")
            known_target = batch.catalog.get(dependency_id)
            if known_target is None:
                batch.catalog[dependency_id] = Dependency(dependency_id, HTTP, text, None, wall, wall)
            else:
                known_target.last_seen = max(known_target.last_seen, wall)
            key = (dependency_id, endpoint, method, minute)
            use = uses.get(key)
            if use is None:
                use = uses[key] = Use()
            failed = isinstance(outcome, str) or outcome >= 500
            use.add([seconds * 1000.0], int(failed), False, wall)

    def queries_of(self, batch: Batch, spent: TimeSpent, wall: float) -> list[dict[str, object]]:
        """A slow request's statements, normalised, the most time first."""
        listed = []
        for dependency_id, (times, failed, _frame) in self._statements(batch, spent, wall).items():
            listed.append(
                {
                    "statement": batch.catalog[dependency_id].text,
                    "count": len(times),
                    "total_ms": round(sum(times), 3),
                    "failed": failed,
                }
            )
        listed.sort(key=lambda item: -float(str(item["total_ms"])))
        return listed[:_QUERIES_PER_SLOW_REQUEST]

    def _statements(
        self, batch: Batch, spent: TimeSpent, wall: float
    ) -> dict[str, tuple[list[float], int, str | None]]:
        """Per normalised statement: its executions' ms, failures, and the app frame that ran it."""
        found: dict[str, tuple[list[float], int, str | None]] = {}
        failures = spent.failed or {}
        for raw, times in spent.statements.items():
            text = OTHER_STATEMENTS if raw == OTHER_STATEMENTS else normalise_statement(raw)
            dependency_id = statement_id(f"{DB} {text}")
            if dependency_id not in batch.catalog:
                batch.catalog[dependency_id] = Dependency(dependency_id, DB, text, None, wall, wall)
            frame = spent.frames.get(raw)
            same = found.get(dependency_id)
            ms = [t * 1000.0 for t in times]
            if same is None:
                found[dependency_id] = (ms, failures.get(raw, 0), _where(frame))
            else:
                same[0].extend(ms)
                found[dependency_id] = (same[0], same[1] + failures.get(raw, 0), same[2] or _where(frame))
        return found


def _where(frame: Frame | None) -> str | None:
    if frame is None:
        return None
    file, line, function = frame
    return f"{module_name(file)} in {function}, line {line}"
