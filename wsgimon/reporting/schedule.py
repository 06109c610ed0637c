"""Sending the report once per period: any process may run the schedule, the store decides who sends.

Every worker (and every host sharing the store) runs an APScheduler
``BackgroundScheduler`` with the same cron trigger; when it fires, each asks
the store to claim the period and only one gets it. A report missed while the
service was down is sent at the next start if it is less than a day late; a
claim whose process died before finishing may be taken over after a while. A
failed send is retried a few times with backoff and then recorded as failed,
which ``/monitoring/health`` shows.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..internal_errors import logger, report_internal_error
from .options import parse_schedule, report_zone
from .period import Period, period_before
from .report import build_report, report_email, subject

if TYPE_CHECKING:
    from ..config import Config
    from ..stores.contract import Store

__all__ = ["ReportScheduler"]

CATCH_UP_S = 86400.0  # a report missed by less than this is sent at the next start
STALE_CLAIM_S = 1800.0  # a claim not finished after this long (its process died) may be taken over
RETRY_DELAYS_S = (30.0, 120.0, 600.0)


_shared_lock = threading.Lock()
_shared: tuple[int, Any] | None = None  # (pid, the process's one BackgroundScheduler)


def _process_scheduler() -> Any:
    """This process's one scheduler (started on first use, anew after a fork), whatever the number of apps."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            from apscheduler.schedulers.background import BackgroundScheduler

            scheduler = BackgroundScheduler(daemon=True)
            scheduler.start()
            _shared = (os.getpid(), scheduler)
        return _shared[1]


class ReportScheduler:
    """One middleware's report schedule: jobs on the process's one scheduler, added on its first request."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.zone = report_zone(config.report_timezone)
        self.when = parse_schedule(config.report_schedule, config.report_period)
        self._jobs: list[Any] = []
        self._pid = -1
        self._lock = threading.Lock()

    # -- the schedule ----------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._jobs and self._pid == os.getpid():
                return
            scheduler = _process_scheduler()
            # A run missed while this process was busy is still wanted (the claim keeps it single).
            self._jobs = [
                scheduler.add_job(
                    self.run_scheduled,
                    self._trigger(),
                    misfire_grace_time=int(CATCH_UP_S),
                    coalesce=True,
                    max_instances=1,
                ),
                scheduler.add_job(self.catch_up),
            ]
            self._pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        if self._pid == os.getpid():
            for job in jobs:
                with contextlib.suppress(Exception):  # the catch-up job removes itself once it ran
                    job.remove()

    def _trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        day, hour, minute, second = self.when
        return CronTrigger(day_of_week=day or "*", hour=hour, minute=minute, second=second, timezone=self.zone)

    def previous_fire(self, now: datetime) -> datetime:
        """The latest scheduled moment at or before ``now``."""
        trigger = self._trigger()
        moment = trigger.get_next_fire_time(None, now - timedelta(days=8))
        previous = moment
        while moment is not None and moment <= now:
            previous = moment
            moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
        assert previous is not None
        return previous  # type: ignore[no-any-return]

    # -- runs ------------------------------------------------------------------------
    def run_scheduled(self) -> None:
        self.send_period(period_before(datetime.now(self.zone), self.config.report_period))

    def catch_up(self) -> None:
        """At start: a scheduled run missed by less than a day is made now (once, whoever starts first)."""
        now = datetime.now(self.zone)
        previous = self.previous_fire(now)
        if (now - previous).total_seconds() < CATCH_UP_S:
            self.send_period(period_before(previous, self.config.report_period))

    def send_period(self, period: Period) -> bool:
        """Claim the period; the one process that gets it sends, retries, and records the outcome."""
        try:
            if not self.store.claim_report(period.key, time.time(), STALE_CLAIM_S):
                return False
        except Exception as exc:
            report_internal_error("report claim", exc)
            return False
        from ..alerts.model import Retry

        error = "not sent"
        wait = 0.0
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            if wait:
                time.sleep(wait)
            try:
                self.send(period)
            except Exception as exc:
                error = str(exc) or type(exc).__name__
                logger.warning(
                    "wsgimon: the %s report for %s was not sent (attempt %d): %s",
                    period.kind,
                    period.label(),
                    attempt + 1,
                    error,
                )
                if not isinstance(exc, Retry) or attempt == len(RETRY_DELAYS_S):
                    break  # wrong credentials, a refused address, a bug: trying again changes nothing
                wait = exc.after_s if exc.after_s is not None else RETRY_DELAYS_S[attempt]
                continue
            self._finish(period, "sent", "")
            return True
        self._finish(period, "failed", error)
        return False

    def _finish(self, period: Period, state: str, detail: str) -> None:
        try:
            self.store.finish_report(period.key, state, detail, time.time())
        except Exception as exc:
            report_internal_error("report outcome", exc)

    def send(self, period: Period) -> None:
        """Build and send the report of ``period`` now (no claim: the CLI's --send uses this too)."""
        from ..alerts.smtp import parse_recipients
        from ..alerts.smtp import send as smtp_send

        settings = self.config.smtp_settings()
        if settings is None:
            raise ValueError("no SMTP host is configured (WSGIMON_SMTP_HOST)")
        report = build_report(self.store, period, self.config)
        message = report_email(report, settings.sender, parse_recipients(self.config.report_email_to))
        smtp_send(settings, message)  # a Retry, Gone or Permanent says how it failed
        if self.config.report_discord and self.config.discord_webhook_url:
            self._discord_summary(report, subject(report))

    def _discord_summary(self, report: Any, title: str) -> None:
        from ..alerts.discord import DiscordChannel
        from ..alerts.model import Alert, DeliveryError

        totals = report.totals
        fields = (
            ("requests", f"{totals['requests']:,}"),
            ("availability", "–" if totals["availability"] is None else f"{totals['availability']:.3%}"),
            ("p95", "–" if totals["p95"] is None else f"{totals['p95']:.0f} ms"),
        )
        alert = Alert(
            key=f"report|{report.period.key}",
            rule="report",
            severity="info",
            state="resolved",
            title=title.removeprefix("[wsgimon] "),
            summary="The full report went out by e-mail.",
            opened_at=time.time(),
            fields=fields,
            dashboard_url=report.dashboard_url,
        )
        channel = DiscordChannel(self.config.discord_webhook_url or "")
        try:
            channel.send(alert)
        except DeliveryError as exc:
            logger.warning("wsgimon: the report's Discord summary was not delivered: %s", exc)
        finally:
            channel.close()
