"""What every resource of the API reads from: the middleware's store, recorder and configuration."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..internal_errors import internal_error_count
from ..stores.base import Store, StoreUnavailable
from .checks import HealthRegistry

if TYPE_CHECKING:
    from ..config import Config
    from ..recording.recorder import Recorder
    from ..wsgi.middleware import MonitorMiddleware

__all__ = ["Context", "READ_FLUSH_S", "HEALTH_FLUSH_S"]

READ_FLUSH_S = 0.25  # how long a read waits to write its own process's requests first
HEALTH_FLUSH_S = 0.02
_SETTLE_S = 0.02  # at most this long for requests already answered to be recorded


class Context:
    """One per middleware; resources get it with the parsed query and return plain dicts."""

    def __init__(self, monitor: MonitorMiddleware) -> None:
        self.monitor = monitor
        self.health = HealthRegistry(monitor.config.health_check_timeout)
        self.internal_errors_before = internal_error_count()

    @property
    def config(self) -> Config:
        return self.monitor.config

    @property
    def store(self) -> Store:
        return self.monitor.store

    @property
    def recorder(self) -> Recorder:
        return self.monitor.recorder

    def flush_own(self, timeout: float = READ_FLUSH_S) -> None:
        """This process's own requests into the answer, without waiting long for a locked store."""
        self._settle(min(_SETTLE_S, timeout / 4))
        self.monitor.recorder.flush(timeout=timeout)

    def _settle(self, budget: float) -> None:
        """Wait a moment for requests that have already answered but are not recorded yet.

        A request is recorded when the server closes its body, which comes a moment after
        its client has read the last byte: a client that asks for statistics right after
        its own request would otherwise not always see it. Only requests that started
        before this read and whose status is set are waited for, at most ``budget``.
        """
        table = self.monitor._in_flight
        if not table:
            return
        asked = time.perf_counter()
        deadline = asked + budget
        while True:
            answered = [r for r in list(table.values()) if r._status is not None and r.started < asked]
            if not answered or time.perf_counter() >= deadline:
                return
            time.sleep(0.0005)

    def deployment_started(self) -> float:
        """When the deployment started: the store's answer, or this process's start when it has none."""
        own = self.recorder.started_at
        try:
            started = self.store.deployment_started()
        except StoreUnavailable:
            started = None
        return min(started, own) if started else own

    @staticmethod
    def now() -> float:
        return time.time()
