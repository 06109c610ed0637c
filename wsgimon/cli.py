"""The ``wsgimon`` command, configured from the same ``WSGIMON_*`` variables as the middleware.

``wsgimon test-alert`` sends one test message through every configured alert
channel and says, per channel, whether it was delivered; ``wsgimon report``
renders (``--preview FILE``) or sends (``--send``) the report of a period from
the configured store. Failures are one clear line and a non-zero exit status,
never a traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .config import Config
    from .stores.base import Store

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsgimon", description="WSGI monitoring middleware.")
    parser.add_argument("--version", action="version", version=f"wsgimon {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("test-alert", help="send a test alert through every configured channel")
    report = commands.add_parser("report", help="render or send the report of a period from the configured store")
    action = report.add_mutually_exclusive_group(required=True)
    action.add_argument("--preview", metavar="FILE", help="write the report's HTML to FILE")
    action.add_argument("--send", action="store_true", help="send it now (not counted as the scheduled one)")
    report.add_argument("--period", choices=("week", "day"), help="default: WSGIMON_REPORT_PERIOD, else week")
    report.add_argument("--since", metavar="DATE", help="the period that holds DATE (YYYY-MM-DD); default: the last")
    args = parser.parse_args(argv)
    if args.command == "test-alert":
        return _test_alert()
    if args.command == "report":
        return _report(args)
    parser.print_help()
    return 0


def _test_alert() -> int:
    from .alerts.model import Alert, DeliveryError, Retry
    from .alerts.settings import make_channels
    from .config import Config

    try:
        config = Config.build({})
        channels = make_channels(config)
    except ValueError as exc:
        print(f"wsgimon: {exc}", file=sys.stderr)
        return 2
    if not channels:
        print(
            "wsgimon: no alert channel is configured: set WSGIMON_DISCORD_WEBHOOK_URL, WSGIMON_WEBHOOK_URL "
            "or WSGIMON_ALERT_EMAIL_TO (with WSGIMON_SMTP_HOST and WSGIMON_EMAIL_FROM)",
            file=sys.stderr,
        )
        return 2
    now = time.time()
    alert = Alert(
        key="test",
        rule="test",
        severity="info",
        state="firing",
        title="wsgimon test alert",
        summary="This is a test message from `wsgimon test-alert`: this channel works.",
        opened_at=now,
        first_seen=now,
        last_seen=now,
    )
    failed = 0
    for channel in channels:
        reason = None
        for attempt in range(3):
            try:
                channel.send(alert)
                reason = None
                break
            except Retry as exc:
                reason = str(exc)
                if attempt < 2:
                    time.sleep(min(exc.after_s or 1.0, 5.0))
            except DeliveryError as exc:
                reason = str(exc)
                break
        channel.close()
        if reason is None:
            print(f"{channel.name}: delivered")
        else:
            failed += 1
            print(f"{channel.name}: not delivered: {reason}")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from datetime import date, datetime

    from .config import Config  # noqa: F811 - at run time, not only for types
    from .report import build_report, period_before, period_from, render_report
    from .report_schedule import ReportScheduler, report_zone
    from .stores.base import StoreUnavailable

    try:
        config = Config.build({"report_period": args.period} if args.period else {})
        zone = report_zone(config.report_timezone)
        since = date.fromisoformat(args.since) if args.since else None
        store = _existing_store(config)
    except ValueError as exc:
        print(f"wsgimon: {exc}", file=sys.stderr)
        return 2
    kind = config.report_period
    period = period_from(since, kind, zone) if since else period_before(datetime.now(zone), kind)
    try:
        if args.preview:
            _text, html = render_report(build_report(store, period, config))
            with open(args.preview, "w", encoding="utf-8") as file:
                file.write(html)
            print(f"the {kind} report for {period.label()} is in {args.preview}")
            return 0
        if not config.report_email_to:
            print("wsgimon: no recipients: set WSGIMON_REPORT_EMAIL_TO", file=sys.stderr)
            return 2
        ReportScheduler(config, store).send(period)
    except StoreUnavailable as exc:
        print(f"wsgimon: the store cannot be read: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"wsgimon: the report was not sent: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"the {kind} report for {period.label()} was sent to {', '.join(config.report_email_to)}")
    return 0


def _existing_store(config: Config) -> Store:
    """The configured store, refusing to create an empty one: a report of nothing helps nobody."""
    from .stores import open_store

    scheme, _, rest = config.storage.partition("://")
    if scheme == "memory":
        raise ValueError("the store is memory:// (one process's): set WSGIMON_STORAGE to the app's store")
    if scheme == "sqlite" and not os.path.isfile(os.path.abspath(rest[1:])):
        raise ValueError(f"no store at {os.path.abspath(rest[1:])} (set WSGIMON_STORAGE to the app's store)")
    return open_store(
        config.storage,
        recent_requests=config.recent_requests,
        minute_retention_s=config.minute_retention_h * 3600,
        retention_s=config.retention_days * 86400,
    )


if __name__ == "__main__":
    raise SystemExit(main())
