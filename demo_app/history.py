"""Synthetic history for the demo: the hours before it started, recorded as if they had been served.

The requests are made up (a daily rhythm, a slow quarter of an hour every three hours, two releases)
but they take wsgimon's real recording path: each release is a process of its own whose
:class:`~wsgimon.recording.recorder.Recorder` runs on a clock set to the past, and raw request
records (the tuples the middleware hands over) are folded and written by it. So every minute,
error sample, issue (first seen hours ago), release and the deployment's start are what serving
those requests would have left in the store.

Only the gap between what the store already has and now is filled: on a first run, ``hours`` of
history up to the moment the demo starts; after a restart, the time since the previous run's
last request, never the time that run recorded live.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from flask import Flask

from wsgimon import MonitorMiddleware
from wsgimon.recording.fold import RawRecord
from wsgimon.recording.recorder import Recorder
from wsgimon.stats.time_windows import MINUTE

__all__ = ["OLD_RELEASE", "RELEASE", "REGRESSED", "ROUTES", "Backfill", "Route", "newest_activity", "seed_history"]

#: the release the history starts with, and the one the demo runs (deployed a quarter of the history ago)
OLD_RELEASE = "v1.4.0"
RELEASE = "v1.5.0"
#: the endpoint RELEASE made slower (the demo serves it slower too)
REGRESSED = "/items/<int:item_id>"
REGRESSED_MS = 20.0
_DEPLOYED_SHARE = 0.25  # RELEASE went out this share of the history before the start
_CHUNK_S = 4 * 3600  # one flush per four hours of history: each write pays for its rollups
_FIRST_CHUNK_S = 300  # but the first soon, as a process's first flush comes (issues are opened then)
_OK, _NOT_FOUND, _FAILED = "200 OK", "404 NOT FOUND", "500 INTERNAL SERVER ERROR"
#: a gap shorter than this is not filled: the synthetic traffic's last request falls seconds before
#: the moment it was made for (at a quiet hour, many seconds), and the live traffic fills that minute
_SMALLEST_GAP_S = 60.0
#: the share of /items/<id> requests that fail, in both releases alike
_ITEM_FAILURES = 0.015


@dataclass(frozen=True)
class Route:
    """A kind of request in the demo's traffic: the live generator and the history share these."""

    path: str  # what the client asks for; {n} is a number
    endpoint: str  # the route template wsgimon names it by
    weight: int  # share of the traffic, in parts of the total weight
    median_ms: float  # of the synthetic requests
    status: str


ROUTES = (
    Route("/test/normal", "/test/normal", 50, 1.0, _OK),
    Route("/items/{n}", REGRESSED, 30, 1.3, _OK),
    Route("/orders", "/orders", 10, 2.5, _OK),
    Route("/test/notfound", "/test/notfound", 6, 1.1, _NOT_FOUND),
    Route("/no/such/page/{n}", "<unmatched>", 5, 1.4, _NOT_FOUND),
    Route("/test/error", "/test/error", 2, 1.6, _FAILED),
    Route("/test/server-error", "/test/server-error", 1, 1.0, _FAILED),
    Route("/test/slow", "/test/slow", 2, 1900.0, _OK),
)


@dataclass(frozen=True)
class Backfill:
    """What :func:`seed_history` wrote: ``requests`` from ``since`` to ``until``, per release."""

    requests: int
    since: float
    until: float
    releases: tuple[str, ...]
    continued: bool  # the store had data: only the gap since it was filled

    def describe(self) -> str:
        span = self.until - self.since
        length = f"{span / 3600:.3g} h" if span >= 3600 else f"{span / 60:.0f} min"
        what = f"{self.requests} requests, {' then '.join(self.releases)}"
        if self.continued:
            return f"filled the {length} since the last run with synthetic traffic ({what})"
        return f"backfilled {length} of synthetic history ({what})"


class _PastClock:
    """A wall clock that reads ``wall`` now and runs on from there: the recorder's seam to the past."""

    def __init__(self, wall: float) -> None:
        self.offset = 0.0
        self.set(wall)

    def set(self, wall: float) -> None:
        self.offset = wall - time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() + self.offset


def newest_activity(monitor: MonitorMiddleware, since: float, now: float) -> float | None:
    """When the store last saw a request in [since, now]: the newest logged one, else the end of the
    newest minute with requests; None when it has none."""
    store = monitor.store
    first = int(since // MINUTE) * MINUTE
    minutes = [slot for slot, _key, count, _ms in store.sums(MINUTE, first, int(now) + 1, MINUTE) if count]
    logged = max((entry.time for entry in store.recent_requests(50) if since <= entry.time <= now), default=None)
    if not minutes:
        return logged
    newest_minute = first + max(minutes) * MINUTE
    if logged is not None and logged >= newest_minute:
        return logged  # to the second
    return min(now, newest_minute + MINUTE)


def seed_history(
    flask_app: Flask,
    monitor: MonitorMiddleware,
    hours: float,
    *,
    per_minute: float = 120.0,
    now: float | None = None,
    seed: int = 7,
) -> Backfill | None:
    """Record synthetic traffic for the gap between what the store has (at most ``hours`` back) and
    ``now``; None when there is no gap. ``per_minute``: requests a minute at the day's peak."""
    now = time.time() if now is None else now
    start = now - hours * 3600
    newest = newest_activity(monitor, start, now)
    continued = newest is not None
    if newest is not None:
        start = max(start, newest)
    if now - start < _SMALLEST_GAP_S:
        return None
    known = {row.release: row.first_seen for row in monitor.store.releases()}
    deployed = known.get(RELEASE, now - hours * 3600 * _DEPLOYED_SHARE)
    phases = [(OLD_RELEASE, start, min(deployed, now)), (RELEASE, max(start, deployed), now)]
    rng = random.Random(seed)
    failure = _demo_exception(flask_app)
    total = 0
    releases = []
    for release, begin, end in phases:
        if end - begin >= 1.0:
            total += _record(monitor, release, begin, end, now, per_minute, rng, failure)
            releases.append(release)
    return Backfill(total, start, now, tuple(releases), continued)


def _demo_exception(flask_app: Flask) -> BaseException | None:
    """The exception /test/error raises, raised by its own view: the issue the live requests join."""
    try:
        flask_app.view_functions["error"]()
    except Exception as exc:
        return exc
    return None


def _record(
    monitor: MonitorMiddleware,
    release: str,
    begin: float,
    end: float,
    peak: float,
    per_minute: float,
    rng: random.Random,
    failure: BaseException | None,
) -> int:
    """``release``'s traffic from ``begin`` to ``end``, by a process of its own that started at ``begin``."""
    live = monitor.recorder
    config = monitor.config
    clock = _PastClock(begin)
    recorder = Recorder(
        monitor.store,
        live.namer,
        redact_keys=config.redact_keys,
        recent_requests=config.recent_requests,
        flush_interval=config.flush_interval,
        max_traceback_chars=config.max_traceback_chars,
        histogram_buckets_s=config.metrics_buckets,
        wall_clock=clock,
    )
    recorder.release = release
    total = 0
    chunk = begin
    while chunk < end:
        chunk_end = min(chunk + (_FIRST_CHUNK_S if chunk == begin else _CHUNK_S), end)
        clock.set(chunk_end)
        recorder.set_wall_clock(clock)  # records are timed from the clock's anchor, taken here
        records = _requests(chunk, chunk_end, clock.offset, release, peak, per_minute, rng, failure)
        recorder.pending.extend(records)
        recorder.flush()
        total += len(records)
        chunk = chunk_end
    recorder.shutdown()  # this synthetic process stopped: the live one serves from now on
    return total


def _requests(
    begin: float,
    end: float,
    offset: float,
    release: str,
    peak: float,
    per_minute: float,
    rng: random.Random,
    failure: BaseException | None,
) -> list[RawRecord]:
    """Raw records (as the middleware makes them) of the requests from ``begin`` to ``end``;
    ``offset``: wall time minus the ``perf_counter`` reading they are timed by; the day's traffic
    peaks at ``peak`` (the start), so the history meets the live traffic at its level."""
    records: list[RawRecord] = []
    weights = sum(route.weight for route in ROUTES)
    gauss = rng.gauss
    uniform = rng.uniform
    exp = math.exp
    minute = int(begin // MINUTE)
    while minute * MINUTE < end:
        low = max(begin, minute * MINUTE)
        high = min(end, (minute + 1) * MINUTE)
        covered = (high - low) / MINUTE
        # A daily rhythm, and a slow quarter of an hour every three hours: a period that divides
        # both releases' spans, so each holds the same share of it (the comparison of releases
        # then finds the one regression the newer release has, whatever the hour of the demo).
        load = 0.6 + 0.4 * math.cos((minute * MINUTE - peak) / 86400 * 2 * math.pi)
        incident = (minute // 15) % 12 == 5
        for route in ROUTES:
            count = round(per_minute * load * covered * route.weight / weights * uniform(0.7, 1.3))
            median = route.median_ms
            if release == RELEASE and route.endpoint == REGRESSED:
                median = REGRESSED_MS
            sigma = 0.35
            if incident:
                median *= 3
            mu = math.log(median / 1000.0)
            hint = route.endpoint
            exc = failure if route.endpoint == "/test/error" else None
            paths = [route.path.format(n=n) for n in range(1, 41)] if "{n}" in route.path else [route.path]
            for _ in range(count):
                wall = uniform(low, high)
                status = route.status
                if route.endpoint == REGRESSED and rng.random() < _ITEM_FAILURES:
                    status = _FAILED
                duration = exp(gauss(mu, sigma))
                path = paths[int(uniform(0, len(paths)))]
                records.append((wall - offset, "GET", path, "", status, duration, duration, 40, exc, hint, None, None))
        minute += 1
    records.sort(key=lambda record: record[0])
    return records
