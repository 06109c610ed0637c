"""What one request spent waiting on others: its database queries and its outbound HTTP calls.

The hooks (:mod:`.integrations.sqlalchemy`, :mod:`.integrations.django_db`,
:mod:`.integrations.dbapi`, :mod:`.integrations.http_client`, :mod:`.integrations.httpx`) call
in on the request's own thread. They find the request by the thread's id in the in-flight
tables of the middlewares that capture, so a request that makes no query and no call pays
nothing, and a request's accumulator is made at its first query. Per query: a clock read on
each side, a dict lookup and a list append. Statements are kept raw here, bounded, and only
normalised (literals out) in the fold, off the request thread; the app frame that ran a
statement is looked up only for a slow one, one that repeats (a likely N+1), or a new text once
the request ran ``n_plus_one_repeats`` distinct ones (literals inlined make each execution of one
query a text of its own; bounded per request).
"""

from __future__ import annotations

import sys
import threading
import weakref
from functools import lru_cache
from types import CodeType
from typing import TYPE_CHECKING

from ..recording.fingerprint import is_in_app

if TYPE_CHECKING:
    from ..recording.in_flight import InFlightRequest, RequestsInFlight

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
#: (method, scheme://host[:port], the request target as sent (the fold cuts it to its path),
#: status or error type, seconds)
Call = tuple[str, str, str, "int | str", float]

#: distinct statements kept per request; more are counted under this name
OTHER_STATEMENTS = "<other statements>"
_MAX_STATEMENTS = 200
_MAX_TIMES_PER_STATEMENT = 1000
_MAX_CALLS = 200
_MAX_STACK = 60
#: frames looked up per request for statements that may differ only in their literals
_MAX_FRAMES = 50


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

    # -- queries ---------------------------------------------------------------------
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
        executions = len(times)
        if executions < _MAX_TIMES_PER_STATEMENT:
            times.append(seconds)
            executions += 1
        if failed:
            failures = self.failed
            if failures is None:
                failures = self.failed = {}
            failures[statement] = failures.get(statement, 0) + 1
        # The numbers first: the common query is neither slow nor a repeat, and skips the dict.
        if (
            seconds >= self._slow_s
            or executions == self._repeats
            # A new text once the request ran ``repeats`` distinct ones: literals written into the
            # statement make each execution of one query a text of its own (bounded walks).
            or (executions == 1 and len(self.statements) >= self._repeats and len(self.frames) < _MAX_FRAMES)
        ) and statement not in self.frames:
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
    __slots__ = ("in_flight", "queries", "calls", "slow_s", "repeats")

    def __init__(self, in_flight: RequestsInFlight, queries: bool, calls: bool, slow_s: float, repeats: int) -> None:
        # Weakly: an app whose responses were never closed holds its middleware through this
        # table, and must still be collectable once the app is dropped.
        self.in_flight = weakref.ref(in_flight, _forget_collected)
        self.queries = queries
        self.calls = calls
        self.slow_s = slow_s
        self.repeats = repeats


#: the in-flight tables of the middlewares that capture (usually one)
_tracked: list[_Tracked] = []


def track(in_flight: RequestsInFlight, *, queries: bool, calls: bool, slow_s: float, repeats: int) -> None:
    """Let the hooks find the requests of ``in_flight``."""
    if queries or calls:
        _tracked.append(_Tracked(in_flight, queries, calls, slow_s, repeats))


def untrack(in_flight: RequestsInFlight | None = None) -> None:
    """Forget ``in_flight`` (and any table already collected)."""
    _tracked[:] = [
        tracked for tracked in _tracked if (found := tracked.in_flight()) is not None and found is not in_flight
    ]


def _forget_collected(_gone: object) -> None:
    untrack()


def for_queries() -> TimeSpent | None:
    """The running request's accumulator, if this thread runs one whose middleware captures queries."""
    if not _tracked:
        return None
    ident = threading.get_ident()  # at call time: gevent patches it after import
    for tracked in _tracked:
        if tracked.queries and (in_flight := tracked.in_flight()) is not None:
            exchange = in_flight.table.get(ident)
            if exchange is not None:
                spent = exchange.spent  # _spent(), inlined: this runs for every query
                if spent is None:
                    spent = exchange.spent = TimeSpent(tracked.slow_s, tracked.repeats)
                return spent
    return None


def for_calls() -> TimeSpent | None:
    """Like :func:`for_queries`, for outbound calls."""
    if not _tracked:
        return None
    ident = threading.get_ident()
    for tracked in _tracked:
        if tracked.calls and (in_flight := tracked.in_flight()) is not None:
            exchange = in_flight.table.get(ident)
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
            return (code.co_filename, frame.f_lineno, _function(code))
        frame = frame.f_back  # type: ignore[assignment]
        depth += 1
    return None


def _function(code: CodeType) -> str:
    """The function's name; a generator expression, comprehension or lambda with the function it is in."""
    name = code.co_name
    if not name.startswith("<"):
        return name
    qualname: str = getattr(code, "co_qualname", name)  # Python 3.11+
    return ".".join(qualname.replace(".<locals>", "").split(".")[-2:])


_in_app = lru_cache(maxsize=4096)(is_in_app)
