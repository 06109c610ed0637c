"""Delivering alerts off the request path: a lane per channel, and one evaluation thread per process.

Each channel has its own bounded queue and thread (a lane), so a channel that hangs or drips
delays nobody else's messages. ``submit`` never blocks: when a lane is full the delivery is
dropped and counted. A delivery is tried, and tried again with exponential backoff (or after
the delay a rate-limited service asked for) until it is delivered, its channel says it will
never take it (``Permanent``) or is gone (``Gone``: the channel stops and health says so), or
its deadline passes. A send whose outcome is unknown (the request went out, no answer came in
time: it may have been posted) is tried once more with more patience, never blindly again.
A channel that keeps failing for longer than ``OUTAGE_S`` is logged once, and once more when
it works again. Threads start lazily in the serving process, again after a fork, and at exit
the lanes are drained for a few seconds at most.

Alert engines register here too: the evaluation thread runs their periodic evaluation, so one
process has one evaluating thread however many apps it serves.
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

from ..internal_errors import logger, report_internal_error
from .channels import Channel
from .model import Alert, DeliveryError, Gone, Permanent, Retry, UnknownOutcome

__all__ = ["ChannelState", "Delivery", "Dispatcher", "OUTAGE_S", "dispatcher"]

MAX_QUEUE = 1000  # per channel
DELIVERY_DEADLINE_S = 600.0  # a delivery is given up after this long
OUTAGE_S = 180.0  # failing this long, a channel is an outage: logged once, and health warns
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 60.0
_DRAIN_AT_EXIT_S = 5.0
_TICK_S = 1.0
_MORE_PATIENCE = 3.0  # the one retry after an unknown outcome waits this many times longer


@dataclass
class ChannelState:
    """One channel of one engine: its client, its lane, and how its deliveries went."""

    channel: Channel
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retrying: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    gone: str | None = None  # why the channel was stopped
    wait_until: float = 0.0  # rate limit: no send before this (monotonic)
    failing_since: float | None = None  # wall clock of the first failure since the last delivery
    outage_logged: bool = False
    closed: bool = False  # its engine closed: what is still queued is dropped quietly
    lane: Lane = field(init=False)

    def __post_init__(self) -> None:
        self.lane = Lane(self)

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def in_outage(self) -> bool:
        return self.failing_since is not None and time.time() - self.failing_since >= OUTAGE_S

    def to_json(self) -> dict[str, object]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "retrying": self.retrying,
            "last_error": self.last_error,
            "stopped": self.gone,
            "failing_since": self.failing_since,
        }


Outcome = Callable[["Delivery", str, "str | None"], None]


@dataclass
class Delivery:
    alert: Alert
    state: ChannelState
    on_outcome: Outcome  # (delivery, "delivered" | "retrying" | "failed", reason)
    deadline: float = field(default_factory=lambda: time.monotonic() + DELIVERY_DEADLINE_S)
    not_before: float = 0.0
    attempts: int = 0
    patience: float = 1.0  # more after an unknown outcome
    unknown: bool = False  # an attempt's outcome was unknown: one more, then no more


class Lane:
    """One channel's queue and thread."""

    def __init__(self, state: ChannelState) -> None:
        self._state = weakref.ref(state)
        self._queue: deque[Delivery] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._busy = False
        self._pid = os.getpid()

    @property
    def depth(self) -> int:
        return len(self._queue) + (1 if self._busy else 0)

    def submit(self, delivery: Delivery) -> bool:
        with self._wake:
            if len(self._queue) >= MAX_QUEUE:
                return False
            self._queue.append(delivery)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                name = f"wsgimon-alerts-{delivery.state.name}"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()
            self._wake.notify()
        _lanes.add(self)
        return True

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._wake:
                delivery = self._next_due()
                if delivery is None:
                    now = time.monotonic()
                    if not self._queue:
                        idle_since = idle_since or now
                        if now - idle_since > 2 * _TICK_S:
                            self._thread = None
                            self._wake.notify_all()
                            return
                    self._wake.wait(_TICK_S / 4)
                    continue
                idle_since = None
                self._busy = True
            try:
                _attempt(self, delivery)
            finally:
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

    def again(self, delivery: Delivery) -> None:
        with self._wake:
            self._queue.append(delivery)

    def drain(self, deadline: float) -> bool:
        with self._wake:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True


_lanes: weakref.WeakSet[Lane] = weakref.WeakSet()


def _attempt(lane: Lane, delivery: Delivery) -> None:
    state = delivery.state
    if state.closed:
        return
    delivery.attempts += 1
    try:
        wait = state.channel.send(delivery.alert, patience=delivery.patience)
    except Retry as exc:
        if isinstance(exc, UnknownOutcome):
            if delivery.unknown:
                _fail(delivery, f"outcome unknown twice, not sent again (it may have arrived): {exc}")
                return
            delivery.unknown, delivery.patience = True, _MORE_PATIENCE
        _retry(lane, delivery, str(exc), exc.after_s)
        return
    except Gone as exc:
        state.gone = str(exc)
        _fail(delivery, str(exc))
        logger.warning("wsgimon: the %s alert channel is stopped: %s", state.name, exc)
        return
    except (Permanent, DeliveryError) as exc:
        _fail(delivery, str(exc))
        return
    except Exception as exc:
        report_internal_error(f"{state.name} alert channel", exc)
        _fail(delivery, f"{type(exc).__name__} inside wsgimon")
        return
    if delivery.attempts > 1:
        state.retrying -= 1
    state.delivered += 1
    if state.outage_logged:
        logger.warning("wsgimon: the %s alert channel delivers again", state.name)
    state.failing_since, state.outage_logged = None, False
    if wait:
        state.wait_until = time.monotonic() + wait
    delivery.on_outcome(delivery, "delivered", None)


def _failing(state: ChannelState, reason: str) -> None:
    state.last_error, state.last_error_at = reason, time.time()
    if state.failing_since is None:
        state.failing_since = state.last_error_at
    if state.in_outage and not state.outage_logged:
        state.outage_logged = True
        logger.warning("wsgimon: the %s alert channel has failed for %.0f s: %s", state.name, OUTAGE_S, reason)


def _retry(lane: Lane, delivery: Delivery, reason: str, after_s: float | None) -> None:
    state = delivery.state
    now = time.monotonic()
    delay = after_s if after_s is not None else min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2 ** (delivery.attempts - 1))
    if after_s is not None:
        # Rate limited: every delivery to this channel waits, not only this one.
        state.wait_until = max(state.wait_until, now + after_s)
    _failing(state, reason)
    if now + delay > delivery.deadline:
        _fail(delivery, f"given up after {delivery.attempts} attempts: {reason}")
        return
    if delivery.attempts == 1:
        state.retrying += 1
    delivery.not_before = now + delay
    delivery.on_outcome(delivery, "retrying", reason)
    lane.again(delivery)


def _fail(delivery: Delivery, reason: str) -> None:
    state = delivery.state
    if delivery.attempts > 1:
        state.retrying -= 1
    state.failed += 1
    _failing(state, reason)
    delivery.on_outcome(delivery, "failed", reason)


class Evaluator(Protocol):
    def evaluate(self) -> None: ...


class Dispatcher:
    """This process's evaluation thread, and the door to every channel's lane."""

    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._evaluators: weakref.WeakSet[Evaluator] = weakref.WeakSet()
        self.dropped = 0

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery on its channel's lane; False (dropped and counted) when full or the channel stopped."""
        state = delivery.state
        if state.gone is not None:
            state.dropped += 1
            delivery.on_outcome(delivery, "failed", f"channel stopped: {state.gone}")
            return False
        if not state.lane.submit(delivery):
            self.dropped += 1
            state.dropped += 1
            return False
        return True

    def register(self, evaluator: Evaluator) -> None:
        with self._wake:
            self._evaluators.add(evaluator)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wsgimon-alerts", daemon=True)
                self._thread.start()

    def unregister(self, evaluator: Evaluator) -> None:
        with self._wake:
            self._evaluators.discard(evaluator)

    @property
    def depth(self) -> int:
        return sum(lane.depth for lane in list(_lanes))

    def _run(self) -> None:
        while True:
            with self._wake:
                evaluators = list(self._evaluators)
                if not evaluators:
                    self._thread = None
                    return
            for evaluator in evaluators:
                try:
                    evaluator.evaluate()
                except Exception as exc:
                    report_internal_error("alert evaluation", exc)
            del evaluators
            with self._wake:
                self._wake.wait(_TICK_S / 4)

    def drain(self, timeout: float) -> bool:
        """Wait until every lane is empty (or ``timeout``); True when nothing is left."""
        deadline = time.monotonic() + timeout
        return all(lane.drain(deadline) for lane in list(_lanes))


_dispatcher = Dispatcher()


def dispatcher() -> Dispatcher:
    """This process's dispatcher (a new one after a fork)."""
    return _dispatcher


def _after_fork_in_child() -> None:
    global _dispatcher
    _dispatcher = Dispatcher()
    _lanes.clear()


def _drain_at_exit() -> None:
    if _dispatcher.depth:
        _dispatcher.drain(_DRAIN_AT_EXIT_S)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_drain_at_exit)
