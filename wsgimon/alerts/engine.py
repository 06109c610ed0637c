"""One middleware's alerting: the rules over its recorder and store, delivered through the dispatcher.

Every process of a deployment runs the same rules; the store decides which one
tells (a claimed cooldown per exception key, a state change per condition), so
an alert goes out once however many workers and hosts saw it. Deliveries and
their outcomes are kept in the store's alert log, which ``/monitoring/alerts``
reads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..guard import report_internal_error
from ..stats.issues import IGNORED, RESOLVED
from ..stores.base import AlertRow, StoreUnavailable
from .dispatcher import ChannelState, Delivery, dispatcher
from .model import Alert
from .rules import conditions, followup_alert, issue_alert, release_alerts
from .settings import configured_channels, make_channels

if TYPE_CHECKING:
    from ..config import Config
    from ..health import HealthRegistry
    from ..stores.base import Batch, IssueEvent, Store

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
                try:
                    state.channel.close()
                except Exception as exc:
                    report_internal_error("alert channel close", exc)

    # -- rules ---------------------------------------------------------------------
    def after_write(self, batch: Batch, events: list[IssueEvent]) -> None:
        """Called by the recorder after each write (off the request thread): the exception rule, per issue."""
        if not self.enabled or "exception" not in self.config.alert_rules:
            return
        self.channels()
        now = time.time()
        regressed = {event.issue for event in events if event.event == "regressed"}
        for sample in batch.issues.values():
            key = f"issue|{sample.id}"
            try:
                # The write that made it regress is this process's alone: told here, once.
                tell, suppressed = self.store.claim_occurrence(key, now, self.config.alert_cooldown_s, sample.count)
                if not (tell or sample.id in regressed):
                    continue
                issue = self.store.issue(sample.id)
            except StoreUnavailable:
                continue
            if issue is None or (issue.status in (IGNORED, RESOLVED)):
                continue  # ignored, or resolved and seen from an older release still running
            self.send(
                issue_alert(issue, sample.count, suppressed, self.dashboard_url, regressed=sample.id in regressed)
            )

    def evaluate(self) -> None:
        """Run by the dispatcher's thread: follow-ups of cooldowns, thresholds, health, SLOs."""
        now = time.time()
        if not self.enabled or now < self._next_evaluation:
            return
        self._next_evaluation = now + self.config.alert_interval_s
        with self.store.time_limit(_EVALUATION_BUDGET_S):
            try:
                for key, suppressed in self.store.claim_followups(now, self.config.alert_cooldown_s):
                    issue = self.store.issue(key.split("|", 1)[1]) if key.startswith("issue|") else None
                    if issue is None or issue.status not in (IGNORED, RESOLVED):
                        self.send(followup_alert(key, suppressed, now, self.dashboard_url, issue))
                checks = self.health.run_all() if "health" in self.config.alert_rules else {}
                for alert in release_alerts(self.config, self.store, now, self.dashboard_url):
                    # An event of one release: claimed for good, told once per deployment.
                    if self.store.claim_occurrence(alert.key, now, _ONCE_S, 1)[0]:
                        self.send(alert)
                firing = self.store.firing_keys()
                for condition in conditions(self.config, self.store, checks, now, self.dashboard_url):
                    # Only a change is written (and told, by the one process whose write made it).
                    if condition.firing != (condition.key in firing) and self.store.transition(
                        condition.key, condition.firing, now
                    ):
                        self.send(condition.alert)
            except StoreUnavailable:
                return

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
            suppressed=alert.suppressed,
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
            "queue": dispatcher().depth,
            "dropped": dispatcher().dropped,
        }
