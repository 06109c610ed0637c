"""Gunicorn's worker timeout: the request it kills is recorded, with the stack where it was stuck.

When a worker misses its timeout the arbiter sends it SIGABRT; the worker calls the
``worker_abort`` server hook and exits. Nothing else sees the request it was running
(gunicorn logs "WORKER TIMEOUT" and a pid). At the process's first request the middleware
finds the worker (the owner of the SIGABRT handler gunicorn installed), chains its own step
before the user's ``worker_abort`` hook, and tells the recorder how many requests the worker
can run at once (for saturation). On abort, every request in flight becomes an error of type
:class:`WorkerTimeout` whose frames are its thread's stack at that moment, and the recorder
gets one bounded flush before the process goes.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ...internal_errors import report_internal_error
from ..captured import CapturedException

if TYPE_CHECKING:
    from ..middleware import MonitorMiddleware

__all__ = ["WorkerTimeout", "attach"]

#: the flush before the worker exits may wait this long for a busy store
FLUSH_BEFORE_EXIT_S = 1.0
_OWN_FILES = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)


class WorkerTimeout(Exception):
    """A request still running when gunicorn killed its worker for the worker timeout."""


def attach(monitor: MonitorMiddleware) -> bool:
    """Hook the gunicorn worker this process is, if it is one; never raises."""
    try:
        worker = _gunicorn_worker()
        if worker is None:
            return False
        monitor.recorder.capacity = _capacity(worker)
        previous: Callable[[Any], object] = worker.cfg.worker_abort
        if getattr(previous, "_wsgimon", False):
            return True

        def worker_abort(worker: Any) -> None:
            record_timeouts(monitor)
            previous(worker)

        worker_abort._wsgimon = True  # type: ignore[attr-defined]
        worker.cfg.set("worker_abort", worker_abort)
        return True
    except Exception as exc:
        report_internal_error("gunicorn worker", exc)
        return False


def record_timeouts(monitor: MonitorMiddleware) -> None:
    """Record the requests in flight as killed by the timeout and flush them; never raises."""
    try:
        frames = sys._current_frames()
        skip = _OWN_FILES + _gunicorn_files()
        now = perf_counter()
        for ident, request in list(monitor.requests_in_flight.items()):
            seconds = now - request.started
            exc = WorkerTimeout(f"{request.description} killed by gunicorn's worker timeout after {seconds:.1f} s")
            request.abandon(CapturedException.at(exc, frames.get(ident), skip=skip))
        monitor.recorder.flush(FLUSH_BEFORE_EXIT_S, dying=True)
    except Exception as exc:
        report_internal_error("gunicorn worker timeout", exc)


def _gunicorn_worker() -> Any | None:
    handler = signal.getsignal(signal.SIGABRT)
    worker = getattr(handler, "__self__", None)
    if worker is None or not type(worker).__module__.startswith("gunicorn.workers."):
        return None
    return worker


def _capacity(worker: Any) -> int | None:
    """Requests the worker runs at once: one (sync), its threads (gthread), its connections (async)."""
    kind = type(worker).__name__
    if kind == "SyncWorker":
        return 1
    if kind == "ThreadWorker":
        return int(worker.cfg.threads)
    connections = getattr(worker, "worker_connections", None) or getattr(worker.cfg, "worker_connections", None)
    return None if connections is None else int(connections)


def _gunicorn_files() -> tuple[str, ...]:
    gunicorn = sys.modules.get("gunicorn")
    path = getattr(gunicorn, "__file__", None)
    return () if path is None else (os.path.dirname(os.path.abspath(path)) + os.sep,)
