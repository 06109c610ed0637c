"""This process's requests in flight: what the slow-request sampler, ``/stats``, ``/health`` and reads look at.

The request path adds and removes itself through :attr:`RequestsInFlight.table` directly (one
dict store and one pop per request). A reader that must see the requests already answered but
not yet recorded waits on a condition, which the request path notifies only while a reader
waits (:attr:`RequestsInFlight.waiting`): the common request pays one attribute test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..wsgi.captured import CapturedException
    from ..wsgi.time_spent import TimeSpent

__all__ = ["InFlightRequest", "RequestsInFlight"]


class InFlightRequest(Protocol):
    """A request as readers see it while it runs."""

    started: float  # perf_counter at its start
    samples: list[tuple[tuple[str, int, str], ...]] | None
    spent: TimeSpent | None  # its queries and calls, if it made any

    @property
    def answered(self) -> bool:
        """Its status is set: the client may have all of it, the record comes at close()."""

    @property
    def description(self) -> str:
        """``METHOD /path``, bounded."""

    def abandon(self, exc: CapturedException) -> None:
        """Record it now as failed with ``exc``: its process is being killed."""


class RequestsInFlight:
    __slots__ = ("table", "waiting", "_changed", "__weakref__")

    def __init__(self) -> None:
        #: thread id -> the request it runs (a plain dict: the request path's store and pop are C's fastest)
        self.table: dict[int, InFlightRequest] = {}
        self.waiting = 0  # readers waiting for a request to leave
        self._changed = threading.Condition(threading.Lock())

    def requests(self) -> list[InFlightRequest]:
        return list(self.table.values())

    def summary(self, wall_clock: Callable[[], float] = time.time) -> tuple[int, float | None, str | None]:
        """(how many, when the oldest started on the wall clock, what it is): what the process row carries."""
        running = self.requests()
        if not running:
            return (0, None, None)
        oldest = min(running, key=lambda request: request.started)
        return (len(running), wall_clock() - (time.perf_counter() - oldest.started), oldest.description)

    def finished(self) -> None:
        """A request left the table while a reader waits: wake it."""
        with self._changed:
            self._changed.notify_all()

    def wait_recorded(self, budget: float) -> None:
        """Wait at most ``budget`` for requests that started before now and have answered to be recorded."""
        asked = time.perf_counter()
        deadline = asked + budget
        with self._changed:
            self.waiting += 1
            try:
                while True:
                    pending = [r for r in self.requests() if r.answered and r.started < asked]
                    left = deadline - time.perf_counter()
                    if not pending or left <= 0:
                        return
                    self._changed.wait(left)
            finally:
                self.waiting -= 1

    def clear(self) -> None:
        self.table.clear()
