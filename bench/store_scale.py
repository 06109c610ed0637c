"""The read side with days of history, and the cost of one flush, on the SQLite and PostgreSQL stores.

History is seeded through the store API: minute buckets for the last 48 hours
and one minute per hour before that (enough to fill the hour and day buckets),
for N endpoints, each minute aggregating twenty requests.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wsgimon import MonitorMiddleware
from wsgimon.internal_errors import internal_error_count
from wsgimon.stats.aggregate import Aggregate
from wsgimon.stats.time_windows import DAY, HOUR, MINUTE
from wsgimon.stores.contract import StoreUnavailable
from wsgimon.stores.records import Batch, ErrorSample, ProcessRow, RequestEntry


@dataclass
class ReadRow:
    endpoints: int
    path: str
    p50_ms: float
    p95_ms: float


def _template(rng: random.Random) -> Aggregate:
    agg = Aggregate()
    for _ in range(20):
        status = rng.choices((200, 404, 500), (90, 7, 3))[0]
        error_type = {200: None, 404: "404 Not Found", 500: "ValueError"}[status]
        agg.add(rng.lognormvariate(3.0, 0.8), status, status >= 500, status == 404, error_type, 0.0)
    return agg


def seed(monitor: MonitorMiddleware, endpoints: int, days: int, now: float) -> None:
    rng = random.Random(42)
    names = [(f"/api/resource{i}/<int:id>", "GET" if i % 3 else "POST") for i in range(endpoints)]
    templates = [_template(rng) for _ in names]
    for template in templates:
        template.last_seen = now  # the store copies what it is given: one template serves every minute
    minutes = [int(now // MINUTE) - m for m in range(48 * 60)]
    minutes += [int((now - 48 * HOUR) // HOUR * HOUR // MINUTE) - h * 60 for h in range(days * 24 - 48)]
    minutes.sort()
    process = ProcessRow("bench", os.getpid(), now - days * DAY, now, 0)
    for chunk_start in range(0, len(minutes), 120):
        batch = Batch()
        for minute in minutes[chunk_start : chunk_start + 120]:
            batch.minutes[minute] = dict(zip(names, templates, strict=True))
        _write_and_fold(monitor, batch, process)
    recent = Batch()
    for i in range(1000):
        endpoint, method = names[i % endpoints]
        recent.requests.append(RequestEntry(now - i, method, endpoint, endpoint, 200, 12.5, 3.0, None, 512))
    for endpoint, method in names:
        recent.errors[("ValueError", endpoint, method)] = ErrorSample(
            "ValueError", endpoint, method, 1, now, now, "boom", "Traceback ...\nValueError: boom\n"
        )
    _write_and_fold(monitor, recent, process)
    monitor.store.maintain(now)


def _write_and_fold(monitor: MonitorMiddleware, batch: Batch, process: ProcessRow) -> None:
    """Write, then fold what the journal holds (as the maintainer would), so history does not pile up
    in it; a write that meets the background maintainer's fold is tried again."""
    _retrying(lambda: monitor.store.write(batch, process))
    fold = getattr(monitor.store, "fold_journal", None)
    if fold is not None:
        _retrying(fold)


def _retrying(step: Callable[[], object]) -> None:
    for attempt in range(20):
        try:
            step()
            return
        except StoreUnavailable:
            if attempt == 19:
                raise


def _call(monitor: MonitorMiddleware, path: str) -> float:
    raw_path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": raw_path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        # An in-process client, as wsgimon tells one (an in-memory body, no server's keys): trusted on loopback.
        "wsgi.input": io.BytesIO(),
    }
    statuses: list[str] = []
    started = time.perf_counter()
    body = b"".join(monitor(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    elapsed = time.perf_counter() - started
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"{path}: {statuses[0]} {body[:200]!r}")
    return elapsed * 1000


READ_PATHS = (
    "/monitoring/stats",
    "/monitoring/stats?window=7d",
    "/monitoring/endpoints",
    "/monitoring/endpoints?window=1h&sparkline=20",
    "/monitoring/endpoints?window=7d",
    "/monitoring/errors",
    "/monitoring/requests",
    "/monitoring/timeseries?window=1h&step=1m",
    "/monitoring/timeseries?window=24h",
    "/monitoring/timeseries?window=7d&step=1h",
    "/monitoring/health",
)


def measure_reads(
    endpoint_counts: Iterable[int], days: int, repeats: int, storage: Callable[[str], str] | None = None
) -> tuple[list[ReadRow], dict[str, Any]]:
    """``storage`` gives the store's URL for a fresh directory (default: a SQLite file in it)."""
    rows: list[ReadRow] = []
    flush: dict[str, Any] = {}
    for endpoints in endpoint_counts:
        with tempfile.TemporaryDirectory() as directory:
            url = storage(directory) if storage is not None else f"sqlite:///{directory}/bench.sqlite3"
            monitor = MonitorMiddleware(lambda environ, start_response: [], storage=url)
            now = time.time()
            started = time.perf_counter()
            seed(monitor, endpoints, days, now)
            seeded_s = time.perf_counter() - started
            for path in READ_PATHS:
                _call(monitor, path)
                samples = sorted(_call(monitor, path) for _ in range(repeats))
                p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
                rows.append(ReadRow(endpoints, path, statistics.median(samples), p95))
            flush[f"{endpoints} endpoints"] = {"seed_s": seeded_s, **measure_flush(monitor, repeats)}
            monitor.close()
    return rows, flush


def measure_flush(monitor: MonitorMiddleware, repeats: int, per_second: int = 2000) -> dict[str, float]:
    """One second of traffic at ``per_second`` requests over 20 endpoints: fold + write."""
    recorder = monitor.recorder
    rng = random.Random(1)
    templates = [f"/api/resource{i}/<int:id>" for i in range(20)]
    times = []
    recorder.flush()
    before = monitor.store.overall(None, time.time() + 60).count
    errors_before = internal_error_count()
    for _ in range(repeats):
        base = time.perf_counter()
        for i in range(per_second):
            status = "500 INTERNAL SERVER ERROR" if i % 100 == 0 else "200 OK"
            duration = rng.lognormvariate(-4.0, 0.8)
            # The record the request path makes (wsgimon/wsgi/exchange.py): stack samples and time
            # spent in queries and calls last, none here.
            record = (base, "GET", f"/api/x/{i}", "q=1", status, duration, duration / 2, 512, None)
            recorder.pending.append((*record, rng.choice(templates), None, None))
        started = time.perf_counter()
        recorder.flush()
        times.append((time.perf_counter() - started) * 1000)
    counted = monitor.store.overall(None, time.time() + 60).count - before
    if counted != repeats * per_second or internal_error_count() != errors_before:
        raise SystemExit(
            f"store_scale bench: {counted} of {repeats * per_second} flushed requests reached the store "
            f"({internal_error_count() - errors_before} internal errors): the measurement is void"
        )
    return {"flush_ms_median": statistics.median(times), "flush_ms_max": max(times)}


def render(rows: list[ReadRow], flush: dict[str, Any], days: int, store: str = "SQLite") -> str:
    lines = [
        f"Read side on {store} with {days} days of history (minute buckets for 48 h), in-process, p50/p95 of repeats:",
        "",
        "| endpoints | request | p50 ms | p95 ms |",
        "|---:|---|---:|---:|",
    ]
    lines += [f"| {r.endpoints} | `{r.path}` | {r.p50_ms:.1f} | {r.p95_ms:.1f} |" for r in rows]
    lines += [
        "",
        "| store size | seeding s | flush of 1 s at 2,000 req/s (median ms) | max ms |",
        "|---|---:|---:|---:|",
    ]
    for label, values in flush.items():
        lines.append(
            f"| {label} | {values['seed_s']:.1f} | {values['flush_ms_median']:.1f} | {values['flush_ms_max']:.1f} |"
        )
    return "\n".join(lines)
