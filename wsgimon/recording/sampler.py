"""One thread per process looks at the requests in flight, and samples the stacks of slow ones.

A request in flight is its exchange, registered under its thread's id when it
starts and removed when its record is made (a dict store and a pop on the
request path, nothing more). Every ``slow_sample_interval_ms`` the sampler
looks at them; for a request older than ``slow_request_ms`` it samples that
thread's stack (``sys._current_frames()``: file, line and function only), up
to ``MAX_SAMPLES`` per request. Fast requests are never looked at closely.

Under gevent or eventlet, threads are greenlets and ``_current_frames`` would
show the wrong stacks: sampling is off there, and health says so.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Protocol

from ..internal_errors import report_internal_error
from ..stats.profiles import current_frames, stack_of
from .in_flight import InFlightRequest

__all__ = ["MAX_SAMPLES", "SlowRequestSampler", "Watched", "sampler", "sampling_unavailable"]

MAX_SAMPLES = 300


def sampling_unavailable() -> str | None:
    """Why stacks cannot be sampled in this process, or None when they can."""
    for name in ("gevent", "eventlet"):
        module = sys.modules.get(f"{name}.monkey") if name == "gevent" else sys.modules.get(name)
        if module is None:
            continue
        if name == "gevent":
            patched: Callable[[str], bool] | None = getattr(module, "is_module_patched", None)
            if patched is not None and patched("threading"):
                return "gevent has patched threading: requests run in greenlets, whose stacks cannot be sampled"
        else:
            patcher = sys.modules.get("eventlet.patcher")
            if patcher is not None and patcher.is_monkey_patched("thread"):
                return "eventlet has patched threading: requests run in green threads, whose stacks cannot be sampled"
    return None


class Watched(Protocol):
    """What the sampler reads of a middleware: its requests in flight, by thread id."""

    @property
    def requests_in_flight(self) -> Mapping[int, InFlightRequest]: ...


class SlowRequestSampler:
    """Holds every watched middleware weakly.

    A request whose body is never closed stays in its middleware's table, and
    that request refers to its middleware: holding the table here would keep
    the middleware and its app alive for ever. Through a weak reference to the
    owner, the two are an ordinary cycle the garbage collector frees.
    """

    def __init__(self) -> None:
        self._watched: weakref.WeakKeyDictionary[Watched, tuple[float, float]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.samples_taken = 0

    def watch(self, owner: Watched, slow_s: float, interval_s: float) -> None:
        """Look at ``owner``'s requests in flight every ``interval_s`` until it is gone or unwatched."""
        with self._lock:
            self._watched[owner] = (slow_s, interval_s)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wsgimon-sampler", daemon=True)
                self._thread.start()

    def unwatch(self, owner: Watched) -> None:
        with self._lock:
            self._watched.pop(owner, None)

    def watching(self) -> int:
        with self._lock:
            return len(self._watched)

    def _run(self) -> None:
        while True:
            with self._lock:
                intervals = [interval for _slow, interval in self._watched.values()]
                if not intervals:
                    self._thread = None
                    return
            time.sleep(min(intervals))
            try:
                self._look()
            except Exception as exc:
                report_internal_error("slow-request sampler", exc)

    def _look(self) -> None:
        with self._lock:
            watched = [(owner.requests_in_flight, slow_s) for owner, (slow_s, _interval) in self._watched.items()]
        now = time.perf_counter()
        slow = [
            (ident, request)
            for table, slow_s in watched
            for ident, request in list(table.items())
            if now - request.started >= slow_s
        ]
        del watched
        if not slow:
            return
        frames = current_frames()
        me = threading.get_ident()
        for ident, request in slow:
            frame = frames.get(ident)
            if frame is None or ident == me:
                continue
            samples = request.samples
            if samples is None:
                samples = request.samples = []
            if len(samples) < MAX_SAMPLES:
                samples.append(stack_of(frame))
                self.samples_taken += 1
        del frames, slow


_sampler = SlowRequestSampler()


def sampler() -> SlowRequestSampler:
    return _sampler


def _after_fork_in_child() -> None:
    global _sampler
    _sampler = SlowRequestSampler()


os.register_at_fork(after_in_child=_after_fork_in_child)
