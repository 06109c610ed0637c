"""One background thread per process flushes every live recorder.

App factories and test suites build hundreds of middlewares in one process. A
thread, an ``atexit`` entry or a strong reference per middleware would keep
every app alive for the life of the process. Here the process holds recorders
weakly: one ``wsgimon-flusher`` thread serves them all and ends when the last
one is gone, one ``atexit`` function (registered once, holding nothing) writes
what is pending at exit, and a recorder whose middleware was garbage-collected
is handed to the thread for a last flush instead of being flushed inside the
garbage collector.

After a fork the child has none of the parent's threads; the next request
starts the child's own.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..internal_errors import report_internal_error

__all__ = ["Flushable", "register", "retire", "unregister", "flush_all", "thread_alive"]

_IDLE_EXIT_S = 0.5  # with nothing registered, the thread waits this long before it ends


class Flushable(Protocol):
    """What the flusher needs of a recorder."""

    @property
    def flush_interval(self) -> float: ...

    def flush(self) -> None: ...

    def final_flush(self) -> None: ...


class _Flusher:
    def __init__(self) -> None:
        self.live: weakref.WeakSet[Flushable] = weakref.WeakSet()
        self.retired: deque[Flushable] = deque()
        self.due: weakref.WeakKeyDictionary[Flushable, float] = weakref.WeakKeyDictionary()
        self.wake = threading.Condition(threading.Lock())
        self.thread: threading.Thread | None = None

    def register(self, recorder: Flushable) -> None:
        with self.wake:
            if recorder not in self.live:
                self.live.add(recorder)
                self.due[recorder] = time.monotonic() + recorder.flush_interval
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="wsgimon-flusher", daemon=True)
                self.thread.start()
            self.wake.notify()

    def unregister(self, recorder: Flushable) -> None:
        with self.wake:
            self.live.discard(recorder)
            self.due.pop(recorder, None)
            self.wake.notify()

    def retire(self, recorder: Flushable) -> None:
        # Called from a garbage-collection callback, possibly in a thread that holds
        # ``wake`` right now: never block. A thread that is not woken here sees the
        # recorder on its next round, and the exit flush sees it in any case.
        self.retired.append(recorder)
        if self.wake.acquire(blocking=False):
            try:
                self.wake.notify()
            finally:
                self.wake.release()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self.wake:
                now = time.monotonic()
                if not self.live and not self.retired:
                    if idle_since is None:
                        idle_since = now
                    elif now - idle_since >= _IDLE_EXIT_S:
                        self.thread = None
                        return
                    self.wake.wait(_IDLE_EXIT_S)
                    continue
                idle_since = None
                retired = []
                while self.retired:
                    retired.append(self.retired.popleft())
                due = [r for r, at in self.due.items() if at <= now]
                for recorder in due:
                    self.due[recorder] = now + recorder.flush_interval
                if not retired and not due:
                    # Woken early by register() and retire(); at least once a second.
                    self.wake.wait(min(1.0, max(0.0, min(self.due.values(), default=now + 1.0) - now)))
                    continue
            for recorder in retired:
                _safely(recorder.final_flush)
            for recorder in due:
                _safely(recorder.flush)
            # Strong references end here, so a recorder dropped meanwhile can be collected.
            del retired, due, recorder

    def flush_all(self) -> None:
        with self.wake:
            pending = [*self.live]
            while self.retired:
                pending.append(self.retired.popleft())
        for recorder in pending:
            _safely(recorder.final_flush)

    def thread_alive(self) -> bool:
        thread = self.thread
        return thread is not None and thread.is_alive()


def _safely(step: Callable[[], None]) -> None:
    try:
        step()
    except Exception as exc:
        report_internal_error("background flush", exc)


_flusher = _Flusher()


def register(recorder: Flushable) -> None:
    """Flush ``recorder`` every ``flush_interval`` from the process's flusher thread (started if needed)."""
    _flusher.register(recorder)


def unregister(recorder: Flushable) -> None:
    _flusher.unregister(recorder)


def retire(recorder: Flushable) -> None:
    """Give ``recorder`` one last flush in the background (its middleware is gone)."""
    _flusher.retire(recorder)


def flush_all() -> None:
    """Write what every recorder of this process holds; at exit."""
    _flusher.flush_all()


def thread_alive() -> bool:
    return _flusher.thread_alive()


def _after_fork_in_child() -> None:
    global _flusher
    # The parent's thread and lock do not exist here; its recorders re-register on their next request.
    _flusher = _Flusher()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush_all)
