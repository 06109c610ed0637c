"""The ``wsgimon`` command, configured from the same ``WSGIMON_*`` variables as the middleware.

``wsgimon test-alert`` sends one test message through every configured alert
channel and says, per channel, whether it was delivered; ``wsgimon report``
renders (``--preview FILE``) or sends (``--send``) the report of a period from
the configured store; ``wsgimon issues`` lists the store's issues and resolves,
ignores or reopens one; ``wsgimon token`` prints the deployment's monitoring API
token; ``wsgimon checkin NAME [-- command …]`` pings a check-in monitor, or runs a
command between a start and its end (and exits as it did). Failures are one clear
line and a non-zero exit status, never a traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .stats.issues import STATUSES, parse_change

if TYPE_CHECKING:
    from .alerts.state import Silence
    from .config import Config
    from .stores.contract import Store

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if "checkin" in arguments and "--" in arguments and arguments.index("checkin") < arguments.index("--"):
        cut = arguments.index("--")
        arguments, command = arguments[:cut], arguments[cut + 1 :]
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
    report.add_argument(
        "--force", action="store_true", help="with --preview: replace FILE when it exists (a regular file of yours)"
    )
    token = commands.add_parser("token", help="print the deployment's monitoring API token (kept in the store)")
    token.add_argument("--storage", metavar="URL", help="the app's store (default: WSGIMON_STORAGE)")
    _add_issues_command(commands)
    _add_silence_command(commands)
    _add_checkin_command(commands)
    args = parser.parse_args(arguments)
    if args.command == "test-alert":
        return _test_alert()
    if args.command == "report":
        return _report(args)
    if args.command == "token":
        return _token(args)
    if args.command == "issues":
        return _issues(args)
    if args.command == "silence":
        return _silence(args)
    if args.command == "checkin":
        return _checkin(args, command)
    parser.print_help()
    return 0


def _test_alert() -> int:
    from .alerts.channels import make_channels
    from .alerts.model import Alert, DeliveryError, Retry
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

    from .alerts.model import DeliveryError
    from .config import Config  # noqa: F811 - at run time, not only for types
    from .reporting.options import report_zone
    from .reporting.period import period_before, period_from
    from .reporting.report import build_report, render_report
    from .reporting.schedule import ReportScheduler
    from .stores.contract import StoreUnavailable

    try:
        if args.force and not args.preview:
            raise ValueError("--force goes with --preview FILE")
        if args.preview:
            _check_preview_target(args.preview, args.force)
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
            try:
                _write_private(args.preview, html.encode("utf-8"), args.force)
            except (_Refused, OSError) as exc:
                print(f"wsgimon: the report was not written: {exc}", file=sys.stderr)
                return 2 if isinstance(exc, _Refused) else 1
            print(f"the {kind} report for {period.label()} is in {args.preview}")
            return 0
        if not config.report_email_to:
            print("wsgimon: no recipients: set WSGIMON_REPORT_EMAIL_TO", file=sys.stderr)
            return 2
        ReportScheduler(config, store).send(period)
    except StoreUnavailable as exc:
        print(f"wsgimon: the store cannot be read: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError, DeliveryError) as exc:
        print(f"wsgimon: the report was not sent: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"the {kind} report for {period.label()} was sent to {', '.join(config.report_email_to)}")
    return 0


class _Refused(ValueError):
    """The output file must not be written (it exists, is a link, or is another user's)."""


def _check_preview_target(path: str, force: bool) -> None:
    """Refuse early, before the report is built, what ``_write_private`` would refuse."""
    import stat

    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _Refused(f"cannot inspect {path}: {exc.strerror}") from None
    if stat.S_ISLNK(status.st_mode):
        raise _Refused(f"{path} is a symbolic link; give a new file's path")
    if not force:
        raise _Refused(f"{path} exists; give another path, or --force to replace it")
    if not stat.S_ISREG(status.st_mode):
        raise _Refused(f"{path} is not a regular file")
    if status.st_uid != os.geteuid():
        raise _Refused(f"{path} belongs to user id {status.st_uid}, not to you ({os.geteuid()}); it is not replaced")


def _write_private(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to a new file at ``path`` readable by this user only.

    Never through a symbolic link, never into another user's file: without ``force`` the
    file is created with ``O_EXCL | O_NOFOLLOW`` (an existing one is refused); with it, an
    existing regular file of ours is replaced by a new file renamed over it (anyone still
    holding the old one keeps the old contents, and never sees the new).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    _check_preview_target(path, force)
    if not force:
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise _Refused(f"{path} exists; give another path, or --force to replace it") from None
        _write_all(fd, data, path)
        return
    import secrets

    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, flags, 0o600)
    try:
        _write_all(fd, data, temporary)
        # Checked again just before: what is at the path now must be ours (rename replaces a
        # link itself, never its target, and a sticky directory refuses to replace others' files).
        _check_preview_target(path, force)
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_all(fd: int, data: bytes, path: str) -> None:
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def _token(args: argparse.Namespace) -> int:
    """Print the token kept in the store (made there now when none is yet); never logged."""
    from .access_token import new_access_token
    from .config import Config  # noqa: F811 - at run time, not only for types
    from .stores.contract import StoreUnavailable

    try:
        config = Config.build({"storage": args.storage} if args.storage else {})
        if config.storage.partition("://")[0] == "memory":
            raise ValueError(
                "the store is memory:// (one process's): it has no token shared with the app; set WSGIMON_TOKEN "
                "for the app (and give that token to clients), or set WSGIMON_STORAGE (or --storage) to the app's store"
            )
        store = _existing_store(config)
    except ValueError as exc:
        print(f"wsgimon: {exc}", file=sys.stderr)
        return 2
    try:
        token = store.access_token(new_access_token)
    except StoreUnavailable as exc:
        print(f"wsgimon: the store cannot be read: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if config.token is not None:
        print("wsgimon: note: WSGIMON_TOKEN is set, and the app asks for that token, not this one", file=sys.stderr)
    print(token)
    return 0


def _add_issues_command(commands: Any) -> None:
    issues = commands.add_parser("issues", help="list the store's issues, or resolve, ignore or reopen one")
    actions = issues.add_subparsers(dest="action")
    listing = actions.add_parser("list", help="the issues seen in the window (the default action)")
    for parser in (issues, listing):
        parser.add_argument("--window", default="24h", help="5m, 1h, 24h, 7d, ... or all (default 24h)")
        parser.add_argument("--status", choices=("all", *STATUSES), default="all")
        parser.add_argument("--json", action="store_true", help="print JSON, as the API answers")
    resolve = actions.add_parser("resolve", help="say an issue is fixed: seen again, it regresses and alerts")
    resolve.add_argument("id", help="the issue's id (or a unique prefix of it)")
    resolve.add_argument("--in-release", metavar="RELEASE", help="the release that ships the fix")
    ignore = actions.add_parser("ignore", help="stop alerting on an issue, for good or for a while")
    ignore.add_argument("id")
    how_long = ignore.add_mutually_exclusive_group()
    how_long.add_argument("--for", dest="for_", metavar="DURATION", help="30m, 12h, 7d")
    how_long.add_argument("--until", metavar="TIME", help="an ISO 8601 time with its zone")
    how_long.add_argument("--count", type=int, metavar="N", help="until it happens N more times")
    reopen = actions.add_parser("open", help="reopen a resolved or ignored issue")
    reopen.add_argument("id")


def _issues(args: argparse.Namespace) -> int:
    return _on_store(lambda store: _change_issues(store, args))


def _change_issues(store: Store, args: argparse.Namespace) -> int:
    from .stats.time_windows import parse_window

    action = args.action or "list"
    if action == "list":
        window = parse_window(args.window)
        return _list_issues(store, window.since(time.time()), args.status, args.json)
    issue_id = _unique_issue(store, args.id)
    change = parse_change(
        "open" if action == "open" else "resolved" if action == "resolve" else "ignored",
        getattr(args, "in_release", None),
        getattr(args, "for_", None),
        getattr(args, "until", None),
        getattr(args, "count", None),
        time.time(),
    )
    changed = store.change_issue(issue_id, change, time.time())
    if changed is None:
        raise ValueError(f"no issue {issue_id}")
    print(f"{changed.id} is {changed.status}: {changed.type}: {changed.title}")
    return 0


def _on_store(action: Callable[[Store], int]) -> int:
    """Run a command on the app's store: 2 for a bad request, 1 when the store cannot be read."""
    from .config import Config  # noqa: F811 - at run time, not only for types
    from .stores.contract import StoreUnavailable

    try:
        store = _existing_store(Config.build({}))
    except ValueError as exc:
        print(f"wsgimon: {exc}", file=sys.stderr)
        return 2
    try:
        return action(store)
    except ValueError as exc:
        print(f"wsgimon: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"wsgimon: the store cannot be read: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _unique_issue(store: Store, given: str) -> str:
    wanted = given.strip().lower()
    if len(wanted) < 4 or not all(c in "0123456789abcdef" for c in wanted):
        raise ValueError(f"an issue id is hexadecimal, at least 4 digits (see `wsgimon issues`), got {given!r}")
    if store.issue(wanted) is not None:
        return wanted
    found = [row.id for row in store.issues(None) if row.id.startswith(wanted)]
    if len(found) != 1:
        raise ValueError(f"no issue {given!r}" if not found else f"{given!r} names {len(found)} issues; give more")
    return found[0]


def _list_issues(store: Store, since: float | None, status: str, as_json: bool) -> int:
    import json

    now = time.time()
    counts = store.issue_window_counts(since, now)
    rows = [
        row
        for row in store.issues(since)
        if (status == "all" or row.status == status) and (since is None or counts.get(row.id))
    ]
    rows.sort(key=lambda row: (row.last_seen, counts.get(row.id, 0)), reverse=True)
    if as_json:
        print(json.dumps([{"id": r.id, "type": r.type, "title": r.title, "status": r.status,
                           "count": counts.get(r.id, 0), "endpoints": [f"{m} {e}" for e, m, _n in r.endpoints],
                           "last_seen": r.last_seen} for r in rows], indent=2))  # fmt: skip
        return 0
    if not rows:
        print("no issues in this window")
        return 0
    for row in rows:
        where = ", ".join(f"{m} {e}" for e, m, _n in row.endpoints[:3])
        more = f" +{len(row.endpoints) - 3}" if len(row.endpoints) > 3 else ""
        ago = _ago(now - row.last_seen)
        print(f"{row.id}  {row.status:<9} {counts.get(row.id, 0):>7}  {ago:>8} ago  {row.type}: {row.title}")
        print(f"{'':14}{where}{more}" + (f"  ({row.culprit})" if row.culprit else ""))
    return 0


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(0, seconds):.0f}s"


def _add_silence_command(commands: Any) -> None:
    silence = commands.add_parser("silence", help="mute alerts for a while, on every worker and host")
    actions = silence.add_subparsers(dest="action")
    add = actions.add_parser("add", help="mute what matches every given --rule, --endpoint, --issue, --severity")
    add.add_argument("--rule", help="exception, error_rate, latency_p95, health, slo, regression, new_error")
    add.add_argument("--endpoint", help="an endpoint as the API names it: /orders/<int:id>")
    add.add_argument("--issue", help="an issue's id (see wsgimon issues)")
    add.add_argument("--severity", choices=("critical", "warning", "info"))
    how_long = add.add_mutually_exclusive_group(required=True)
    how_long.add_argument("--for", dest="for_", metavar="DURATION", help="30m, 2h, 1d")
    how_long.add_argument("--until", metavar="TIME", help="an ISO 8601 time with its zone")
    add.add_argument("--reason", required=True, help="why: shown with every alert it mutes")
    actions.add_parser("list", help="the silences, active and recently ended")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=int)


def _silence(args: argparse.Namespace) -> int:
    return _on_store(lambda store: _change_silences(store, args))


def _change_silences(store: Store, args: argparse.Namespace) -> int:
    import getpass

    from .alerts.silencing import parse_silence

    now = time.time()
    if args.action == "add":
        asked = {
            name: value
            for name, value in (
                ("rule", args.rule),
                ("endpoint", args.endpoint),
                ("issue", args.issue),
                ("severity", args.severity),
                ("for", args.for_),
                ("until", args.until),
                ("reason", args.reason),
            )
            if value is not None
        }
        asked["created_by"] = f"{_user(getpass)} (command line)"
        made = store.add_silence(parse_silence(asked, now))
        print(f"silence {made.id} until {_when(made.ends)}: {_describe(made)}")
    elif args.action == "expire":
        ended = store.expire_silence(args.id, now)
        if ended is None:
            raise ValueError(f"no silence {args.id}")
        print(f"silence {ended.id} ended: {_describe(ended)}")
    else:
        silences = store.alerting_view(now).silences
        for item in silences:
            state = "active until" if item.active(now) else "ended"
            print(f"{item.id:>4}  {state} {_when(item.ends)}  {_describe(item)}")
        if not silences:
            print("no silence")
    return 0


def _user(getpass: Any) -> str:
    try:
        return str(getpass.getuser())
    except Exception:
        return "someone"


def _when(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(silence: Silence) -> str:
    return f"{', '.join(silence.matchers())} ({silence.reason})"


def _add_checkin_command(commands: Any) -> None:
    checkin = commands.add_parser(
        "checkin",
        help="ping a check-in monitor, or run a command between its start and end pings",
        description="Without a command: one ping (success, or --start / --fail). With one (after --): a start "
        "ping, the command (its output is not captured), then success (exit status 0) or failure with its exit "
        "status; wsgimon then exits as the command did, whether or not the pings were recorded.",
        usage="wsgimon checkin NAME [--start | --fail | --delete] [--every 1d | --cron EXPR [--timezone ZONE]] "
        "[--grace 1h] [--storage URL] [-- command ...]",
    )
    checkin.add_argument("name", help="the monitor: 1 to 64 letters, digits, '.', '_' or '-'")
    kind = checkin.add_mutually_exclusive_group()
    kind.add_argument("--start", action="store_true", help="ping: a run started")
    kind.add_argument("--fail", action="store_true", help="ping: a run failed")
    kind.add_argument("--delete", action="store_true", help="forget the monitor and its runs")
    schedule = checkin.add_mutually_exclusive_group()
    schedule.add_argument("--every", metavar="DURATION", help="declare it: expected every 30m, 1h, 1d ...")
    schedule.add_argument("--cron", metavar="EXPR", help='declare it: expected at a cron\'s times ("0 3 * * *")')
    checkin.add_argument("--timezone", metavar="ZONE", help="the cron's IANA time zone (default UTC)")
    checkin.add_argument("--grace", metavar="DURATION", help="how late before it is down (default 5m)")
    checkin.add_argument("--storage", metavar="URL", help="the app's store (default: WSGIMON_STORAGE)")


def _checkin(args: argparse.Namespace, command: list[str] | None) -> int:
    from .checkin import open_checkin_store, send_ping
    from .stats.checkins import parse_monitor
    from .stores.contract import StoreUnavailable

    spec = {
        key: value
        for key, value in (
            ("every", args.every),
            ("cron", args.cron),
            ("timezone", args.timezone),
            ("grace", args.grace),
        )
        if value is not None
    }
    if args.delete:
        if command is not None or spec:
            print("wsgimon: --delete takes no schedule and no command", file=sys.stderr)
            return 2
        try:
            store = open_checkin_store(args.storage)
            deleted = store.delete_checkin(args.name)
        except ValueError as exc:
            print(f"wsgimon: {exc}", file=sys.stderr)
            return 2
        except StoreUnavailable as exc:
            print(f"wsgimon: the store cannot be written: {exc}", file=sys.stderr)
            return 1
        print(f"check-in {args.name!r} {'deleted' if deleted else 'was not kept: nothing to delete'}")
        return 0
    if command is None:
        try:
            parse_monitor(args.name, spec or {"every": "1d"}, time.time())
        except ValueError as exc:
            print(f"wsgimon: {exc}", file=sys.stderr)
            return 2
        why = send_ping(args.storage, args.name, "start" if args.start else "fail" if args.fail else "success", spec)
        if why is not None:
            print(f"wsgimon: check-in {args.name!r} not recorded: {why}", file=sys.stderr)
            return 1
        return 0
    if not command:
        print("wsgimon: give the command after --, such as: wsgimon checkin backup -- ./backup.sh", file=sys.stderr)
        return 2
    if args.start or args.fail:
        print("wsgimon: with a command, the pings follow it: no --start or --fail", file=sys.stderr)
        return 2
    return _run_checked(args, spec, command)


def _run_checked(args: argparse.Namespace, spec: dict[str, str], command: list[str]) -> int:
    """Start ping, the command, its end ping; the command's exit status (a shell's 126/127 when it cannot run)."""
    import signal
    import subprocess

    from .checkin import send_ping

    def warn(why: str | None) -> None:
        if why is not None:
            print(f"wsgimon: check-in {args.name!r} not recorded: {why}", file=sys.stderr)

    warn(send_ping(args.storage, args.name, "start", spec))
    started = time.monotonic()
    try:
        child = subprocess.Popen(command)  # noqa: S603 - the user's own command, run as asked
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        print(f"wsgimon: cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        warn(
            send_ping(
                args.storage, args.name, "fail", spec, error=f"cannot run {command[0][:100]}", exit_code=code,
                duration_s=time.monotonic() - started,
            )
        )  # fmt: skip
        return code
    returned: int | None = None
    while returned is None:
        # The command gets an interrupt too: how it ends says how the run went.
        with contextlib.suppress(KeyboardInterrupt):
            returned = child.wait()
    duration = time.monotonic() - started
    error = None
    if returned < 0:
        try:
            error = f"killed by {signal.Signals(-returned).name}"
        except ValueError:
            error = f"killed by signal {-returned}"
        returned = 128 - returned
    if returned == 0:
        warn(send_ping(args.storage, args.name, "success", spec, duration_s=duration))
    else:
        warn(send_ping(args.storage, args.name, "fail", spec, error=error, exit_code=returned, duration_s=duration))
    return returned


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
