"""Many apps in one process, as app factories and test suites make them.

What wrapping costs at construction (against making the Flask app itself), and
what is left after N apps were made, served a few requests each and dropped:
threads, apps still alive after a full GC, RSS, elapsed time — plain beside
wrapped. Each variant runs in a fresh process (``python -m bench.lifecycle``).
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from flask import Flask

from wsgimon import MonitorMiddleware

CONSTRUCTION_GOAL = 1.0  # constructing the middleware costs at most this many Flask apps


def _app(wrapped: bool) -> Flask:
    app = Flask("factory")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    app.logger.disabled = True
    if wrapped:
        app.wsgi_app = MonitorMiddleware(app.wsgi_app, storage="memory://")  # type: ignore[method-assign]
    return app


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def construction_us(rounds: int = 7, per_round: int = 200) -> dict[str, float]:
    """Median µs to make a Flask app with two routes, and to wrap one."""
    _app(True)  # what is built once per process is not what an app costs
    flask_us, wrap_us = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        apps = [_app(False) for _ in range(per_round)]
        flask_us.append((time.perf_counter() - started) / per_round * 1e6)
        started = time.perf_counter()
        for app in apps:
            MonitorMiddleware(app.wsgi_app, storage="memory://")
        wrap_us.append((time.perf_counter() - started) / per_round * 1e6)
        del apps
        gc.collect()
    return {"flask_us": statistics.median(flask_us), "wrap_us": statistics.median(wrap_us)}


def many_apps(wrapped: bool, count: int) -> dict[str, Any]:
    rss_before = _rss()
    started = time.perf_counter()
    alive: list[weakref.ref[Flask]] = []
    for n in range(count):
        app = _app(wrapped)
        client = app.test_client()
        with client.get(f"/items/{n}"):
            pass
        with client.get("/boom"):
            pass
        alive.append(weakref.ref(app))
        del app, client
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gc.collect()
        if threading.active_count() == 1:
            break
        time.sleep(0.05)
    gc.collect()
    return {
        "apps": count,
        "seconds": round(elapsed, 2),
        "threads": threading.active_count(),
        "alive": sum(ref() is not None for ref in alive),
        "rss_mib": round(_rss() / 2**20, 1),
        "rss_growth_mib": round((_rss() - rss_before) / 2**20, 1),
    }


def measure(count: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant in ("plain", "wrapped"):
        output = subprocess.run(
            [sys.executable, "-m", "bench.lifecycle", variant, str(count)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])
    output = subprocess.run(
        [sys.executable, "-m", "bench.lifecycle", "construct"], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    results["construction"] = json.loads(output.strip().splitlines()[-1])
    return results


def render(results: dict[str, Any]) -> str:
    built = results["construction"]
    ratio = built["wrap_us"] / built["flask_us"]
    mark = "met" if ratio <= CONSTRUCTION_GOAL else "**not met**"
    lines = [
        f"Constructing `MonitorMiddleware(app.wsgi_app)`: {built['wrap_us']:.0f} µs, "
        f"against {built['flask_us']:.0f} µs for `Flask()` with two routes: {ratio:.2f} × "
        f"(goal ≤ {CONSTRUCTION_GOAL:g} ×: {mark}).",
        "",
        "| | apps | seconds | threads left | apps alive after GC | RSS (MiB) | RSS growth (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in ("plain", "wrapped"):
        r = results[variant]
        lines.append(
            f"| {variant} | {r['apps']} | {r['seconds']} | {r['threads']} | {r['alive']} | {r['rss_mib']} "
            f"| {r['rss_growth_mib']:+} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "construct":
        print(json.dumps(construction_us()))
    else:
        print(json.dumps(many_apps(sys.argv[1] == "wrapped", int(sys.argv[2]))))
