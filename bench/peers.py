"""wsgimon against the tools a Flask user would pick instead, in-process, one worker per variant.

Some peers patch Flask globally (sentry-sdk), so every variant lives in its own
worker process. The driver interleaves rounds across the workers (A B C … A B C
…), only one of them running at a time, and reports the median µs/request and
its ratio to the bare app.

    python -m bench.peers [--rounds 9] [--requests 3000]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from .hot_path import ClockFloor, StatusBodyFloor, make_flask, run_round

PATHS = {"trivial": "/hello", "json + route param": "/items/42", "404": "/no/such/page"}


def _bare() -> Flask:
    return make_flask()


def _floor() -> Flask:
    app = make_flask()
    app.wsgi_app = ClockFloor(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _status_floor() -> Flask:
    app = make_flask()
    app.wsgi_app = StatusBodyFloor(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _wsgimon(storage: str, **options: Any) -> Callable[[], Flask]:
    def build() -> Flask:
        from wsgimon import MonitorMiddleware

        app = make_flask()
        postgres = os.environ.get("WSGIMON_BENCH_POSTGRES")
        if "{postgres}" in storage and not postgres:
            raise SystemExit("no PostgreSQL server for this run")
        url = storage.format(tmp=tempfile.mkdtemp(prefix="wsgimon-bench-"), postgres=postgres)
        app.wsgi_app = MonitorMiddleware(app.wsgi_app, storage=url, **options)  # type: ignore[method-assign]
        return app

    return build


def _wsgimon_alerting() -> Flask:
    """wsgimon with alerts on, every delivery hanging on a webhook that never answers.

    Before the rounds start the app raises a few times, so deliveries are stuck (retried)
    and the alert rules run every second while the requests are measured.
    """
    import socket
    import threading

    from wsgimon import MonitorMiddleware

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept_and_never_answer() -> None:
        while True:
            connection, _ = listener.accept()
            held.append(connection)

    threading.Thread(target=accept_and_never_answer, daemon=True).start()
    app = make_flask()
    app.logger.disabled = True

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("bench failure")

    url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/webhooks/1/bench"
    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://", discord_webhook_url=url, alert_interval_s=1.0)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    client = app.test_client()
    for _ in range(5):
        with client.get("/boom"):
            pass
    monitor.flush()
    return app


def _prometheus() -> Flask:
    from prometheus_client import CollectorRegistry
    from prometheus_flask_exporter import PrometheusMetrics

    app = make_flask()
    PrometheusMetrics(app, registry=CollectorRegistry())
    return app


def _monitoring_dashboard() -> Flask:
    import flask_monitoringdashboard as dashboard

    app = make_flask()
    dashboard.config.database_name = f"sqlite:///{tempfile.mkdtemp()}/fmd.db"
    dashboard.bind(app)
    return app


def _opentelemetry() -> Flask:
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)
    app = make_flask()
    FlaskInstrumentor().instrument_app(app)
    return app


def _sentry() -> Flask:
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.transport import Transport

    class Discard(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            return None

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        traces_sample_rate=1.0,
        integrations=[FlaskIntegration()],
        transport=Discard,
        default_integrations=True,
    )
    return make_flask()


# Peers that patch Flask itself, not one app: a bare app in their process is not bare.
_PATCH_FLASK_GLOBALLY = {"sentry-sdk (tracing)"}

VARIANTS: dict[str, Callable[[], Flask]] = {
    "bare Flask": _bare,
    "floor (clock + append)": _floor,
    "floor (status + body)": _status_floor,
    "wsgimon (memory)": _wsgimon("memory://"),
    "wsgimon (sqlite)": _wsgimon("sqlite:///{tmp}/bench.sqlite3"),
    "wsgimon (sqlite, release)": _wsgimon("sqlite:///{tmp}/bench.sqlite3", release="bench-1"),
    # Present when the run started a PostgreSQL server (bench/postgres.py); skipped otherwise.
    "wsgimon (postgresql)": _wsgimon("{postgres}"),
    "wsgimon (memory, alerts hanging)": _wsgimon_alerting,
    "wsgimon (memory, no sampler)": _wsgimon("memory://", slow_request_ms=0),
    "prometheus-flask-exporter": _prometheus,
    "Flask-MonitoringDashboard": _monitoring_dashboard,
    "OpenTelemetry Flask + SDK": _opentelemetry,
    "sentry-sdk (tracing)": _sentry,
}


def worker(name: str) -> None:
    """Build one variant, then answer ``<requests> <path>`` with µs/request, ``mem <n> <s>`` with RSS.

    A round also runs a bare app in the same process just before or after the
    variant, when the variant leaves other apps alone: the ratio of the two is
    free of what differs between processes (memory layout, hash seeds).
    """
    bare = None if name in _PATCH_FLASK_GLOBALLY else make_flask()
    app = VARIANTS[name]()
    for path in PATHS.values():
        run_round(app, path, 200)
        if bare is not None:
            run_round(bare, path, 200)
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "mem":
            print("RESULT", memory_growth(app, int(command[1]), float(command[2])), flush=True)
            continue
        requests, path, bare_first = int(command[0]), command[1], command[2:] == ["bare-first"]
        bare_us = -1.0
        if bare is not None and bare_first:
            bare_us = run_round(bare, path, requests) * 1e6
        variant_us = run_round(app, path, requests) * 1e6
        if bare is not None and not bare_first:
            bare_us = run_round(bare, path, requests) * 1e6
        print(f"RESULT {variant_us:.3f} {bare_us:.3f}", flush=True)


def _rss() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_growth(app: Flask, requests: int, max_seconds: float) -> str:
    """RSS after a tenth of the requests (warm-up) and at the end, over 100,000 distinct paths."""
    deadline = time.monotonic() + max_seconds
    warm = 0
    done = 0
    for done in range(1, requests + 1):
        run_round(app, f"/items/{done % 100_000}", 1)
        if done == requests // 10:
            gc.collect()
            warm = _rss()
        if done % 1000 == 0 and time.monotonic() > deadline:
            break
    gc.collect()
    return f"{done} {warm or _rss()} {_rss()}"


def start(name: str) -> subprocess.Popen[str] | None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.peers", "--worker", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # some peers print banners first
        if line.strip() == "ready":
            return process
    process.kill()
    process.wait()
    return None


_ANSWER = re.compile(r"RESULT (-?[0-9.]+(?: -?[0-9.]+)*)")
_ANSWER_TIMEOUT_S = 600.0


def _result(process: subprocess.Popen[str]) -> str:
    """The worker's answer; peers print their own messages on stdout too, even mid-line.

    The answer is found anywhere on a line (a peer may have printed a partial line just
    before it), and a worker silent for ten minutes is stopped: an error, not a hang.
    """
    assert process.stdout is not None
    watchdog = threading.Timer(_ANSWER_TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            answers = _ANSWER.findall(line)
            if answers:
                return str(answers[-1])
    finally:
        watchdog.cancel()
    raise RuntimeError("a benchmark worker exited, or was stopped after ten minutes, without an answer")


Samples = dict[str, dict[str, tuple[list[float], list[float]] | None]]


def measure(rounds: int, requests: int) -> Samples:
    """Per endpoint kind and variant: µs/request of the variant and of a bare app in its process."""
    workers = {name: start(name) for name in VARIANTS}
    results: Samples = {kind: {} for kind in PATHS}
    try:
        for kind, path in PATHS.items():
            samples: dict[str, tuple[list[float], list[float]]] = {
                name: ([], []) for name, w in workers.items() if w is not None
            }
            for round_number in range(rounds):
                # Which of the pair runs first alternates: the second one inherits the first's caches.
                order = " bare-first" if round_number % 2 else ""
                for name, process in workers.items():
                    if process is None:
                        continue
                    assert process.stdin is not None and process.stdout is not None
                    process.stdin.write(f"{requests} {path}{order}\n")
                    process.stdin.flush()
                    variant_us, bare_us = (float(v) for v in _result(process).split())
                    samples[name][0].append(variant_us)
                    if bare_us >= 0:
                        samples[name][1].append(bare_us)
            for name in VARIANTS:
                results[kind][name] = samples.get(name)
    finally:
        for process in workers.values():
            if process is not None:
                process.kill()
                process.wait()
    return results


def measure_memory(requests: int, max_seconds: float) -> dict[str, tuple[int, int, int] | None]:
    """Per variant: (requests done, RSS after warm-up, RSS at the end)."""
    out: dict[str, tuple[int, int, int] | None] = {}
    for name in VARIANTS:
        process = start(name)
        if process is None:
            out[name] = None
            continue
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(f"mem {requests} {max_seconds}\n")
            process.stdin.flush()
            try:
                done, warm, end = (int(v) for v in _result(process).split())
            except RuntimeError:
                out[name] = None
                continue
            out[name] = (done, warm, end)
        finally:
            process.kill()
            process.wait()
    return out


def render_memory(results: dict[str, tuple[int, int, int] | None]) -> str:
    lines = [
        "| variant | requests | RSS after warm-up (MiB) | RSS at end (MiB) | growth (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in results.items():
        if values is None:
            lines.append(f"| {name} | not installed, or no answer | | | |")
            continue
        done, warm, end = values
        mib = 1024 * 1024
        lines.append(f"| {name} | {done:,} | {warm / mib:.1f} | {end / mib:.1f} | {(end - warm) / mib:+.1f} |")
    return "\n".join(lines)


def render(results: Samples) -> str:
    lines = [
        "| endpoint | variant | µs/request (median) | min–max | ratio to bare | ratio to bare, same process |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, per_variant in results.items():
        bare_samples = per_variant.get("bare Flask")
        bare = statistics.median(bare_samples[0]) if bare_samples else None
        for name, values in per_variant.items():
            if not values:
                lines.append(f"| {kind} | {name} | not installed | | | |")
                continue
            variant_us, local_bare_us = values
            median = statistics.median(variant_us)
            ratio = f"{median / bare:.2f}" if bare else "–"
            # Rounds pair the variant with a bare app run just after it in the same process.
            local = (
                f"{statistics.median(v / b for v, b in zip(variant_us, local_bare_us, strict=True)):.3f}"
                if local_bare_us
                else "– (patches Flask itself)"
            )
            lines.append(
                f"| {kind} | {name} | {median:.1f} | {min(variant_us):.1f}–{max(variant_us):.1f} | {ratio} | {local} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    print(render(measure(args.rounds, args.requests)))


if __name__ == "__main__":
    main()
