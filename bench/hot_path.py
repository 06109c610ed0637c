"""In-process cost per request: a bare Flask app against the same app wrapped.

Every variant serves the same request in the same process; rounds are
interleaved (A B C A B C …) so drift of the machine hits all variants alike,
and the median round is reported with the min–max spread.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from flask import Flask

from wsgimon import MonitorMiddleware

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def make_flask() -> Flask:
    app = Flask("bench")

    @app.route("/hello")
    def hello() -> str:
        return "hello"

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "item", "tags": ["a", "b"]}

    return app


class ClockFloor:
    """The least any timing middleware can cost: read the clock twice and append."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.samples: list[float] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start = time.perf_counter()
        body = self.app(environ, start_response)
        self.samples.append(time.perf_counter() - start)
        if len(self.samples) > 100_000:
            self.samples.clear()
        return body


class StatusBodyFloor:
    """The least a middleware that reports status and errors can cost.

    It must see the status (a wrapped ``start_response``) and the end of the
    body (a generator around it, closed by the server): that and one append,
    nothing else — no route, no exceptions, no fail-open guards.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.records: list[tuple[float, float, str | None]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start = time.perf_counter()
        seen: list[str] = []

        def observed(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self._follow(self.app(environ, observed), start, seen)

    def _follow(self, body: Iterable[bytes], start: float, seen: list[str]) -> Iterator[bytes]:
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self.records.append((start, time.perf_counter(), seen[-1] if seen else None))
            if len(self.records) > 100_000:
                self.records.clear()


def variants() -> dict[str, WSGIApp]:
    bare = make_flask()
    floor = make_flask()
    floor.wsgi_app = ClockFloor(floor.wsgi_app)  # type: ignore[method-assign]
    monitored = make_flask()
    monitored.wsgi_app = MonitorMiddleware(monitored.wsgi_app, storage="memory://")  # type: ignore[method-assign]
    shared = make_flask()
    directory = tempfile.mkdtemp(prefix="wsgimon-bench-")
    shared.wsgi_app = MonitorMiddleware(  # type: ignore[method-assign]
        shared.wsgi_app, storage=f"sqlite:///{directory}/bench.sqlite3"
    )
    status_floor = make_flask()
    status_floor.wsgi_app = StatusBodyFloor(status_floor.wsgi_app)  # type: ignore[method-assign]
    return {
        "bare": bare,
        "floor (clock + append)": floor,
        "floor (status + body)": status_floor,
        "wsgimon (memory)": monitored,
        "wsgimon (sqlite)": shared,
    }


def environ_for(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


def run_round(
    app: WSGIApp, path: str, requests: int, start_response: Callable[..., Callable[[bytes], None]] = _start_response
) -> float:
    """Seconds per request over one round (``start_response`` may check each answer)."""
    template = environ_for(path)
    start = time.perf_counter()
    for _ in range(requests):
        body = app(dict(template), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - start) / requests


@dataclass
class Row:
    endpoint: str
    variant: str
    median_us: float
    low_us: float
    high_us: float
    ratio: float
    overhead_us: float


def measure(paths: dict[str, str], rounds: int, requests: int) -> list[Row]:
    apps = variants()
    rows: list[Row] = []
    for kind, path in paths.items():
        for app in apps.values():
            run_round(app, path, max(50, requests // 10))  # warm up caches and lazy starts
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(run_round(app, path, requests) * 1e6)
        bare = statistics.median(samples["bare"])
        for name, values in samples.items():
            median = statistics.median(values)
            rows.append(Row(kind, name, median, min(values), max(values), median / bare, median - bare))
    return rows


def render(rows: list[Row]) -> str:
    lines = [
        "| endpoint | variant | µs/request (median) | min–max | ratio to bare | overhead µs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.endpoint} | {row.variant} | {row.median_us:.1f} | {row.low_us:.1f}–{row.high_us:.1f} "
            f"| {row.ratio:.3f} | {row.overhead_us:+.1f} |"
        )
    return "\n".join(lines)
