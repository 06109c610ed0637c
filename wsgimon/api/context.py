"""What every resource of the API reads from: a narrow view of one middleware, never the middleware itself.

The store, this process's recorder, the configuration, the requests in flight, the release it
runs, and (set once they exist) its alert engine and report schedule.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..internal_errors import internal_error_count
from ..stores.contract import Store, StoreUnavailable
from .checks import HealthRegistry

if TYPE_CHECKING:
    from ..alerts.engine import AlertEngine
    from ..config import Config
    from ..recording.in_flight import RequestsInFlight
    from ..recording.recorder import Recorder
    from ..reporting.schedule import ReportScheduler

__all__ = ["Context", "READ_FLUSH_S", "HEALTH_FLUSH_S"]

READ_FLUSH_S = 0.25  # how long a read waits to write its own process's requests first
HEALTH_FLUSH_S = 0.02
_SETTLE_S = 0.02  # at most this long for requests already answered to be recorded


class Context:
    """One per middleware; resources get it with the parsed query and return plain dicts."""

    def __init__(
        self,
        config: Config,
        store: Store,
        recorder: Recorder,
        in_flight: RequestsInFlight,
        release: str | None,
    ) -> None:
        self.config = config
        self.store = store
        self.recorder = recorder
        self.in_flight = in_flight
        self.release = release
        self.alerts: AlertEngine | None = None
        self.report: ReportScheduler | None = None
        self.health = HealthRegistry(config.health_check_timeout)
        self.internal_errors_before = internal_error_count()
        #: queries or outbound calls are timed (what a request that made none spent is then known: nothing)
        self.capturing = config.enabled and (config.capture_db or config.capture_http)

    def flush_own(self, timeout: float = READ_FLUSH_S) -> None:
        """This process's own requests into the answer, without waiting long for a locked store.

        A request is recorded when the server closes its body, which comes a moment after its
        client has read the last byte: a client that asks for statistics right after its own
        request would otherwise not always see it. So the read waits (a moment at most) for
        requests that started before it and have answered.
        """
        if self.in_flight.table:
            self.in_flight.wait_recorded(min(_SETTLE_S, timeout / 4))
        self.recorder.flush(timeout=timeout)

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
