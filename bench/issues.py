"""What grouping failures into issues costs, off the request thread.

The request path does nothing more for a failing request than before (the exception is
handed to the recorder as it was). The recorder, when it folds a flush's records, gives each
failing record its issue: a lookup by stack shape, and, the first time a shape is seen, its
fingerprint (the innermost frame of the app's code per chained exception, its source line
read through linecache). Measured here on real records made by a Flask app in this process:

- the fold of N failing requests (one helper failing under three routes) against the fold
  of N requests that succeed, per request;
- the fingerprint of a new stack shape, once per shape.

Each run checks what it measured: the failing batch holds one issue counting every request.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from flask import Flask

from wsgimon import MonitorMiddleware
from wsgimon.recording.fingerprint import Fingerprinter
from wsgimon.wsgi.captured import CapturedException


@dataclass
class IssueCost:
    requests: int
    fold_ok_us: float  # per request
    fold_failing_us: float  # per request
    new_shape_us: float  # once per distinct stack shape


def _app() -> tuple[Flask, MonitorMiddleware]:
    app = Flask("bench-issues")
    app.logger.disabled = True

    def parse(raw: str) -> int:
        return int(raw)

    @app.route("/ok/<raw>")
    def ok(raw: str) -> str:
        return raw

    for name in ("orders", "refunds", "invoices"):
        app.add_url_rule(f"/{name}/<raw>", name, lambda raw: str(parse(raw)))
    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://", flush_interval=60)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def _serve(monitor: MonitorMiddleware, paths: list[str]) -> None:
    from tests.helpers import call

    for path in paths:
        call(monitor, path)


def _fold_us(monitor: MonitorMiddleware, paths: list[str]) -> tuple[float, int, int]:
    """(µs per request to fold, issues in the batch, their occurrences) for records of ``paths``."""
    _serve(monitor, paths)
    recorder = monitor.recorder
    start = time.perf_counter()
    batch = recorder._fold()
    elapsed = time.perf_counter() - start
    if batch.request_count != len(paths):
        raise SystemExit(f"issues bench: folded {batch.request_count} of {len(paths)} requests")
    return elapsed / len(paths) * 1e6, len(batch.issues), sum(issue.count for issue in batch.issues.values())


def measure(requests: int = 2000, rounds: int = 5) -> IssueCost:
    _, monitor = _app()
    try:
        ok_paths = [f"/ok/{n}" for n in range(requests)]
        failing = [f"/{('orders', 'refunds', 'invoices')[n % 3]}/{n}x" for n in range(requests)]
        ok_costs, failing_costs = [], []
        _fold_us(monitor, failing[:50])  # the shape's fingerprint, once, outside the rounds
        for _ in range(rounds):
            cost, issues, _count = _fold_us(monitor, ok_paths)
            if issues:
                raise SystemExit("issues bench: successful requests made an issue")
            ok_costs.append(cost)
            cost, issues, count = _fold_us(monitor, failing)
            if (issues, count) != (1, requests):
                raise SystemExit(f"issues bench: expected 1 issue of {requests}, got {issues} of {count}")
            failing_costs.append(cost)
    finally:
        monitor.close()
    return IssueCost(requests, statistics.median(ok_costs), statistics.median(failing_costs), _new_shape_us())


def _new_shape_us(shapes: int = 200) -> float:
    """A fresh fingerprinter per exception: every one is a shape never seen."""

    def level(depth: int) -> None:
        if depth:
            level(depth - 1)
        raise KeyError("missing")

    captured = []
    for _ in range(shapes):
        try:
            level(20)
        except KeyError as exc:
            captured.append(CapturedException(exc))
    start = time.perf_counter()
    for exc in captured:
        Fingerprinter().group(exc)
    return (time.perf_counter() - start) / shapes * 1e6


def render(cost: IssueCost) -> str:
    extra = cost.fold_failing_us - cost.fold_ok_us
    return "\n".join(
        [
            "| what | µs |",
            "|---|---:|",
            f"| fold of a successful request (per request, {cost.requests:,} a flush) | {cost.fold_ok_us:.2f} |",
            f"| fold of a failing request, its issue included (one helper under three routes) | "
            f"{cost.fold_failing_us:.2f} |",
            f"| of which failing (traceback kept, issue looked up by stack shape) | {extra:+.2f} |",
            f"| fingerprint of a stack shape seen for the first time (22 frames) | {cost.new_shape_us:.1f} |",
            "",
            "All of it runs in the flusher thread, never on the request thread; the request path of a failing "
            "request is the same as before issues existed.",
        ]
    )
