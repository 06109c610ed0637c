"""What one request spent waiting on others: its database queries and its outbound HTTP calls.

The hooks (:mod:`.integrations.sqlalchemy`, :mod:`.integrations.django_db`,
:mod:`.integrations.dbapi`, :mod:`.integrations.http_client`, :mod:`.integrations.httpx`) call
in on the request's own thread. They find the request by the thread's id in the in-flight
tables of the middlewares that capture, so a request that makes no query and no call pays
nothing, and a request's accumulator is made at its first query. Per query: a clock read on
each side, a dict lookup and a list append. Statements are kept raw here, bounded, and only
normalised (literals out) in the fold, off the request thread; the app frame that ran a
statement is looked up only for a slow one or one that repeats (a likely N+1).
"""

from __future__ import annotations

import sys
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from ..recording.fingerprint import is_in_app

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from ..recording.in_flight import InFlightRequest

__all__ = [
    "OTHER_STATEMENTS",
    "Call",
    "Frame",
    "TimeSpent",
    "for_calls",
    "for_queries",
    "track",
    "untrack",
]

#: (file, line, function) of the application's frame that ran a statement
Frame = tuple[str, int, str]
#: (method, scheme://host[:port], path without query, status or error type, seconds)
Call = tuple[str, str, str, "int | str", float]

#: distinct statements kept per request; more are counted under this name
OTHER_STATEMENTS = "<other statements>"
_MAX_STATEMENTS = 200
_MAX_TIMES_PER_STATEMENT = 1000
_MAX_CALLS = 200
_MAX_STACK = 60


class TimeSpent:
    """One request's queries and calls, as the hooks report them."""

    __slots__ = (
        "queries",
        "db_s",
        "calls",
        "http_s",
        "statements",
        "failed",
        "frames",
        "targets",
        "_slow_s",
        "_repeats",
        "_pending",
    )

    def __init__(self, slow_s: float, repeats: int) -> None:
        self.queries = 0
        self.db_s = 0.0
        self.calls = 0
        self.http_s = 0.0
        #: raw statement -> each execution's seconds (bounded)
        self.statements: dict[str, list[float]] = {}
        #: raw statement -> executions that failed
        self.failed: dict[str, int] | None = None
        #: raw statement -> the app frame that ran it (slow ones and repeated ones only)
        self.frames: dict[str, Frame] = {}
        self.targets: list[Call] = []
        self._slow_s = slow_s
        self._repeats = repeats
        self._pending: tuple[str, float] | None = None

    # -- queries ---------------------------------------------------------------------
    def query_started(self, statement: str, started: float) -> None:
        """For hooks told of a query's start and end apart (SQLAlchemy's events)."""
        self._pending = (statement, started)

    def query_ended(self, ended: float, failed: bool = False) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self.query(pending[0], ended - pending[1], failed)

    def query(self, statement: str, seconds: float, failed: bool = False) -> None:
        self.queries += 1
        self.db_s += seconds
        times = self.statements.get(statement)
        if times is None:
            if len(self.statements) >= _MAX_STATEMENTS:
                statement = OTHER_STATEMENTS
                times = self.statements.get(statement)
            if times is None:
                times = self.statements[statement] = []
        if len(times) < _MAX_TIMES_PER_STATEMENT:
            times.append(seconds)
        if failed:
            failures = self.failed
            if failures is None:
                failures = self.failed = {}
            failures[statement] = failures.get(statement, 0) + 1
        if (seconds >= self._slow_s or len(times) == self._repeats) and statement not in self.frames:
            frame = app_frame()
            if frame is not None:
                self.frames[statement] = frame

    # -- outbound calls ----------------------------------------------------------------
    def call(self, method: str, origin: str, path: str, outcome: int | str, seconds: float) -> None:
        self.calls += 1
        self.http_s += seconds
        if len(self.targets) < _MAX_CALLS:
            self.targets.append((method, origin, path, outcome, seconds))


class _Tracked:
    __slots__ = ("table", "queries", "calls", "slow_s", "repeats")

    def __init__(
        self, table: MutableMapping[int, InFlightRequest], queries: bool, calls: bool, slow_s: float, repeats: int
    ) -> None:
        self.table = table
        self.queries = queries
        self.calls = calls
        self.slow_s = slow_s
        self.repeats = repeats


#: the in-flight tables of the middlewares that capture (usually one)
_tracked: list[_Tracked] = []


def track(
    table: MutableMapping[int, InFlightRequest], *, queries: bool, calls: bool, slow_s: float, repeats: int
) -> None:
    """Let the hooks find the requests of ``table``."""
    if queries or calls:
        _tracked.append(_Tracked(table, queries, calls, slow_s, repeats))


def untrack(table: MutableMapping[int, InFlightRequest]) -> None:
    _tracked[:] = [tracked for tracked in _tracked if tracked.table is not table]


def for_queries() -> TimeSpent | None:
    """The running request's accumulator, if this thread runs one whose middleware captures queries."""
    if not _tracked:
        return None
    ident = threading.get_ident()  # at call time: gevent patches it after import
    for tracked in _tracked:
        if tracked.queries:
            exchange = tracked.table.get(ident)
            if exchange is not None:
                return _spent(exchange, tracked)
    return None


def for_calls() -> TimeSpent | None:
    """Like :func:`for_queries`, for outbound calls."""
    if not _tracked:
        return None
    ident = threading.get_ident()
    for tracked in _tracked:
        if tracked.calls:
            exchange = tracked.table.get(ident)
            if exchange is not None:
                return _spent(exchange, tracked)
    return None


def _spent(exchange: InFlightRequest, tracked: _Tracked) -> TimeSpent:
    spent = exchange.spent
    if spent is None:
        spent = exchange.spent = TimeSpent(tracked.slow_s, tracked.repeats)
    return spent


def app_frame() -> Frame | None:
    """The innermost frame of the application's own code on this thread's stack (not a library's)."""
    frame = sys._getframe(2)
    depth = 0
    while frame is not None and depth < _MAX_STACK:
        code = frame.f_code
        if _in_app(code.co_filename):
            return (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
        depth += 1
    return None


_in_app = lru_cache(maxsize=4096)(is_in_app)
