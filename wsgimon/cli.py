"""The ``wsgimon`` command, configured from the same ``WSGIMON_*`` variables as the middleware.

``wsgimon test-alert`` sends one test message through every configured alert
channel and says, per channel, whether it was delivered. Failures are one
clear line and a non-zero exit status, never a traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import __version__

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsgimon", description="WSGI monitoring middleware.")
    parser.add_argument("--version", action="version", version=f"wsgimon {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("test-alert", help="send a test alert through every configured channel")
    args = parser.parse_args(argv)
    if args.command == "test-alert":
        return _test_alert()
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


if __name__ == "__main__":
    raise SystemExit(main())
