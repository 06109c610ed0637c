"""What timing a request's database queries and outbound HTTP calls costs (``capture_db``, ``capture_http``).

Four measurements, each checking that what it measured happened (answers 2xx, every request
counted back, the request log's ``db_queries`` / ``http_calls`` as many as were run, or null
when not captured), and failing loudly otherwise:

1. **Per query**, in time: one process, a Flask app running N ``SELECT 1`` on in-memory sqlite3
   per request, through ``wsgimon.instrument_dbapi`` and through SQLAlchemy Core on one
   connection, wrapped by wsgimon with capture on and with capture off, interleaved rounds (the
   order reversed every other round); (on - off) / N. And in instructions (callgrind, the
   request thread only, as :mod:`bench.instructions`), where "off" is a process in which no hook
   is installed at all. A query with no request in flight is measured the same two ways.
2. **Per outbound call**, in instructions: a request making K ``http.client`` calls to a tiny
   keep-alive server on 127.0.0.1 (another process), capture on against off; converted to µs at
   the instructions per µs this machine runs a bare Flask request at. Wall time alongside.
3. **Nothing for an app that makes neither**: instructions per request of the plain and Flask
   apps of :mod:`bench.instructions`, this tree against another checkout (the commit before
   the feature, as a git worktree), same script.
4. **20 queries a request**: the ratio capture on / off per round, against two identical bare
   apps' ratio (the noise of the column).

    python -m bench.time_spent --before /tmp/bench-before     # everything, printed as Markdown
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hot_path, instructions

PER_QUERY_GOAL_US = 1.0
PER_CALL_GOAL_US = 1.0
OUTSIDE_GOAL_US = 0.1  # "about nothing", for a query with no request in flight
NOTHING_GOAL = 0.01  # instructions per request within 1 % of before the feature
INSTRUCTIONS_NOISE = 0.01  # generous: counts of one request differ by a few dozen between runs
QUERIES = 50  # per request, for the per-query cost in time
TWENTY = 20
CALLS = 10  # outbound calls per request, in time
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# -- a tiny keep-alive HTTP server, in its own process (it must not share the GIL) -------------------
def _serve_forever() -> None:
    """Answer every GET with 200 "ok", keep-alive; ``GET /count`` answers how many others were served.
    Stops when its stdin closes (the parent went away)."""
    served = [0]
    lock = threading.Lock()
    listener = socket.create_server(("127.0.0.1", 0))

    def connection(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        with sock:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    if head.startswith(b"GET /count "):
                        with lock:
                            body = str(served[0]).encode()
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    else:
                        with lock:
                            served[0] += 1
                        sock.sendall(_RESPONSE)

    def accept() -> None:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=connection, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.read()


@contextmanager
def http_server() -> Iterator[int]:
    """The port of a tiny keep-alive server in a child process, stopped on exit."""
    child = subprocess.Popen(
        [sys.executable, "-c", "from bench.time_spent import _serve_forever; _serve_forever()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=instructions.ROOT,
        env={**os.environ, "PYTHONPATH": str(instructions.ROOT)},
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit(f"time_spent bench: the local server did not start ({line!r})")
        yield int(line)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def served(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/count")
        return int(connection.getresponse().read())
    finally:
        connection.close()


# -- the app ----------------------------------------------------------------------------------------
def make_app(counts: tuple[int, ...], port: int | None = None) -> Any:
    """A Flask app: ``/hello``; ``/dbapi/<n>``, ``/raw/<n>`` (sqlite3 not instrumented) and
    ``/sqlalchemy/<n>`` running n ``SELECT 1``; ``/http/<n>`` making n http.client calls."""
    import sqlalchemy
    from flask import Flask

    import wsgimon

    app = Flask("time_spent")
    app.add_url_rule("/hello", "hello", lambda: "hello")
    raw = sqlite3.connect(":memory:", check_same_thread=False)
    timed = wsgimon.instrument_dbapi(sqlite3.connect(":memory:", check_same_thread=False))
    engine = sqlalchemy.create_engine("sqlite://")
    core = engine.connect()
    select = sqlalchemy.text("SELECT 1")
    client = None if port is None else http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def dbapi_view(n: int, connection: Any) -> Callable[[], str]:
        def view() -> str:
            for _ in range(n):
                connection.execute("SELECT 1").fetchone()
            return "ok"

        return view

    def core_view(n: int) -> Callable[[], str]:
        def view() -> str:
            for _ in range(n):
                core.execute(select).fetchone()
            core.rollback()
            return "ok"

        return view

    def http_view(n: int) -> Callable[[], str]:
        def view() -> str:
            assert client is not None
            for _ in range(n):
                client.request("GET", "/x")
                response = client.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"the local server answered {response.status}")
            return "ok"

        return view

    for n in counts:
        app.add_url_rule(f"/dbapi/{n}", f"dbapi{n}", dbapi_view(n, timed))
        app.add_url_rule(f"/raw/{n}", f"raw{n}", dbapi_view(n, raw))
        app.add_url_rule(f"/sqlalchemy/{n}", f"sqlalchemy{n}", core_view(n))
        if client is not None:
            app.add_url_rule(f"/http/{n}", f"http{n}", http_view(n))
    app.extensions["time_spent_bench"] = (raw, timed, core, select)
    return app


def wrap(app: Any, capture: bool) -> Any:
    from wsgimon import MonitorMiddleware

    return MonitorMiddleware(
        app.wsgi_app,
        storage="memory://",
        flush_interval=60,
        slow_request_ms=0,
        capture_db=capture,
        capture_http=capture,
    )


def check_log(monitor: Any, requests: int, capture: bool, what: str = "db_queries") -> None:
    """Every request counted back; the log's queries (calls) per request as its path says, or null."""
    monitor.flush()
    counted = monitor.store.overall(None, time.time() + 60).count
    if counted != requests:
        raise SystemExit(f"time_spent bench: {counted} of {requests} requests counted")
    entries = monitor.store.recent_requests(1000)
    if not entries:
        raise SystemExit("time_spent bench: the request log is empty")
    for entry in entries:
        kind, _, n = entry.path.strip("/").partition("/")
        if entry.status != 200:
            raise SystemExit(f"time_spent bench: {entry.path} answered {entry.status}")
        if kind == "http":
            expected: tuple[int | None, int | None] = (0, int(n)) if capture else (None, None)
        elif kind in ("dbapi", "sqlalchemy"):
            expected = (int(n), 0) if capture else (None, None)
        else:  # /raw (not instrumented), /hello
            expected = (0, 0) if capture else (None, None)
        seen = (entry.db_queries or 0, entry.http_calls or 0) if capture else (entry.db_queries, entry.http_calls)
        if seen != expected:
            raise SystemExit(f"time_spent bench: {entry.path}: (db_queries, http_calls) {seen}, not {expected}")


# -- callgrind: the request thread's instructions -------------------------------------------------------
def serve_counted(scenario: str, variant: str, n: str, requests: str, port: str = "0") -> None:
    """Under callgrind: ``requests`` requests (or queries, outside a request) on the main thread, checked.

    scenario: ``dbapi``, ``raw``, ``sqlalchemy`` or ``http`` (requests of n queries or calls), or
    ``outside-dbapi``, ``outside-raw``, ``outside-sqlalchemy`` (``requests`` queries, no request in
    flight). variant: ``on`` (capture), ``off`` (a middleware that captures nothing: no hook is
    installed), ``none`` (no middleware).
    """
    from tests.helpers import call

    count, total = int(n), int(requests)
    app = make_app((count,), int(port) if scenario == "http" else None)
    monitor = None if variant == "none" else wrap(app, variant == "on")
    target = app if monitor is None else monitor
    raw, timed, core, select = app.extensions["time_spent_bench"]
    gc.collect()
    gc.freeze()
    if scenario.startswith("outside-"):
        if scenario == "outside-sqlalchemy":
            for _ in range(total):
                core.execute(select).fetchone()
        else:
            connection = timed if scenario == "outside-dbapi" else raw
            for _ in range(total):
                connection.execute("SELECT 1").fetchone()
        if monitor is not None:
            if monitor.in_flight.requests():
                raise SystemExit("time_spent bench: a request was in flight")
            monitor.close()
        return
    for _ in range(total):
        result = call(target, f"/{scenario}/{count}")
        if result.status is None or not result.status.startswith("200"):
            raise SystemExit(f"time_spent bench: a request answered {result.status!r} ({result.error!r})")
    if monitor is not None:
        flusher = threading.Thread(target=check_log, args=(monitor, total, variant == "on"))
        flusher.start()
        flusher.join()
        monitor.close()


def counted(scenario: str, variant: str, n: int, low: int, high: int, port: int = 0) -> float:
    """Instructions per request (or per query, outside a request) on the main thread."""
    runs = [
        instructions.main_thread_instructions(
            "bench.time_spent:serve_counted", [scenario, variant, str(n), str(total), str(port)]
        )
        for total in (low, high)
    ]
    return (runs[1] - runs[0]) / (high - low)


@dataclass
class Counts:
    queries: int = 0
    calls: int = 0
    #: (scenario, variant) -> instructions per request (per query for the outside-* scenarios)
    per: dict[tuple[str, str], float] = field(default_factory=dict)
    #: tree -> instructions.Count rows (plain and Flask, bare and wrapped)
    nothing: dict[str, list[instructions.Count]] = field(default_factory=dict)


def measure_counts(
    before: Path | None, queries: int, calls: int, low: int, high: int, plain: tuple[int, int], workers: int = 2
) -> Counts:
    out = Counts(queries=queries, calls=calls)
    jobs: dict[tuple[str, str], Callable[[], float]] = {}
    with http_server() as port:
        calls_before = served(port)
        for scenario, variants in (
            ("dbapi", ("on", "off")),
            ("raw", ("off",)),
            ("sqlalchemy", ("on", "off")),
            ("http", ("on", "off")),
        ):
            n = calls if scenario == "http" else queries
            for variant in variants:
                jobs[(scenario, variant)] = lambda s=scenario, v=variant, n=n: counted(s, v, n, low, high, port)
        outside = (low * queries, high * queries)
        for scenario, variant in (
            ("outside-raw", "none"),
            ("outside-dbapi", "off"),
            ("outside-dbapi", "on"),
            ("outside-sqlalchemy", "off"),
            ("outside-sqlalchemy", "on"),
        ):
            jobs[(scenario, variant)] = lambda s=scenario, v=variant: counted(s, v, 0, *outside)
        trees: dict[str, Path | None] = {"HEAD": None}
        if before is not None:
            trees["before"] = before
        nothing = {
            name: (lambda root=root: instructions.measure(plain[0], plain[1], ("wsgi", "flask"), root))
            for name, root in trees.items()
        }
        with ThreadPoolExecutor(workers) as pool:
            futures = {key: pool.submit(job) for key, job in jobs.items()}
            tree_futures = {name: pool.submit(job) for name, job in nothing.items()}
            out.per = {key: future.result() for key, future in futures.items()}
            out.nothing = {name: future.result() for name, future in tree_futures.items()}
        made = served(port) - calls_before
        expected = 2 * (low + high) * calls  # on and off, low and high
        if made != expected:
            raise SystemExit(f"time_spent bench: the local server answered {made} calls, not {expected}")
    return out


# -- wall time, one process, interleaved -------------------------------------------------------------------
def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    if status[0] != "2":
        raise SystemExit(f"time_spent bench: a request answered {status}")
    return lambda data: None


def run_round(app: Any, path: str, requests: int) -> float:
    """µs per request over one round, every answer checked 2xx."""
    return hot_path.run_round(app, path, requests, _start_response) * 1e6


@dataclass
class Timings:
    rounds: int
    requests: int
    queries: int
    calls: int
    #: path -> variant -> µs per request, one per round
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: what -> µs per query outside any request, one per round
    outside: dict[str, list[float]] = field(default_factory=dict)
    flask_us: float = 0.0  # a bare Flask request (bench.instructions' app and driver), median
    #: SQLAlchemy Core outside a request, one process per variant: variant -> µs per query, one per round
    processes: dict[str, list[float]] = field(default_factory=dict)


def measure_times(
    rounds: int, requests: int, queries: int = QUERIES, calls: int = CALLS, process_rounds: int | None = None
) -> Timings:
    """``process_rounds``: rounds of the process-per-variant SQLAlchemy part (default ``rounds``)."""
    from tests.helpers import call

    out = Timings(rounds, requests, queries, calls)
    with http_server() as port:
        counts = tuple(dict.fromkeys((queries, TWENTY, calls)))
        apps = {
            "capture on": make_app(counts, port),
            "capture off": make_app(counts, port),
            "bare A": make_app(counts, port),
            "bare B": make_app(counts, port),
        }
        monitors = {"capture on": wrap(apps["capture on"], True), "capture off": wrap(apps["capture off"], False)}
        targets = {name: monitors.get(name, app.wsgi_app) for name, app in apps.items()}
        both = ("capture on", "capture off")
        plan = {
            f"/dbapi/{queries}": both,
            f"/raw/{queries}": both,
            f"/sqlalchemy/{queries}": both,
            f"/dbapi/{TWENTY}": tuple(targets),
            f"/sqlalchemy/{TWENTY}": tuple(targets),
            f"/http/{calls}": both,
        }
        warm = max(20, requests // 10)
        calls_before = served(port)
        for path, names in plan.items():
            out.samples[path] = {name: [] for name in names}
            for name in names:
                run_round(targets[name], path, warm)  # warm up
            for index in range(rounds):
                for name in names if index % 2 == 0 else reversed(names):
                    out.samples[path][name].append(run_round(targets[name], path, requests))
        http_requests = len(both) * (warm + rounds * requests)
        if served(port) - calls_before != http_requests * calls:
            raise SystemExit(
                f"time_spent bench: the local server answered {served(port) - calls_before} calls, "
                f"not {http_requests * calls}"
            )
        for name, monitor in monitors.items():
            total = sum(warm + rounds * requests for names in plan.values() if name in names)
            check_log(monitor, total, name == "capture on")

        # Outside a request: the on-middleware is alive, its hooks installed, no request in flight.
        raw, timed, core, select = apps["capture on"].extensions["time_spent_bench"]

        def raw_loop(total: int) -> None:
            for _ in range(total):
                raw.execute("SELECT 1").fetchone()

        def timed_loop(total: int) -> None:
            for _ in range(total):
                timed.execute("SELECT 1").fetchone()

        def core_loop(total: int) -> None:
            for _ in range(total):
                core.execute(select).fetchone()

        loops = {"sqlite3": raw_loop, "sqlite3 through instrument_dbapi": timed_loop, "SQLAlchemy Core": core_loop}
        total = max(200, requests * 5)
        out.outside = {name: [] for name in loops}
        for index in range(rounds):
            for name in loops if index % 2 == 0 else reversed(list(loops)):
                start = time.perf_counter()
                loops[name](total)
                out.outside[name].append((time.perf_counter() - start) / total * 1e6)
        for monitor in monitors.values():
            monitor.close()

    # SQLAlchemy outside a request, against a process where no listener exists: a process each.
    variants = ("no listener", "no-op listeners", "wsgimon's listeners")
    out.processes = {name: [] for name in variants}
    for index in range(rounds if process_rounds is None else process_rounds):
        for name in variants if index % 2 == 0 else reversed(variants):
            out.processes[name].append(_sqlalchemy_process(name, max(500, requests * 10)))

    # The machine's speed on bench.instructions' bare Flask request (its app, its driver).
    from flask import Flask

    flask_app = Flask("instructions")
    flask_app.add_url_rule("/hello", "hello", lambda: "hello")
    per_round = []
    for _ in range(max(3, rounds)):
        start = time.perf_counter()
        for _ in range(max(50, requests)):
            if not (call(flask_app.wsgi_app, "/hello").status or "").startswith("200"):
                raise SystemExit("time_spent bench: the bare Flask app did not answer 200")
        per_round.append((time.perf_counter() - start) / max(50, requests) * 1e6)
    out.flask_us = statistics.median(per_round)
    return out


_SQLALCHEMY_PROCESS = """
import sys
import time

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

variant, total = sys.argv[1], int(sys.argv[2])
if variant == "no-op listeners":
    def nothing(*args):
        pass

    for name in ("before_cursor_execute", "after_cursor_execute", "handle_error"):
        event.listen(Engine, name, nothing)
elif variant == "wsgimon's listeners":
    from wsgimon import MonitorMiddleware
    from wsgimon.wsgi.integrations import sqlalchemy_events

    monitor = MonitorMiddleware(lambda environ, start_response: [], storage="memory://", flush_interval=60)
    if not event.contains(Engine, "do_execute", sqlalchemy_events._execute):
        raise SystemExit("wsgimon's listeners are not installed")
elif Engine._has_events:
    raise SystemExit("a listener exists")
engine = sqlalchemy.create_engine("sqlite://")
connection = engine.connect()
select = sqlalchemy.text("SELECT 1")
for _ in range(total // 5):
    connection.execute(select).fetchone()
start = time.perf_counter()
for _ in range(total):
    if connection.execute(select).scalar() != 1:
        raise SystemExit("SELECT 1 did not give 1")
print((time.perf_counter() - start) / total * 1e6)
"""


def _sqlalchemy_process(variant: str, total: int) -> float:
    """µs per SQLAlchemy Core ``SELECT 1`` outside any request, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _SQLALCHEMY_PROCESS, variant, str(total)],
        cwd=instructions.ROOT,
        env={**os.environ, "PYTHONPATH": str(instructions.ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"time_spent bench: SQLAlchemy process ({variant}) failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip())


# -- the report ------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return statistics.median(values)


def _paired(samples: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(samples[a], samples[b], strict=True)]


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(times: Timings | None, counts: Counts | None) -> str:
    """The tables, then the goals."""
    lines, goals = _report(times, counts)
    if goals:
        lines += ["", "| goal | measured | |", "|---|---|---|", *goals]
    return "\n".join(lines)


def goal_rows(times: Timings | None, counts: Counts | None) -> list[str]:
    """The goals' rows, for the Goals table of ``python -m bench``."""
    return _report(times, counts)[1]


def _report(times: Timings | None, counts: Counts | None) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    goals: list[str] = []
    rate = None  # instructions per µs
    if counts is not None and times is not None and times.flask_us:
        flask_bare = next(
            (c.per_request for c in counts.nothing.get("HEAD", []) if c.variant == "Flask app, bare"), None
        )
        if flask_bare:
            rate = flask_bare / times.flask_us
    # Small hot code runs more instructions per µs than a whole Flask request (whose caches miss):
    # the proxy's own rate, its instructions outside a request over its measured time.
    tight_rate = None
    if counts is not None and times is not None and times.outside:
        proxy_us = _median(times.outside["sqlite3 through instrument_dbapi"]) - _median(times.outside["sqlite3"])
        proxy_instructions = counts.per["outside-dbapi", "off"] - counts.per["outside-raw", "none"]
        if proxy_us > 0:
            tight_rate = proxy_instructions / proxy_us
    if times is not None:
        s = times.samples
        queries, calls = times.queries, times.calls
        lines += [
            f"In time, one process, {times.rounds} interleaved rounds of {times.requests:,} requests "
            "(order reversed every other round); µs per request, median (min–max):",
            "",
            "| request | capture on | capture off | bare A | bare B |",
            "|---|---:|---:|---:|---:|",
        ]
        for path, variants in s.items():
            cells = [
                f"{_median(v):.1f} ({min(v):.1f}–{max(v):.1f})" if (v := variants.get(name)) else "–"
                for name in ("capture on", "capture off", "bare A", "bare B")
            ]
            lines.append(f"| `{path}` | {' | '.join(cells)} |")
        lines += ["", "Per query or call, in time ((on − off) / n, medians of the per-round differences):", ""]
        lines += ["| what | µs per query or call | min–max over rounds |", "|---|---:|---:|"]
        per_query: dict[str, float] = {}
        for label, on_path, off_path, n in (
            ("query through `instrument_dbapi` (capture on − off)", f"/dbapi/{queries}", f"/dbapi/{queries}", queries),
            (
                "query through `instrument_dbapi` with capture on − sqlite3 not instrumented, capture off",
                f"/dbapi/{queries}",
                f"/raw/{queries}",
                queries,
            ),
            ("query through SQLAlchemy Core (capture on − off)", f"/sqlalchemy/{queries}", None, queries),
            ("outbound call through http.client (capture on − off)", f"/http/{calls}", None, calls),
        ):
            on = s[on_path]["capture on"]
            off = s[off_path or on_path]["capture off"]
            differences = [(a - b) / n for a, b in zip(on, off, strict=True)]
            per_query[label] = _median(differences)
            lines.append(
                f"| {label} | {_median(differences):+.2f} | {min(differences):+.2f} – {max(differences):+.2f} |"
            )
        out = times.outside
        raw = _median(out["sqlite3"])
        lines += [
            "",
            "A query with no request in flight (a capturing middleware alive, its hooks installed), µs per "
            "query, median (min–max):",
            "",
            "| query | µs | min–max |",
            "|---|---:|---:|",
        ]
        for name, values in out.items():
            lines.append(f"| {name} | {_median(values):.2f} | {min(values):.2f}–{max(values):.2f} |")
        lines.append(
            f"\nThe proxy outside a request: {_median(out['sqlite3 through instrument_dbapi']) - raw:+.2f} µs a query."
        )
        if times.processes:
            p = times.processes
            none = _median(p["no listener"])
            lines += [
                "",
                "SQLAlchemy Core `SELECT 1` outside any request, a fresh process per variant and round, "
                "µs per query, median (min–max):",
                "",
                "| process | µs | min–max | − no listener |",
                "|---|---:|---:|---:|",
            ]
            for name, values in p.items():
                lines.append(
                    f"| {name} | {_median(values):.2f} | {min(values):.2f}–{max(values):.2f} "
                    f"| {_median(values) - none:+.2f} |"
                )
        goals.append(
            f"| a query, `instrument_dbapi`, in time: ≤ {PER_QUERY_GOAL_US:g} µs added "
            f"| {per_query['query through `instrument_dbapi` (capture on − off)']:+.2f} µs (on − off); "
            f"{per_query[next(k for k in per_query if 'not instrumented' in k)]:+.2f} µs against sqlite3 not "
            f"instrumented | {_mark(max(per_query[k] for k in per_query if 'dbapi' in k) <= PER_QUERY_GOAL_US)} |"
        )
        sa = per_query["query through SQLAlchemy Core (capture on − off)"]
        goals.append(
            f"| a query, SQLAlchemy Core, in time: ≤ {PER_QUERY_GOAL_US:g} µs added | {sa:+.2f} µs "
            f"| {_mark(sa <= PER_QUERY_GOAL_US)} |"
        )
        for kind in ("dbapi", "sqlalchemy"):
            path = f"/{kind}/{TWENTY}"
            ratios = _paired(s[path], "capture on", "capture off")
            noise = _paired(s[path], "bare A", "bare B")
            ratio, bare = _median(ratios), _median(noise)
            within = abs(ratio - 1) <= max(abs(r - 1) for r in noise)
            goals.append(
                f"| {TWENTY} queries a request ({'instrument_dbapi' if kind == 'dbapi' else 'SQLAlchemy Core'}), "
                f"capture on / off within noise | {ratio:.3f} ({min(ratios):.3f}–{max(ratios):.3f}); bare A / "
                f"bare B {bare:.3f} ({min(noise):.3f}–{max(noise):.3f}) | {_mark(within)} |"
            )
    if counts is not None:
        per = counts.per
        q, k = counts.queries, counts.calls

        def us(value: float) -> str:
            if not rate:
                return ""
            return f" ≈ {value / rate:.2f} µs" + (f" ({value / tight_rate:.2f} µs)" if tight_rate else "")

        rows = [
            ("query, `instrument_dbapi`, capture on − off", (per["dbapi", "on"] - per["dbapi", "off"]) / q),
            (
                "query, `instrument_dbapi` with capture on − sqlite3 not instrumented",
                (per["dbapi", "on"] - per["raw", "off"]) / q,
            ),
            (
                "query, `instrument_dbapi` capture off − sqlite3 not instrumented (the proxy alone)",
                (per["dbapi", "off"] - per["raw", "off"]) / q,
            ),
            (
                "query, SQLAlchemy Core, capture on − off (no hook installed)",
                (per["sqlalchemy", "on"] - per["sqlalchemy", "off"]) / q,
            ),
            (
                "outbound call, http.client, capture on − off (no hook installed)",
                (per["http", "on"] - per["http", "off"]) / k,
            ),
            (
                "query outside a request, `instrument_dbapi`: the hook's look-up (a capturing middleware alive − "
                "none capturing)",
                per["outside-dbapi", "on"] - per["outside-dbapi", "off"],
            ),
            (
                "query outside a request, `instrument_dbapi`: the proxy (none capturing − sqlite3 not instrumented)",
                per["outside-dbapi", "off"] - per["outside-raw", "none"],
            ),
            (
                "query outside a request, SQLAlchemy Core, wsgimon's listeners installed − not (SQLAlchemy's "
                "event dispatch included)",
                per["outside-sqlalchemy", "on"] - per["outside-sqlalchemy", "off"],
            ),
        ]
        lines += [
            "",
            f"In instructions (callgrind, the request thread; {q} queries or {k} calls a request; the difference "
            "between two request counts, per request, divided by the queries or calls"
            + (f"; µs at {rate:,.0f} instructions/µs, this machine's rate on a bare Flask request" if rate else "")
            + (
                f", and in brackets at {tight_rate:,.0f}, the rate of the proxy's own code (its instructions "
                "outside a request over its measured time)"
                if tight_rate
                else ""
            )
            + "):",
            "",
            "| request | instructions per request |",
            "|---|---:|",
        ]
        for (scenario, variant), value in per.items():
            if not scenario.startswith("outside-"):
                n = k if scenario == "http" else q
                name = "sqlite3 not instrumented" if scenario == "raw" else scenario
                lines.append(f"| `/{scenario}/{n}`: {name}, capture {variant} | {value:,.0f} |")
        lines += ["", "| added | instructions | |", "|---|---:|---:|"]
        for label, value in rows:
            lines.append(f"| {label} | {value:,.0f} | {us(value).strip(' ≈') or '–'} |")
        call_value = rows[4][1]
        if q == TWENTY:
            # The same question as the timed ratio, without the timing's noise: what a request of
            # twenty queries runs with capture on over the same request with no hook installed.
            for scenario, label in (("dbapi", "instrument_dbapi"), ("sqlalchemy", "SQLAlchemy Core")):
                ratio = per[scenario, "on"] / per[scenario, "off"]
                goals.append(
                    f"| {TWENTY} queries a request ({label}), capture on / off, in instructions: within "
                    f"{INSTRUCTIONS_NOISE:.0%} | {ratio:.3f} | {_mark(ratio <= 1 + INSTRUCTIONS_NOISE)} |"
                )
        if rate:
            for label, value in (
                ("`instrument_dbapi`, capture on − off", rows[0][1]),
                ("`instrument_dbapi` with capture on − sqlite3 not instrumented", rows[1][1]),
                ("SQLAlchemy Core, capture on − no hook installed", rows[3][1]),
            ):
                goals.append(
                    f"| a query, {label}, in instructions: ≤ {PER_QUERY_GOAL_US:g} µs added | "
                    f"{value:,.0f} instructions{us(value)} | {_mark(value / rate <= PER_QUERY_GOAL_US)} |"
                )
            goals.append(
                f"| an outbound call (http.client), in instructions: ≤ {PER_CALL_GOAL_US:g} µs added | "
                f"{call_value:,.0f} instructions{us(call_value)} | {_mark(call_value / rate <= PER_CALL_GOAL_US)} |"
            )
            for label, value in (
                ("`instrument_dbapi`, the hook's look-up", rows[5][1]),
                ("`instrument_dbapi`, the proxy", rows[6][1]),
                ("SQLAlchemy Core, the listeners", rows[7][1]),
            ):
                goals.append(
                    f"| a query outside any request costs about nothing (≤ {OUTSIDE_GOAL_US:g} µs): {label} "
                    f"| {value:,.0f} instructions{us(value)} | {_mark(value / rate <= OUTSIDE_GOAL_US)} |"
                )
        if counts.nothing:
            lines += [
                "",
                "An app that makes neither (`bench.instructions`, 300 and 1,300 requests), this tree against "
                "the commit before the feature:",
                "",
                "| variant | " + " | ".join(counts.nothing) + " |",
                "|---|" + "---:|" * len(counts.nothing),
            ]
            by_tree = {name: {c.variant: c.per_request for c in rows_} for name, rows_ in counts.nothing.items()}
            variants = list(next(iter(by_tree.values())))
            for variant in variants:
                lines.append(f"| {variant} | " + " | ".join(f"{t[variant]:,.0f}" for t in by_tree.values()) + " |")
            for app_kind in ("plain WSGI app", "Flask app"):
                added = {name: t[f"{app_kind}, wrapped"] - t[f"{app_kind}, bare"] for name, t in by_tree.items()}
                lines.append(f"| {app_kind}: wsgimon adds | " + " | ".join(f"{v:,.0f}" for v in added.values()) + " |")
                if "before" in added:
                    head_total = by_tree["HEAD"][f"{app_kind}, wrapped"]
                    before_total = by_tree["before"][f"{app_kind}, wrapped"]
                    change = head_total / before_total - 1
                    goals.append(
                        f"| {app_kind} with no query and no call: instructions per request within "
                        f"{NOTHING_GOAL:.0%} of before the feature | {before_total:,.0f} → {head_total:,.0f} "
                        f"({change:+.2%}; wsgimon's part {added['before']:,.0f} → {added['HEAD']:,.0f}) "
                        f"| {_mark(abs(change) <= NOTHING_GOAL)} |"
                    )
    return lines, goals


def dump(times: Timings | None, counts: Counts | None, path: Path) -> None:
    """The raw numbers, to render again (``python -m bench.time_spent --render PATH``)."""
    import json
    from dataclasses import asdict

    data = {
        "times": None if times is None else asdict(times),
        "counts": None
        if counts is None
        else {
            "queries": counts.queries,
            "calls": counts.calls,
            "per": [[*key, value] for key, value in counts.per.items()],
            "nothing": {tree: [asdict(c) for c in rows] for tree, rows in counts.nothing.items()},
        },
    }
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> tuple[Timings | None, Counts | None]:
    import json

    data = json.loads(path.read_text())
    times = None if data["times"] is None else Timings(**data["times"])
    counts = None
    if data["counts"] is not None:
        raw = data["counts"]
        counts = Counts(
            raw["queries"],
            raw["calls"],
            {(scenario, variant): value for scenario, variant, value in raw["per"]},
            {tree: [instructions.Count(**c) for c in rows] for tree, rows in raw["nothing"].items()},
        )
    return times, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path, help="a checkout of the commit before the feature (git worktree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--low", type=int, default=100, help="requests of the smaller callgrind run")
    parser.add_argument("--high", type=int, default=400, help="requests of the larger callgrind run")
    parser.add_argument("--no-counts", action="store_true", help="time only (no valgrind)")
    parser.add_argument("--render", type=Path, help="render the numbers a run dumped (JSON) and stop")
    parser.add_argument("--dump", type=Path, help="also write the raw numbers as JSON here")
    args = parser.parse_args()
    if args.render:
        print(render(*load(args.render)))
        return
    times = measure_times(args.rounds, args.requests)
    counts = None if args.no_counts else measure_counts(args.before, TWENTY, 5, args.low, args.high, (300, 1300))
    if args.dump:
        dump(times, counts, args.dump)
    print(render(times, counts))


if __name__ == "__main__":
    main()
