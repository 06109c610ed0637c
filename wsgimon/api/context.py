"""What every resource of the API reads from: the middleware's store, recorder and configuration."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..guard import internal_error_count
from ..health import HealthRegistry
from ..stores.base import Store, StoreUnavailable

if TYPE_CHECKING:
    from ..config import Config
    from ..middleware import MonitorMiddleware
    from ..recorder import Recorder

__all__ = ["Context", "READ_FLUSH_S", "HEALTH_FLUSH_S"]

READ_FLUSH_S = 0.25  # how long a read waits to write its own process's requests first
HEALTH_FLUSH_S = 0.02


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
        self.monitor.recorder.flush(timeout=timeout)

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
