"""How a shared store behaves as the number of writers grows: PostgreSQL, and SQLite for comparison.

A writer is one ``MonitorMiddleware`` with its own store object: its own connections, and a
recorder that the process's flusher thread flushes every ``flush_interval``. A deployment
of many workers (gunicorn processes, many hosts, many apps in one process) is many writers
on one database: each flush appends to the store's journal, and one elected process folds
the journal into the shared rows (under the store's deployment-wide lock). So the questions
are: how long a flush takes as writers are added, whether flushes start to fail, whether
requests are lost on the way, what a flush costs the database server, and how reads of the
monitoring API fare meanwhile.

Setup, per writer count W: a fresh database (PostgreSQL: a private server on 127.0.0.1 from
``tests.postgres``, ``max_connections`` sized for 2 connections per writer; SQLite: a new
file). P worker processes (spawned) host W/P middlewares each and call them directly as
WSGI applications at ``--rate`` requests per second per writer for ``--seconds``: ten
endpoints (``/api/r{k}/<id>``), every 20th request a 404, every 50th an exception (500).
Then each middleware is closed (its last flush) and a fresh middleware on the same store
counts the requests back through ``/monitoring/stats``; ``lost`` is sent minus counted.

Measured, through the public API only (the timing wrappers around each store's ``write``
and ``maintain`` observe, they change nothing):

- flush duration: each ``store.write`` call, p50/p99 over every writer, failed ones included;
- failed writes: ``store.write`` calls that raised (the recorder keeps the batch and retries);
- database CPU per flush (PostgreSQL): CPU time of the postmaster and all its children
  (exited backends included, through the postmaster's children times) over the write phase
  and the closes, minus the reader's own backends, divided by the number of flushes;
  maintenance and connection start-up are part of it, as they are of a real deployment;
- reads: ``/monitoring/endpoints?window=1h`` and ``?window=7d`` from a middleware in the
  driving process every 0.5 s during the write phase, p50/p95;
- the details under each table: flushes per writer and second (one flusher thread per
  process serves all of its writers, one after the other, so a slow store stretches every
  writer's interval, and at most P flushes run at once: ``--processes`` sets how many
  writers contend for the lock at a time),
  maintenance calls, what the recorders still held after their last flush, and how busy the
  whole machine was, with the share of processes outside this run (a shared machine's other
  load shows there, and inflates every duration above);
- PostgreSQL: the buckets table's live and dead rows after the run, and autovacuum runs.
  Every flush overwrites each writer's rows, and until autovacuum reclaims the old versions
  every flush and read wades through them. A fresh server's first autovacuum round comes
  about a minute after its start, so the first writer counts of a run go without one and
  later ones may get one in their phase: what the flush costs depends on it.
  ``--pg-setting autovacuum_naptime=1`` (any ``postgresql.conf`` setting) takes that out.

The run fails (non-zero exit) if a worker process crashes or nothing is counted back; lost
requests are reported, not failed on. Alerts and the report are off (no channel, no
recipient), as they would be by default. Usage::

    python -m bench.writer_scaling --store postgresql --writers 1,10,50,100 --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import queue
import re
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, TypedDict
from wsgiref.util import setup_testing_defaults

import wsgimon
from bench import store_scale
from wsgimon import MonitorMiddleware

ENDPOINTS = 10
READ_EVERY_S = 0.5
COUNT_BACK_S = 60.0  # how long the count-back may read before it takes what it has
READ_PATHS = ("/monitoring/endpoints?window=1h", "/monitoring/endpoints?window=7d")
READY_TIMEOUT_S = 60.0  # plus READY_PER_WRITER_S per writer: every store checks the schema at start
READY_PER_WRITER_S = 0.5
GO_TIMEOUT_S = 600.0  # a worker waits this long for the others to be ready
CLOSE_TIMEOUT_S = 120.0  # after the write phase: every writer's last flush
JOIN_TIMEOUT_S = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_TITLE_PORT = re.compile(r"\((\d+)\)")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class Boom(Exception):
    """What the application raises for its 500s."""


def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Every 50th request raises (a 500), every 20th is a 404, the rest 200."""
    number = int(environ["PATH_INFO"].rsplit("/", 1)[1])
    if number % 50 == 13:
        raise Boom(f"request {number} failed")
    if number % 20 == 7:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok": true}']


def options(flush_interval: float) -> dict[str, Any]:
    """The middleware's options: explicit, so ``WSGIMON_*`` variables cannot turn alerts or the report on."""
    return {
        "flush_interval": flush_interval,
        "trust_loopback": True,
        "alert_email_to": (),
        "discord_webhook_url": None,
        "webhook_url": None,
        "report_email_to": (),
    }


def _base_environ() -> Environ:
    environ: Environ = {}
    setup_testing_defaults(environ)
    environ.update(REMOTE_ADDR="127.0.0.1", SERVER_NAME="127.0.0.1", HTTP_HOST="127.0.0.1")
    return environ


def call(monitor: MonitorMiddleware, base: Environ, path: str, query: str = "") -> tuple[str, bytes]:
    """One request through ``monitor``, its body consumed and closed: (status, body); ("raised", b"") for a 500
    the application raised."""
    environ = dict(base)
    environ.update(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET")
    environ["wsgi.input"] = io.BytesIO()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
        statuses.append(status)
        return lambda data: None

    try:
        body = monitor(environ, start_response)
    except Boom:
        return "raised", b""
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return statuses[-1] if statuses else "", data


# -- the worker processes ------------------------------------------------------------------


class WorkerResult(TypedDict):
    """What a worker process sends back (a plain dict: it crosses a spawn boundary)."""

    worker: int
    writers: int
    sent: int
    target: int
    writes: list[tuple[float, bool]]  # (ms, succeeded) per store.write call
    maintains: list[float]  # ms per store.maintain call
    folds: list[tuple[float, int]]  # (ms, journal rows folded) per fold by the maintainer
    failures: dict[str, int]  # "Type: first line" -> count, of store.write calls that raised
    logged: dict[str, int]  # wsgimon's log records at WARNING and above: first line -> count
    first_tracebacks: list[str]
    unsent_at_close: int  # requests a recorder still held after its last flush (never written)
    lost_to_store: int  # requests the recorders dropped while the store refused writes
    dropped: int  # records dropped on the request path (deque over its bound)
    internal_errors: int
    close_s: float
    cpu_s: float  # this process's CPU time, drive and closes
    lag_s: float  # how far behind its schedule the driver ended


class _CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().splitlines()[0][:200] if record.getMessage() else record.msg
        self.counts[str(text)] += 1
        if record.exc_info and len(self.tracebacks) < 3:
            self.tracebacks.append("".join(traceback.format_exception(*record.exc_info))[-2000:])


class _Timed:
    """Times a store's ``write`` and ``maintain`` (instance attributes over the class's methods)."""

    def __init__(
        self,
        writes: list[tuple[float, bool]],
        maintains: list[float],
        folds: list[tuple[float, int]],
        failures: Counter[str],
    ) -> None:
        self.writes = writes
        self.maintains = maintains
        self.folds = folds
        self.failures = failures

    def wrap(self, store: Any) -> None:
        write, maintain, fold = store.write, store.maintain, getattr(store, "fold_journal", None)

        def timed_write(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            ok = False
            try:
                result = write(*args, **kwargs)
                ok = True
                return result
            except BaseException as exc:
                lines = str(exc).strip().splitlines()
                self.failures[f"{type(exc).__name__}: {lines[0][:120] if lines else ''}"] += 1
                raise
            finally:
                self.writes.append(((time.perf_counter() - started) * 1000, ok))

        def timed_maintain(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return maintain(*args, **kwargs)
            finally:
                self.maintains.append((time.perf_counter() - started) * 1000)

        def timed_fold(*args: Any, **kwargs: Any) -> int:
            assert fold is not None
            started = time.perf_counter()
            folded = int(fold(*args, **kwargs))
            if folded:
                self.folds.append(((time.perf_counter() - started) * 1000, folded))
            return folded

        store.write = timed_write
        store.maintain = timed_maintain
        if fold is not None:
            store.fold_journal = timed_fold


def worker(
    index: int,
    url: str,
    writers: int,
    first_writer: int,
    rate: float,
    seconds: float,
    flush_interval: float,
    expected_package: str,
    go: Event,
    results: Any,
) -> None:
    """A worker process: ``writers`` middlewares on ``url``, driven at ``rate`` each once ``go`` is set."""
    try:
        if wsgimon.__file__ != expected_package:
            raise RuntimeError(f"worker imports {wsgimon.__file__}, the driver {expected_package}")
        from wsgimon.internal_errors import internal_error_count

        handler = _CountingHandler()
        log = logging.getLogger("wsgimon")
        log.addHandler(handler)
        log.propagate = False
        writes: list[tuple[float, bool]] = []
        maintains: list[float] = []
        folds: list[tuple[float, int]] = []
        failures: Counter[str] = Counter()
        timer = _Timed(writes, maintains, folds, failures)
        monitors = []
        for _ in range(writers):
            monitor = MonitorMiddleware(app, storage=url, **options(flush_interval))
            timer.wrap(monitor.store)
            monitors.append(monitor)
        results.put(("ready", index, None))
        if not go.wait(GO_TIMEOUT_S):
            raise RuntimeError("no start signal")
        cpu_before = time.process_time()
        sent, lag = drive(monitors, first_writer, rate, seconds)
        started = time.monotonic()
        for monitor in monitors:
            monitor.close()
        close_s = time.monotonic() - started
        result: WorkerResult = {
            "worker": index,
            "writers": writers,
            "sent": sent,
            "target": round(writers * rate * seconds),
            "writes": writes,
            "maintains": maintains,
            "folds": folds,
            "failures": dict(failures),
            "logged": dict(handler.counts),
            "first_tracebacks": handler.tracebacks,
            "unsent_at_close": sum(m.recorder.unsent_requests for m in monitors),
            "lost_to_store": sum(m.recorder.lost_to_store for m in monitors),
            "dropped": sum(m.recorder.dropped for m in monitors),
            "internal_errors": internal_error_count(),
            "close_s": close_s,
            "cpu_s": time.process_time() - cpu_before,
            "lag_s": lag,
        }
        results.put(("result", index, result))
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        raise


def drive(monitors: Sequence[MonitorMiddleware], first_writer: int, rate: float, seconds: float) -> tuple[int, float]:
    """A round every ``1/rate`` s, one request to each writer per round, until ``seconds`` are over; a late
    round runs at once (catching up), so ``sent`` falls short of the target only when the process cannot keep
    up. Returns (requests sent, how late the last round started)."""
    base = _base_environ()
    numbers = [0] * len(monitors)
    period = 1.0 / rate
    start = time.monotonic()
    deadline = start + seconds
    sent = 0
    lag = 0.0
    round_number = 0
    while True:
        at = start + round_number * period
        now = time.monotonic()
        if at >= deadline or now >= deadline:
            break
        if at > now:
            time.sleep(at - now)
        else:
            lag = now - at
        for i, monitor in enumerate(monitors):
            number = numbers[i]
            numbers[i] += 1
            endpoint = (first_writer + i + number) % ENDPOINTS
            call(monitor, base, f"/api/r{endpoint}/{number}")
            sent += 1
        round_number += 1
    return sent, lag


# -- the database server's CPU ---------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU s, waited-for children's CPU s) of a process, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / _CLK_TCK
    return ppid, own, children


@dataclass
class CpuSnapshot:
    total_s: float
    per_pid: dict[int, float]


def server_cpu(postmaster: int) -> CpuSnapshot:
    """CPU time of the postmaster, its live children, and its exited children (its children times)."""
    per_pid: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None and stat[0] == postmaster:
            per_pid[int(entry)] = stat[1] + stat[2]
    own = _stat(postmaster)
    if own is None:
        raise RuntimeError(f"the PostgreSQL server (pid {postmaster}) is gone")
    return CpuSnapshot(own[1] + own[2] + sum(per_pid.values()), per_pid)


def machine_busy_s() -> float:
    """CPU time the whole machine has spent busy (all cores, every process), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _CLK_TCK  # guest time is already in user time


def own_tcp_ports() -> set[int]:
    """Local ports of this process's TCP sockets (its connections to the server)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9 and parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def backends_of(postmaster: int, ports: set[int]) -> set[int]:
    """The server's backends whose client is one of ``ports`` (their title reads ``127.0.0.1(port)``)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is None or stat[0] != postmaster:
            continue
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            match = _TITLE_PORT.search(title)
            if match and int(match.group(1)) in ports:
                found.add(int(entry))
    return found


# -- the driver ----------------------------------------------------------------------------------


@dataclass
class TableStats:
    buckets_live: int
    buckets_dead: int
    autovacuums: int


@dataclass
class ServerTimes:
    """What the server spent executing the flush's statements (journal, log lines, process row)."""

    calls: int
    mean_ms: float
    max_ms: float


@dataclass
class Row:
    store: str
    writers: int
    processes: int
    sent: int = 0
    target: int = 0
    counted: int = 0
    writes: list[tuple[float, bool]] = field(default_factory=list)
    maintains: list[float] = field(default_factory=list)
    folds: list[tuple[float, int]] = field(default_factory=list)
    backlog: int = 0  # journal rows not yet folded when the writers had left
    failures: Counter[str] = field(default_factory=Counter)
    logged: Counter[str] = field(default_factory=Counter)
    tracebacks: list[str] = field(default_factory=list)
    unsent_at_close: int = 0
    lost_to_store: int = 0
    dropped: int = 0
    internal_errors: int = 0
    close_s: float = 0.0
    worker_cpu_s: float = 0.0
    max_lag_s: float = 0.0
    db_cpu_s: float | None = None
    reader_db_cpu_s: float | None = None
    driver_cpu_s: float = 0.0  # this process: the reader's requests, collecting results
    machine_busy_s: float = 0.0
    reads: dict[str, list[float]] = field(default_factory=dict)
    read_failures: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    tables: TableStats | None = None  # PostgreSQL, after the run
    #: PostgreSQL: the flush's statements as the server timed them (pg_stat_statements), if loaded
    appends: ServerTimes | None = None

    @property
    def lost(self) -> int:
        return self.sent - self.counted

    @property
    def failed_writes(self) -> int:
        return sum(1 for _ms, ok in self.writes if not ok)


class Reader(threading.Thread):
    """Reads READ_PATHS every READ_EVERY_S from a middleware on the store until stopped."""

    def __init__(self, monitor: MonitorMiddleware, until: float) -> None:
        super().__init__(name="writer-scaling-reader", daemon=True)
        self.monitor = monitor
        self.until = until
        self.samples: dict[str, list[float]] = {path: [] for path in READ_PATHS}
        self.failures: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        base = _base_environ()
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < self.until:
            for target in READ_PATHS:
                path, _, query = target.partition("?")
                started = time.perf_counter()
                try:
                    status, body = call(self.monitor, base, path, query)
                except Exception as exc:
                    self.failures[f"{target}: {type(exc).__name__}"] += 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if status.startswith("200"):
                    self.samples[target].append(elapsed)
                else:
                    self.failures[f"{target}: {status} {body[:80]!r}"] += 1
            next_at += READ_EVERY_S
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def _ours(endpoint: str) -> bool:
    """A writers' endpoint (``/api/r{k}/…`` and their 404s), not the seeded history's (``/api/resource{i}/…``)."""
    return not endpoint.startswith("/api/resource")


def count_back(url: str, flush_interval: float, seeded: bool = False) -> tuple[int, int]:
    """Requests the store holds, read by a fresh middleware, and the journal rows it folded first (what
    the maintainer had not yet folded); /stats and the sum over /endpoints must agree (with seeded
    history, only the writers' own endpoints count)."""
    monitor = MonitorMiddleware(app, storage=url, **options(flush_interval))
    try:
        base = _base_environ()
        # What the maintainer had not folded when the writers left is folded first, all of it
        # (a read folds for half its time only): ``lost`` is what the store never got.
        fold = getattr(monitor.store, "fold_journal", None)
        backlog = 0
        while fold is not None and (folded := int(fold(COUNT_BACK_S))):
            backlog += folded
        status, body = call(monitor, base, "/monitoring/stats", "window=1h")
        if not status.startswith("200"):
            raise RuntimeError(f"/monitoring/stats: {status} {body[:200]!r}")
        total = int(json.loads(body)["requests"])
        status, body = call(monitor, base, "/monitoring/endpoints", "window=1h")
        if not status.startswith("200"):
            raise RuntimeError(f"/monitoring/endpoints: {status} {body[:200]!r}")
        rows = json.loads(body)["endpoints"]
        if seeded:
            return sum(int(row["requests"]) for row in rows if _ours(str(row["endpoint"]))), backlog
        per_endpoint = sum(int(row["requests"]) for row in rows)
        if per_endpoint != total:
            print(f"  note: /stats counts {total} requests, /endpoints {per_endpoint}", file=sys.stderr)
        return total, backlog
    finally:
        monitor.close()


class Failed(Exception):
    """The run is void: a worker crashed or hung, or nothing was counted back."""


def _split(writers: int, processes: int) -> list[int]:
    count = max(1, min(processes, writers))
    return [writers // count + (1 if i < writers % count else 0) for i in range(count)]


def measure(
    store: str,
    url: str,
    writers: int,
    args: argparse.Namespace,
    postmaster: int | None,
) -> Row:
    """One writer count on one store (an empty database at ``url``)."""
    shares = _split(writers, args.processes)
    row = Row(store, writers, len(shares))
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    results = ctx.Queue()
    reader_monitor = MonitorMiddleware(app, storage=url, **options(args.flush_interval))
    processes: list[SpawnProcess] = []
    try:
        # Creates the schema before the workers' stores look at it, and opens the reader's connection.
        status, body = call(reader_monitor, _base_environ(), "/monitoring/endpoints", "window=1h")
        if not status.startswith("200"):
            raise Failed(f"{store}: the reader's first read answered {status} {body[:200]!r}")
        if args.history_days:
            # Days of history behind the writers, written the way the read benchmark seeds it.
            print(f"  seeding {args.history_days} days for {args.history_endpoints} endpoints ...", file=sys.stderr)
            store_scale.seed(reader_monitor, args.history_endpoints, args.history_days, time.time())
            status, body = call(reader_monitor, _base_environ(), "/monitoring/endpoints", "window=7d")
            if not status.startswith("200"):
                raise Failed(f"{store}: the read after seeding answered {status} {body[:200]!r}")
        # The reader's process takes the maintainer's lease as often as a worker does: its folds
        # count too (from here: not the seeding's).
        reader_folds: list[tuple[float, int]] = []
        _Timed([], [], reader_folds, Counter()).wrap(reader_monitor.store)
        first = 0
        for index, share in enumerate(shares):
            process = ctx.Process(
                target=worker,
                args=(index, url, share, first, args.rate, args.seconds, args.flush_interval, wsgimon.__file__),
                kwargs={"go": go, "results": results},
                name=f"writer-scaling-{index}",
                daemon=True,
            )
            first += share
            process.start()
            processes.append(process)
        _collect(results, processes, "ready", READY_TIMEOUT_S + READY_PER_WRITER_S * writers)
        before = server_cpu(postmaster) if postmaster is not None else None
        busy_before, driver_before = machine_busy_s(), time.process_time()
        started = time.monotonic()
        reader = Reader(reader_monitor, started + args.seconds)
        go.set()
        reader.start()
        done = _collect(results, processes, "result", args.seconds + CLOSE_TIMEOUT_S)
        row.wall_s = time.monotonic() - started
        row.machine_busy_s = machine_busy_s() - busy_before
        row.driver_cpu_s = time.process_time() - driver_before
        reader.stop.set()
        reader.join(10.0)
        if postmaster is not None and before is not None:
            after = server_cpu(postmaster)
            mine = backends_of(postmaster, own_tcp_ports())
            reader_s = sum(after.per_pid.get(pid, 0.0) - before.per_pid.get(pid, 0.0) for pid in mine)
            row.reader_db_cpu_s = reader_s
            row.db_cpu_s = after.total_s - before.total_s - reader_s
        row.reads, row.read_failures = reader.samples, reader.failures
        for result in done:
            _add(row, result)
        row.folds.extend(reader_folds)
        for process in processes:
            process.join(JOIN_TIMEOUT_S)
            if process.exitcode != 0:
                raise Failed(f"{store}, {writers} writers: worker {process.name} exited with {process.exitcode}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
        results.close()
        reader_monitor.close()
    row.counted, row.backlog = count_back(url, args.flush_interval, seeded=args.history_days > 0)
    if row.counted == 0:
        raise Failed(f"{store}, {writers} writers: {row.sent} requests sent and none counted back")
    return row


def _folds(folds: Sequence[tuple[float, int]]) -> str:
    """How often the maintainer folded, how many journal rows a fold took, and how long it took."""
    if not folds:
        return "0"
    durations = [ms for ms, _rows in folds]
    rows = sum(n for _ms, n in folds) / len(folds)
    return f"{len(folds)}, {rows:.0f}, {_pair(durations, 0.5, 0.99)}"


def _server_times(times: ServerTimes | None) -> str:
    if times is None:
        return "–"
    return f"{times.mean_ms:.2f} / {times.max_ms:.1f} ({times.calls:,})"


def _collect(results: Any, processes: Sequence[SpawnProcess], kind: str, timeout: float) -> list[WorkerResult]:
    """One ``kind`` message from every worker within ``timeout`` s; a worker that fails or dies fails the run."""
    deadline = time.monotonic() + timeout
    waiting = set(range(len(processes)))
    got: list[WorkerResult] = []
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed(f"no {kind!r} from worker(s) {sorted(waiting)} within {timeout:.0f} s")
        try:
            message, index, payload = results.get(timeout=min(left, 0.5))
        except queue.Empty:
            dead = [i for i in sorted(waiting) if processes[i].exitcode is not None]
            if dead:
                raise Failed(
                    f"worker {dead[0]} died (exit code {processes[dead[0]].exitcode}) before {kind!r}"
                ) from None
            continue
        if message == "error":
            raise Failed(f"worker {index} failed:\n{payload}")
        if message != kind:
            raise Failed(f"worker {index} sent {message!r}, expected {kind!r}")
        waiting.discard(index)
        if payload is not None:
            got.append(payload)
    return got


def _add(row: Row, result: WorkerResult) -> None:
    row.sent += result["sent"]
    row.target += result["target"]
    row.writes.extend(result["writes"])
    row.maintains.extend(result["maintains"])
    row.folds.extend(result["folds"])
    row.failures.update(result["failures"])
    row.logged.update(result["logged"])
    row.tracebacks.extend(result["first_tracebacks"][: max(0, 3 - len(row.tracebacks))])
    row.unsent_at_close += result["unsent_at_close"]
    row.lost_to_store += result["lost_to_store"]
    row.dropped += result["dropped"]
    row.internal_errors += result["internal_errors"]
    row.close_s = max(row.close_s, result["close_s"])
    row.worker_cpu_s += result["cpu_s"]
    row.max_lag_s = max(row.max_lag_s, result["lag_s"])


# -- rendering -----------------------------------------------------------------------------------


def quantile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _pair(values: Sequence[float], low: float, high: float) -> str:
    return f"{_ms(quantile(values, low))} / {_ms(quantile(values, high))}"


def _reads(row: Row, path: str) -> str:
    failed = sum(count for text, count in row.read_failures.items() if text.startswith(path + ":"))
    return _pair(row.reads.get(path, []), 0.5, 0.95) + (f" ({failed} failed)" if failed else "")


def render(rows: Sequence[Row], args: argparse.Namespace) -> str:
    lines = []
    for store in dict.fromkeys(row.store for row in rows):
        mine = [row for row in rows if row.store == store]
        lines += [
            f"### {store}: {args.rate:g} req/s per writer for {args.seconds:g} s, flush every "
            f"{args.flush_interval:g} s, writers spread over up to {args.processes} processes"
            + (
                f", over {args.history_days} days of history for {args.history_endpoints} more endpoints"
                if args.history_days
                else ""
            )
            + (
                f"; server settings {', '.join(f'{k}={v}' for k, v in args.pg_setting)}"
                if store == "postgresql" and args.pg_setting
                else ""
            ),
            "",
            "| writers | sent | lost | flush p50/p99 ms | failed writes | db CPU ms/flush "
            "| /endpoints?window=1h p50/p95 ms | /endpoints?window=7d p50/p95 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in mine:
            durations = [ms for ms, _ok in row.writes]
            cpu = "–"
            if row.db_cpu_s is not None and row.writes:
                cpu = f"{row.db_cpu_s * 1000 / len(row.writes):.2f}"
            lines.append(
                f"| {row.writers} | {row.sent:,} | {row.lost:,} | {_pair(durations, 0.5, 0.99)} | "
                f"{row.failed_writes:,} of {len(row.writes):,} | {cpu} | "
                + " | ".join(_reads(row, path) for path in READ_PATHS)
                + " |"
            )
        lines += [
            "",
            "| writers | processes | target | counted | flushes/writer/s | maintain n, p50/max ms "
            "| folds n, rows/fold, p50/p99 ms | journal rows left at the end | flush statements in the server: "
            "mean / max ms | unsent at close "
            "| dropped (store / path) | last close s | worker CPU s | db CPU s (reader's) "
            "| machine busy cores (not this run's) | buckets rows live / dead, autovacuums | internal errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in mine:
            rate = len(row.writes) / row.writers / row.wall_s if row.wall_s else 0.0
            db = "–" if row.db_cpu_s is None else f"{row.db_cpu_s:.1f} ({row.reader_db_cpu_s or 0.0:.1f})"
            tables = "–"
            if row.tables is not None:
                tables = f"{row.tables.buckets_live:,} / {row.tables.buckets_dead:,}, {row.tables.autovacuums}"
            ours = row.worker_cpu_s + row.driver_cpu_s + (row.db_cpu_s or 0.0) + (row.reader_db_cpu_s or 0.0)
            busy = f"{row.machine_busy_s / row.wall_s:.2f} ({max(0.0, row.machine_busy_s - ours) / row.wall_s:.2f})"
            lines.append(
                f"| {row.writers} | {row.processes} | {row.target:,} | {row.counted:,} | {rate:.2f} | "
                f"{len(row.maintains)}, {_ms(quantile(row.maintains, 0.5))}/{_ms(max(row.maintains, default=None))} | "
                f"{_folds(row.folds)} | {row.backlog:,} | {_server_times(row.appends)} | "
                f"{row.unsent_at_close:,} | {row.lost_to_store:,} / {row.dropped:,} | {row.close_s:.1f} | "
                f"{row.worker_cpu_s:.1f} | {db} | {busy} | {tables} | {row.internal_errors} |"
            )
        notes = []
        for row in mine:
            for text, count in row.failures.most_common(5):
                notes.append(f"- {row.writers} writers, failed write ×{count}: {text}")
            for text, count in row.logged.most_common(5):
                notes.append(f"- {row.writers} writers, logged ×{count}: {text}")
            for text, count in row.read_failures.most_common(3):
                notes.append(f"- {row.writers} writers, read failed ×{count}: {text}")
            if row.max_lag_s > 0.5:
                notes.append(f"- {row.writers} writers: the drivers fell up to {row.max_lag_s:.1f} s behind schedule")
        if notes:
            lines += ["", *notes]
        lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(max_writers: int, settings: dict[str, str]) -> Iterator[Any]:
    try:
        import psycopg  # noqa: F401

        from tests.postgres import PostgresServer, find_bindir
    except ImportError as exc:
        raise Failed(f"PostgreSQL part: {exc} (install the test requirements and wsgimon[postgres])") from None
    if find_bindir() is None:
        raise Failed("PostgreSQL part: server binaries (initdb, pg_ctl, postgres) not found")
    # pg_stat_statements (Debian's postgresql ships it) times the flush's statements inside the server.
    defaults = {"max_connections": str(2 * max_writers + 20), "shared_preload_libraries": "pg_stat_statements"}
    with PostgresServer(settings={**defaults, **settings}) as pg:
        yield pg


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[a-z_]+", name.strip()) or not value.strip():
        raise argparse.ArgumentTypeError(f"--pg-setting must look like name=value, got {text!r}")
    return name.strip(), value.strip()


def table_stats(pg: Any, database: str) -> TableStats:
    """Live and dead rows of the buckets table, and autovacuum runs on any table, in ``database``."""
    line = pg.psql(
        "SELECT coalesce(sum(n_live_tup) FILTER (WHERE relname = 'buckets'), 0), "
        "coalesce(sum(n_dead_tup) FILTER (WHERE relname = 'buckets'), 0), "
        "coalesce(sum(autovacuum_count), 0) FROM pg_stat_user_tables",
        database=database,
    )
    live, dead, vacuums = (int(part) for part in line.split("|"))
    return TableStats(live, dead, vacuums)


def start_statement_times(pg: Any, database: str) -> bool:
    """Start pg_stat_statements afresh for this database; False when the server has not loaded it."""
    try:
        pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()", database)
    except Exception:
        return False
    return True


def append_times(pg: Any, database: str) -> ServerTimes | None:
    """Server-side execution of the statements a flush sends (the journal row, the request log's lines,
    the process row): their mean and their slowest single execution."""
    line = pg.psql(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time) / nullif(sum(calls), 0), 0), "
        "coalesce(max(max_exec_time), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = current_database() AND (query LIKE 'INSERT INTO journal%' "
        "OR query LIKE 'INSERT INTO requests%' OR query LIKE 'INSERT INTO processes%')",
        database=database,
    )
    calls, mean, slowest = line.split("|")
    return ServerTimes(int(calls), float(mean), float(slowest)) if int(calls) else None


def _writer_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--writers must be numbers separated by commas, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("--writers needs at least one count, each at least 1")
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    print(run(argv))


def run(argv: Sequence[str] | None = None) -> str:
    """The tables of one run with these command-line arguments (``SystemExit`` when it fails)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.writer_scaling",
        description="Flush time, failures, lost requests, database CPU and read latency as writers are added "
        "to one PostgreSQL or SQLite store.",
    )
    parser.add_argument("--writers", type=_writer_counts, default=[1, 10, 50], help="writer counts (default 1,10,50)")
    parser.add_argument("--store", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="write phase per writer count (default 10)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second per writer (default 20)")
    parser.add_argument("--processes", type=int, default=4, help="worker processes hosting the writers (default 4)")
    parser.add_argument("--flush-interval", type=float, default=1.0, help="the middlewares' flush_interval")
    parser.add_argument(
        "--history-days", type=int, default=0, help="days of history seeded before the writers start (default 0)"
    )
    parser.add_argument("--history-endpoints", type=int, default=100, help="endpoints of the seeded history")
    parser.add_argument(
        "--pg-setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a postgresql.conf setting of the private server (repeatable), e.g. autovacuum_naptime=1",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.processes < 1 or args.flush_interval <= 0:
        parser.error("--seconds, --rate, --flush-interval must be positive and --processes at least 1")
    stores = ["postgresql", "sqlite"] if args.store == "both" else [args.store]
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for store in stores:
            if store == "postgresql":
                with postgres_server(max(args.writers), dict(args.pg_setting)) as pg:
                    for writers in args.writers:
                        database = pg.create_database()
                        timing = start_statement_times(pg, database)
                        print(f"postgresql, {writers} writers ...", file=sys.stderr, flush=True)
                        row = measure(store, pg.url_for(database), writers, args, pg.pid)
                        row.tables = table_stats(pg, database)
                        row.appends = append_times(pg, database) if timing else None
                        rows.append(row)
                        pg.drop_database(database)
            else:
                for writers in args.writers:
                    with tempfile.TemporaryDirectory(prefix="wsgimon-writers-") as directory:
                        print(f"sqlite, {writers} writers ...", file=sys.stderr, flush=True)
                        rows.append(measure(store, f"sqlite:///{directory}/store.sqlite3", writers, args, None))
    except Failed as exc:
        if rows:
            print(render(rows, args))
        raise SystemExit(f"writer_scaling: {exc}") from None
    for row in rows:
        for text in row.tracebacks[:1]:
            print(f"\nfirst logged traceback, {row.store} with {row.writers} writers:\n{text}", file=sys.stderr)
    return f"{render(rows, args)}\n(whole run {time.monotonic() - started:.0f} s, wsgimon {wsgimon.__version__})"


if __name__ == "__main__":
    main()
