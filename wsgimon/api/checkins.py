"""``/checkins``: the jobs beside the app (cron, Celery beat, scripts), whether they ran when expected.

``GET /checkins`` lists every monitor with its state (see :mod:`wsgimon.stats.checkins`) and recent
runs. A job pings ``POST /checkins/<name>`` when it ends well, ``…/start`` when it starts and
``…/fail`` when it fails: with credentials like every write, an optional body (its output: the
last 10,000 characters are kept, scrubbed of secrets) and optional ``exit_code`` (not 0: a failure)
and ``duration_s``. A ping that carries a schedule (``every``, or ``cron`` and ``timezone``, and
``grace``: query parameters or a JSON body) creates its monitor; one that does not, for a monitor
nobody declared, is a 404 that says how. Pings are limited per monitor and process.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..secret_text import bounded_without_secrets
from ..stats.checkins import CheckInState, Monitor, Run, parse_monitor, state_of
from ..stores.contract import RUNS_PER_CHECKIN, TooManyCheckIns
from .context import Context
from .params import BadRequest, Query
from .values import iso

__all__ = [
    "DURATION_PATTERN",
    "MAX_DURATION_S",
    "MAX_LOG_CHARS",
    "MAX_PING_BODY_BYTES",
    "PARAMETERS",
    "PING_PARAMETERS",
    "PINGS_PER_MINUTE",
    "PingLimiter",
    "answer",
    "checkin_json",
    "ping",
]

PARAMETERS = {"name", "runs"}
#: what a ping's query may say (a JSON body may say the same, and ``log``)
PING_PARAMETERS = {"every", "cron", "timezone", "tz", "grace", "exit_code", "duration_s"}
_SCHEDULE_KEYS = ("every", "cron", "timezone", "tz", "grace")
#: the run's output kept (its end): characters, after scrubbing
MAX_LOG_CHARS = 10_000
#: the largest ping body read; its last MAX_LOG_CHARS characters are kept
MAX_PING_BODY_BYTES = 64 * 1024
#: pings a monitor may send per minute to one process (a burst of as many, then one every two seconds)
PINGS_PER_MINUTE = 30
_DEFAULT_RUNS = 10
_EXIT_CODE = re.compile(r"[0-9]{1,3}")
_NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?")
MAX_DURATION_S = 366 * 86400.0
#: what ``every`` and ``grace`` take as text: up to 99999s, 9999m, 999h or 366d (so never over 366d)
DURATION_PATTERN = (
    r"^([1-9][0-9]{0,4}s|[1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|([1-9]|[1-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d)$"
)
_DURATION_TEXT = re.compile(DURATION_PATTERN)


#: what each field of a JSON ping body may be (besides null)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "every": (str, int, float),
    "grace": (str, int, float),
    "cron": (str,),
    "timezone": (str,),
    "tz": (str,),
    "exit_code": (int, float),  # 3.0 is an integer to JSON
    "duration_s": (int, float),
}
_JSON_TYPE_NAMES = {
    "every": 'a duration such as "1d" or a number of seconds',
    "grace": 'a duration such as "1h" or a number of seconds',
    "cron": "a string",
    "timezone": "a string",
    "tz": "a string",
    "exit_code": "an integer",
    "duration_s": "a number",
}


class NoSuchCheckIn(BadRequest):
    status = 404


class CheckInLimit(BadRequest):
    status = 409


class TooManyPings(BadRequest):
    status = 429


class PingLimiter:
    """A token bucket per monitor name, in this process: PINGS_PER_MINUTE a minute, bounded in memory."""

    def __init__(self, per_minute: int = PINGS_PER_MINUTE) -> None:
        self._lock = threading.Lock()
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)

    def allow(self, name: str, now: float) -> bool:
        with self._lock:
            tokens, when = self._buckets.get(name, (self._capacity, now))
            tokens = min(self._capacity, tokens + max(0.0, now - when) * self._rate)
            if len(self._buckets) >= 4096 and name not in self._buckets:
                # Full buckets are the same as none: forget them (names from a scan of unknown monitors).
                full = self._capacity / self._rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
                if len(self._buckets) >= 4096:  # that many monitors pinging at once: start afresh
                    self._buckets.clear()
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return False
            self._buckets[name] = (tokens - 1.0, now)
            return True


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    name = query.text("name", max_chars=64)
    runs = query.integer("runs", default=_DEFAULT_RUNS, maximum=RUNS_PER_CHECKIN)
    now = time.time()
    monitors = ctx.store.checkin_monitors()
    if name is not None:
        monitors = [monitor for monitor in monitors if monitor.name == name]
        if not monitors:
            raise NoSuchCheckIn(f"no check-in monitor {name!r}")
        kept = {name: ctx.store.checkin_runs(name, RUNS_PER_CHECKIN)}
    elif monitors:
        kept = ctx.store.all_checkin_runs(RUNS_PER_CHECKIN)
    else:
        kept = {}
    return {
        "checkins": [
            checkin_json(monitor, kept.get(monitor.name, []), now, shown=runs, logs=name is not None)
            for monitor in monitors
        ]
    }


def checkin_json(
    monitor: Monitor, runs: list[Run], now: float, *, shown: int = _DEFAULT_RUNS, logs: bool = False
) -> dict[str, Any]:
    """A monitor as the API shows it: schedule, state at ``now`` and its newest ``shown`` runs, newest
    first (``logs``: with each run's output)."""
    state: CheckInState = state_of(monitor, runs, now)
    last = runs[-1] if runs else None
    finished = [run for run in runs if run.ended is not None]
    last_ping = None if last is None else max(t for t in (last.started, last.ended) if t is not None)
    return {
        "name": monitor.name,
        "schedule": monitor.schedule.to_json(),
        "describe": monitor.schedule.describe(),
        "grace_s": monitor.grace_s,
        "state": state.state,
        "detail": state.detail,
        "since": iso(state.since),
        "last_ping": iso(last_ping),
        "last_duration_s": _rounded(finished[-1].duration_s) if finished else None,
        "next_expected": iso(state.expected),
        "recent_runs": [_run_json(run, logs) for run in reversed(runs[-shown:])] if shown else [],
    }


def _run_json(run: Run, with_log: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "started": iso(run.started),
        "ended": iso(run.ended),
        "ok": run.ok,
        "exit_code": run.exit_code,
        "error": run.error,
        "duration_s": _rounded(run.duration_s),
    }
    if with_log:
        row["log"] = run.log
    return row


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def ping(
    ctx: Context,
    limiter: PingLimiter,
    name: str,
    kind: str,
    args: Mapping[str, str],
    body: bytes,
    mimetype: str,
) -> dict[str, Any]:
    """One ping (``kind``: start, success or fail) of monitor ``name``; the monitor as it stands after it."""
    now = time.time()
    if not limiter.allow(name[:100], now):
        raise TooManyPings(
            f"too many pings for check-in {name[:64]!r}: at most {PINGS_PER_MINUTE} a minute per monitor "
            "(and server process); ping at the start and end of each run only"
        )
    asked: dict[str, Any] = dict(args)
    log: str | None = None
    if mimetype == "application/json":
        sent = _json_object(body)
        log = sent.pop("log", None)
        if log is not None and not isinstance(log, str):
            raise BadRequest("log must be a string (the job's output)")
        unknown = sorted(set(sent) - PING_PARAMETERS)
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}; expected: {', '.join(sorted(PING_PARAMETERS | {'log'}))}"
            )
        for key, value in sent.items():
            if isinstance(value, bool) or (value is not None and not isinstance(value, _JSON_TYPES[key])):
                raise BadRequest(f"{key} must be {_JSON_TYPE_NAMES[key]} (or null)")
        asked.update(sent)  # the body's fields over the query's
    elif body:
        log = body.decode("utf-8", errors="replace")
    exit_code = _exit_code(asked.get("exit_code"))
    duration_s = _duration(asked.get("duration_s"))
    if kind == "start" and (exit_code is not None or duration_s is not None):
        raise BadRequest("exit_code and duration_s go with the end of a run (POST /checkins/<name> or …/fail)")
    if kind == "success" and exit_code not in (None, 0):
        kind = "fail"
    spec = {key: asked[key] for key in _SCHEDULE_KEYS if asked.get(key) is not None}
    for key in ("every", "grace"):
        if isinstance(spec.get(key), str) and not _DURATION_TEXT.match(spec[key]):
            raise BadRequest(
                f"{key} must look like 30s, 15m, 1h or 1d (up to 99999s, 9999m, 999h or 366d), got {spec[key][:40]!r}"
            )
    declare: Monitor | None = None
    if spec:
        try:
            declare = parse_monitor(name, spec, now)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    elif not _valid_name(name):
        raise NoSuchCheckIn(f"no check-in monitor {name[:64]!r}")
    if log is not None:
        log = bounded_without_secrets(log, MAX_LOG_CHARS, keep="tail", extra_keys=tuple(ctx.config.redact_keys))
    try:
        monitor = ctx.store.checkin_ping(
            name, kind, now, declare=declare, exit_code=exit_code, duration_s=duration_s, log=log or None
        )
    except TooManyCheckIns as exc:
        raise CheckInLimit(f"{exc}; delete unused ones (wsgimon checkin NAME --delete)") from None
    if monitor is None:
        raise NoSuchCheckIn(
            f"no check-in monitor {name!r}: declare it in the checkins option (WSGIMON_CHECKINS), or send its "
            "schedule with a ping: ?every=1d&grace=1h, or ?cron=0+3+*+*+*&timezone=Europe/Paris&grace=30m "
            '(or a JSON body such as {"every": "1d", "grace": "1h"})'
        )
    return checkin_json(monitor, ctx.store.checkin_runs(name, RUNS_PER_CHECKIN), time.time(), shown=1)


def _valid_name(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name) is not None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        sent = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        sent = None
    if not isinstance(sent, dict):
        raise BadRequest('a JSON body must be an object such as {"every": "1d", "grace": "1h", "log": "…"}')
    return sent


def _exit_code(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and _EXIT_CODE.fullmatch(value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise BadRequest(f"exit_code must be an exit status from 0 to 255, such as 0 or 3, got {str(value)[:20]!r}")


def _duration(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadRequest(f"duration_s must be a number of seconds such as 12.5, got {str(value)[:20]!r}")
    seconds = float(value)
    if not 0 <= seconds <= MAX_DURATION_S:
        raise BadRequest(f"duration_s must be from 0 to {MAX_DURATION_S:g} seconds")
    return seconds
