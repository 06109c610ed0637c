"""One middleware's alerting: rules over the store, incidents decided in the store, delivered by lanes.

Every ``alert_interval_s`` each process reads the same flushed data (windows end at the same
aligned time in every process) and turns it into verdicts; the store applies them to the
deployment's alerting state in one transaction (see :mod:`.incidents`), so each incident's
messages are decided, and sent, by exactly one process. Deliveries and their outcomes are kept
in the store's alert log, which ``/monitoring/alerts`` reads.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..internal_errors import report_internal_error
from ..stores.contract import StoreUnavailable
from ..stores.records import AlertRow
from .channels import configured_channels, make_channels
from .dispatcher import ChannelState, Delivery, dispatcher
from .incidents import Notice, Settings, decide
from .maintenance import in_maintenance, parse_windows
from .messages import render
from .model import Alert
from .rules import query_events, release_events, verdicts

if TYPE_CHECKING:
    from ..api.checks import HealthRegistry
    from ..config import Config
    from ..stores.contract import Store

__all__ = ["AlertEngine"]

_EVALUATION_BUDGET_S = 2.0  # store reads of one evaluation wait at most this long
_ONCE_S = 10 * 365 * 86400.0  # a release event is claimed for good


class AlertEngine:
    def __init__(self, config: Config, store: Store, health: HealthRegistry) -> None:
        self.config = config
        self.store = store
        self.health = health
        self.channel_names = configured_channels(config)
        self.enabled = bool(self.channel_names)
        self._channels: list[ChannelState] | None = None
        self._pid = -1
        self._lock = threading.Lock()
        self._next_evaluation = 0.0
        self.dashboard_url = None
        if config.public_url:
            self.dashboard_url = config.public_url.rstrip("/") + config.prefix + "/"
        self.settings = Settings(
            for_s=config.alert_for_s,
            latency_for_s=max(config.alert_for_s, config.alert_interval_s),
            resolve_after_s=config.alert_resolve_after_s,
            group_wait_s=config.alert_group_wait_s,
            group_interval_s=config.alert_group_interval_s,
            repeat_interval_s=config.alert_repeat_interval_s,
            group_by=config.alert_group_by,
        )
        self._maintenance = parse_windows(config.alert_maintenance or "")
        #: the time evaluations use (a seam: tests move it forward instead of waiting)
        self.clock: Callable[[], float] = time.time
        #: the instant of the last evaluation this process finished, its messages handed to the lanes
        self.evaluated_at = 0.0

    # -- channels, made in the serving process ----------------------------------------
    def channels(self) -> list[ChannelState]:
        with self._lock:
            if self._channels is None or self._pid != os.getpid():
                # Channels hold network clients: never one made before a fork.
                self._channels = [ChannelState(channel) for channel in make_channels(self.config)]
                self._pid = os.getpid()
                dispatcher().register(self)
            return self._channels

    def start(self) -> None:
        """In the serving process, on its first request: channels made, evaluation scheduled."""
        self.channels()

    def close(self) -> None:
        dispatcher().unregister(self)
        with self._lock:
            channels, self._channels = self._channels, None
        if channels is not None and self._pid == os.getpid():
            for state in channels:
                state.closed = True
                try:
                    state.channel.close()
                except Exception as exc:
                    report_internal_error("alert channel close", exc)

    # -- evaluation ----------------------------------------------------------------
    def in_maintenance(self, now: float) -> bool:
        if not self._maintenance:
            return False
        from ..reporting.options import report_zone

        return in_maintenance(self._maintenance, now, report_zone(self.config.report_timezone))

    def evaluate(self, *, now_please: bool = False) -> None:
        """Run by the dispatcher's thread every ``alert_interval_s`` (``now_please``: at once, in the
        caller's thread): every rule, applied to the deployment's incidents."""
        now = self.clock()
        if not self.enabled or (now < self._next_evaluation and not now_please):
            return
        interval = self.config.alert_interval_s
        self._next_evaluation = now + interval
        # The same instant for every process evaluating in this interval: the same windows.
        at = math.floor(now / interval) * interval if interval > 0 else now
        with self.store.time_limit(_EVALUATION_BUDGET_S):
            try:
                checks = self.health.run_all() if "health" in self.config.alert_rules else {}
                found = verdicts(self.config, self.store, checks, at)
                for event in release_events(self.config, self.store) + query_events(self.config, self.store, at):
                    # An event of one release: claimed for good, so one process brings it, once.
                    if self.store.claim_occurrence(event.key, now, _ONCE_S, 1)[0]:
                        found.append(event)
                quiet = self.in_maintenance(now)
                notices = self.store.alerting(lambda state: decide(state, found, at, self.settings, quiet), at)
            except StoreUnavailable:
                return
        for notice in notices:
            self.tell(notice, now)
        self.evaluated_at = at

    def tell(self, notice: Notice, now: float) -> int:
        return self.send(render(notice, self.dashboard_url, now))

    # -- delivery ------------------------------------------------------------------
    def send(self, alert: Alert, channels: list[ChannelState] | None = None) -> int:
        """Record the alert and queue it for every channel; returns its id in the alert log (0 if none)."""
        targets = self.channels() if channels is None else channels
        row = AlertRow(
            key=alert.key,
            rule=alert.rule,
            severity=alert.severity,
            state=alert.state,
            title=alert.title,
            summary=alert.summary,
            opened_at=alert.opened_at,
            sent_at=time.time(),
            suppressed=0,
            deliveries={state.name: {"status": "queued", "reason": None} for state in targets},
        )
        try:
            alert_id = self.store.record_alert(row)
        except StoreUnavailable:
            alert_id = 0
        outcomes: dict[str, dict[str, object]] = dict(row.deliveries)
        lock = threading.Lock()

        def on_outcome(delivery: Delivery, status: str, reason: str | None) -> None:
            with lock:
                outcomes[delivery.state.name] = {"status": status, "reason": reason, "attempts": delivery.attempts}
                snapshot = dict(outcomes)
            if alert_id:
                with contextlib.suppress(StoreUnavailable):
                    self.store.update_alert(alert_id, snapshot)

        for state in targets:
            dispatcher().submit(Delivery(alert, state, on_outcome))
        return alert_id

    def status(self) -> dict[str, Any]:
        channels = self._channels or []
        return {
            "channels": {state.name: state.to_json() for state in channels},
            "queue": sum(state.lane.depth for state in channels),
            "dropped": sum(state.dropped for state in channels),
            "outages": [state.name for state in channels if state.in_outage],
        }
