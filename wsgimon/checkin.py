"""``wsgimon.checkin``: tell wsgimon that a job beside the app (cron, a worker, a script) ran.

As a context manager or a decorator::

    with wsgimon.checkin("nightly-backup"):
        run_backup()

    @wsgimon.checkin("invoices", every="1h", grace="10m")
    def send_invoices(): ...

It pings "started" on entry and, on exit, "succeeded" or "failed" (with the exception's type and
message, scrubbed of secrets) and the duration, in the store the app uses (``storage``: a URL or
a store; default ``WSGIMON_STORAGE``, else the middleware's default ``sqlite:///wsgimon.sqlite3``).
A schedule given here (``every``, or ``cron`` and ``timezone``; ``grace``) creates the monitor if
the configuration did not declare it.

It fails open: wsgimon's own trouble (no store, a locked one, an unknown monitor) is logged and
the job goes on; the job's own exception propagates unchanged. Importing this module imports no
store: the first ping does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .internal_errors import logger

if TYPE_CHECKING:
    from .stats.checkins import Monitor
    from .stores.contract import Store

__all__ = ["CheckIn", "checkin", "open_checkin_store", "send_ping"]

#: how long a ping waits for a busy store before giving up (it is logged, the job goes on)
PING_TIMEOUT_S = 5.0
_LOG_CHARS = 10_000

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def checkin(
    name: str,
    storage: str | Store | None = None,
    *,
    every: str | float | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    grace: str | float | None = None,
) -> CheckIn:
    """A check-in for job ``name``: use it as ``with`` block or as a decorator (see the module)."""
    spec = {
        key: value
        for key, value in (("every", every), ("cron", cron), ("timezone", timezone), ("grace", grace))
        if value is not None
    }
    return CheckIn(name, storage, spec)


class CheckIn(contextlib.ContextDecorator):
    """Pings start on entry, success or failure on exit; each use (each call when it decorates) on its own."""

    def __init__(self, name: str, storage: str | Store | None, spec: dict[str, Any]) -> None:
        self.name = name
        self.storage = storage
        self.spec = spec
        self._started: float | None = None

    def _recreate_cm(self) -> CheckIn:
        # A decorated function may run in two threads at once: each call times its own run.
        return CheckIn(self.name, self.storage, self.spec)

    def __enter__(self) -> CheckIn:
        self._started = time.monotonic()
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        duration = None if self._started is None else time.monotonic() - self._started
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
            self.success(duration_s=duration)
        elif isinstance(exc, SystemExit):
            code = exc.code % 256 if isinstance(exc.code, int) else 1  # as the process would exit
            self.fail(error=None if isinstance(exc.code, int) else "SystemExit", exit_code=code, duration_s=duration)
        else:
            self.fail(error=type(exc).__qualname__, log=_describe(exc), duration_s=duration)
        # None: the job's exception, if any, propagates unchanged.

    def start(self) -> bool:
        """Ping "started"; False (logged) when it was not recorded."""
        return _logged(self.name, send_ping(self.storage, self.name, "start", self.spec))

    def success(self, *, duration_s: float | None = None, log: str | None = None) -> bool:
        """Ping "succeeded"; False (logged) when it was not recorded."""
        return _logged(
            self.name, send_ping(self.storage, self.name, "success", self.spec, duration_s=duration_s, log=log)
        )

    def fail(
        self,
        *,
        error: str | None = None,
        exit_code: int | None = None,
        duration_s: float | None = None,
        log: str | None = None,
    ) -> bool:
        """Ping "failed"; False (logged) when it was not recorded."""
        why = send_ping(
            self.storage,
            self.name,
            "fail",
            self.spec,
            error=error,
            exit_code=exit_code,
            duration_s=duration_s,
            log=log,
        )
        return _logged(self.name, why)


def send_ping(
    storage: str | Store | None,
    name: str,
    kind: str,
    spec: dict[str, Any],
    *,
    error: str | None = None,
    exit_code: int | None = None,
    duration_s: float | None = None,
    log: str | None = None,
) -> str | None:
    """Record one ping of ``name``; None when recorded, else why not (never raises for wsgimon's trouble)."""
    try:
        from .secret_text import bounded_without_secrets, without_passwords
        from .stats.checkins import parse_monitor
        from .stores.contract import StoreUnavailable
    except Exception as exc:  # a broken installation must not stop the job
        return f"wsgimon cannot be imported: {type(exc).__name__}"
    try:
        now = time.time()
        declare: Monitor | None = parse_monitor(name, spec, now) if spec else None
        store = open_checkin_store(storage)
        if log is not None:
            log = bounded_without_secrets(log, _LOG_CHARS, keep="tail") or None
        if error is not None:
            error = bounded_without_secrets(error, 200)
        with store.time_limit(PING_TIMEOUT_S):
            monitor = store.checkin_ping(
                name, kind, now, declare=declare, exit_code=exit_code, duration_s=duration_s, error=error, log=log
            )
        if monitor is None:
            return (
                f"no check-in monitor {name!r}: declare it in the app's checkins option (WSGIMON_CHECKINS), or "
                'give its schedule here (every="1d", or cron="0 3 * * *" with timezone=; and grace=)'
            )
        return None
    except (ValueError, StoreUnavailable) as exc:
        return without_passwords(str(exc))
    except Exception as exc:
        return f"{type(exc).__name__}: {without_passwords(str(exc))}"


def open_checkin_store(storage: str | Store | None) -> Store:
    """The app's store (opened once per URL and process): ``storage``, else ``WSGIMON_STORAGE``, else the
    default. ValueError when it cannot be the app's: ``memory://``, or an SQLite file that is not there."""
    import os

    from .config import Config
    from .stores import open_store
    from .stores.contract import Store

    if isinstance(storage, Store):
        return storage
    config = Config.build({"storage": storage} if storage else {})
    url = config.storage
    with _stores_lock:
        store = _stores.get(url)
        if store is not None:
            return store
        scheme, _, rest = url.partition("://")
        if scheme.lower() == "memory":
            raise ValueError(
                "the store is memory:// (one process's): a job cannot reach it; set WSGIMON_STORAGE (or storage=) "
                "to the app's store, or pass the app's store (storage=middleware.store)"
            )
        if scheme.lower() == "sqlite" and not os.path.isfile(os.path.abspath(rest[1:])):
            raise ValueError(f"no store at {os.path.abspath(rest[1:])} (set WSGIMON_STORAGE to the app's store)")
        store = _stores[url] = open_store(
            url,
            recent_requests=config.recent_requests,
            minute_retention_s=config.minute_retention_h * 3600,
            retention_s=config.retention_days * 86400,
        )
        return store


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__qualname__}: {exc}"
    except Exception:  # a __str__ that raises
        return type(exc).__qualname__


def _logged(name: str, why: str | None) -> bool:
    if why is None:
        return True
    with contextlib.suppress(Exception):  # logging itself may be broken; the job goes on
        logger.warning("wsgimon: check-in %r not recorded: %s", name, why)
    return False
