"""Delivering alerts off the request path: a bounded queue and one background thread per process.

``submit`` never blocks: when the queue is full the delivery is dropped and
counted. Each delivery is tried, and tried again with exponential backoff (or
after the delay a rate-limited service asked for) until it is delivered, its
channel says it will never take it (``Permanent``) or is gone (``Gone``: the
channel stops and health says so), or its deadline passes. The thread starts
lazily in the serving process, starts again after a fork, and at exit the
queue is drained for a few seconds at most.

Alert engines register here too: the thread runs their periodic evaluation,
so one process has one alerting thread however many apps it serves.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..guard import logger, report_internal_error
from .model import Alert, DeliveryError, Gone, Permanent, Retry
from .settings import Channel

__all__ = ["ChannelState", "Delivery", "Dispatcher", "dispatcher"]

MAX_QUEUE = 1000
DELIVERY_DEADLINE_S = 600.0  # a delivery is given up after this long
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 60.0
_DRAIN_AT_EXIT_S = 5.0
_TICK_S = 1.0


@dataclass
class ChannelState:
    """One channel of one engine: its client and how its deliveries went."""

    channel: Channel
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retrying: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    gone: str | None = None  # why the channel was stopped
    wait_until: float = 0.0  # rate limit: no send before this (monotonic)

    @property
    def name(self) -> str:
        return self.channel.name

    def to_json(self) -> dict[str, object]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "retrying": self.retrying,
            "last_error": self.last_error,
            "stopped": self.gone,
        }


Outcome = Callable[["Delivery", str, str | None], None]


@dataclass
class Delivery:
    alert: Alert
    state: ChannelState
    on_outcome: Outcome  # (delivery, "delivered" | "retrying" | "failed", reason)
    deadline: float = field(default_factory=lambda: time.monotonic() + DELIVERY_DEADLINE_S)
    not_before: float = 0.0
    attempts: int = 0


class Evaluator(Protocol):
    def evaluate(self) -> None: ...


class Dispatcher:
    def __init__(self) -> None:
        self._queue: deque[Delivery] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._evaluators: weakref.WeakSet[Evaluator] = weakref.WeakSet()
        self._busy = False
        self.dropped = 0

    # -- submitting ----------------------------------------------------------------
    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery; False (dropped and counted) when the queue is full or the channel stopped."""
        if delivery.state.gone is not None:
            delivery.state.dropped += 1
            delivery.on_outcome(delivery, "failed", f"channel stopped: {delivery.state.gone}")
            return False
        with self._wake:
            if len(self._queue) >= MAX_QUEUE:
                self.dropped += 1
                delivery.state.dropped += 1
                return False
            self._queue.append(delivery)
            self._ensure_thread()
            self._wake.notify()
        return True

    def register(self, evaluator: Evaluator) -> None:
        with self._wake:
            self._evaluators.add(evaluator)
            self._ensure_thread()

    def unregister(self, evaluator: Evaluator) -> None:
        with self._wake:
            self._evaluators.discard(evaluator)

    @property
    def depth(self) -> int:
        return len(self._queue)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="wsgimon-alerts", daemon=True)
            self._thread.start()

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._wake:
                if not self._queue and not self._evaluators:
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if now - idle_since > 2 * _TICK_S:
                        self._thread = None
                        return
                else:
                    idle_since = None
                delivery = self._next_due()
                if delivery is None:
                    self._wake.wait(_TICK_S)
                    evaluators = list(self._evaluators)
                else:
                    evaluators = []
                self._busy = delivery is not None
            for evaluator in evaluators:
                try:
                    evaluator.evaluate()
                except Exception as exc:
                    report_internal_error("alert evaluation", exc)
            del evaluators
            if delivery is not None:
                self._attempt(delivery)
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _next_due(self) -> Delivery | None:
        now = time.monotonic()
        for index, delivery in enumerate(self._queue):
            if delivery.not_before <= now and delivery.state.wait_until <= now:
                del self._queue[index]
                return delivery
        return None

    def _attempt(self, delivery: Delivery) -> None:
        state = delivery.state
        delivery.attempts += 1
        try:
            wait = state.channel.send(delivery.alert)
        except Retry as exc:
            self._retry(delivery, str(exc), exc.after_s)
            return
        except Gone as exc:
            state.gone = str(exc)
            self._fail(delivery, str(exc))
            logger.warning("wsgimon: the %s alert channel is stopped: %s", state.name, exc)
            return
        except (Permanent, DeliveryError) as exc:
            self._fail(delivery, str(exc))
            return
        except Exception as exc:
            report_internal_error(f"{state.name} alert channel", exc)
            self._fail(delivery, f"{type(exc).__name__} inside wsgimon")
            return
        if delivery.attempts > 1:
            state.retrying -= 1
        state.delivered += 1
        if wait:
            state.wait_until = time.monotonic() + wait
        delivery.on_outcome(delivery, "delivered", None)

    def _retry(self, delivery: Delivery, reason: str, after_s: float | None) -> None:
        state = delivery.state
        now = time.monotonic()
        delay = after_s if after_s is not None else min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2 ** (delivery.attempts - 1))
        if after_s is not None:
            # Rate limited: every delivery to this channel waits, not only this one.
            state.wait_until = max(state.wait_until, now + after_s)
        state.last_error, state.last_error_at = reason, time.time()
        if now + delay > delivery.deadline:
            self._fail(delivery, f"given up after {delivery.attempts} attempts: {reason}")
            return
        if delivery.attempts == 1:
            state.retrying += 1
        delivery.not_before = now + delay
        delivery.on_outcome(delivery, "retrying", reason)
        with self._wake:
            self._queue.append(delivery)

    def _fail(self, delivery: Delivery, reason: str) -> None:
        state = delivery.state
        if delivery.attempts > 1:
            state.retrying -= 1
        state.failed += 1
        state.last_error, state.last_error_at = reason, time.time()
        delivery.on_outcome(delivery, "failed", reason)

    # -- exit ------------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty (or ``timeout``); True when nothing is left."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ensure_thread()
                self._wake.wait(min(left, 0.05))
        return True


_dispatcher = Dispatcher()


def dispatcher() -> Dispatcher:
    """This process's dispatcher (a new one after a fork)."""
    return _dispatcher


def _after_fork_in_child() -> None:
    global _dispatcher
    _dispatcher = Dispatcher()


def _drain_at_exit() -> None:
    if _dispatcher.depth:
        _dispatcher.drain(_DRAIN_AT_EXIT_S)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_drain_at_exit)
