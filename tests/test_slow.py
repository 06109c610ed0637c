"""Requests in flight and stack samples of slow ones, through a real threaded server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.servers import wait_until, werkzeug_server
from wsgimon import MonitorMiddleware
from wsgimon.watchdog import watchdog

RELEASE = threading.Event()


def slow_query() -> None:
    """Where the time goes: what the profile must point at."""
    time.sleep(1.5)


def make_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask("slow")

    @app.route("/report")
    def report() -> str:
        slow_query()
        return "done"

    @app.route("/fast")
    def fast() -> str:
        return "fast"

    @app.route("/wait")
    def wait() -> str:
        RELEASE.wait(30)
        return "released"

    options.setdefault("storage", "memory://")
    options.setdefault("slow_request_ms", 300)
    options.setdefault("slow_sample_interval_ms", 50)
    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


@pytest.fixture
def served() -> Iterator[tuple[str, MonitorMiddleware]]:
    RELEASE.clear()
    app, monitor = make_app()
    with werkzeug_server(app) as url:
        yield url, monitor
    RELEASE.set()
    monitor.close()


def test_a_slow_request_is_profiled_and_points_at_the_slow_function(served: tuple[str, MonitorMiddleware]) -> None:
    url, _ = served
    assert httpx.get(url + "/report", timeout=30).text == "done"
    answer = httpx.get(url + "/monitoring/slow", timeout=10).json()
    (row,) = answer["slow"]
    assert row["endpoint"] == "/report" and row["duration_ms"] >= 1500
    assert row["samples"] >= 5
    assert row["app_frame"]["function"] == "slow_query"
    shares = {frame["function"]: frame["share"] for frame in row["frames"]}
    assert shares["slow_query"] > 0.5, "slow_query is on most samples"
    assert all(set(frame) == {"file", "line", "function"} for stack in row["stacks"] for frame in stack["frames"])
    sampled = [r for r in httpx.get(url + "/monitoring/requests").json()["requests"] if r["endpoint"] == "/report"]
    assert sampled and sampled[0]["sampled"] is True


def test_fast_requests_are_never_sampled(served: tuple[str, MonitorMiddleware]) -> None:
    url, _ = served
    taken = watchdog().samples_taken
    with httpx.Client(base_url=url) as client:
        for _ in range(200):
            client.get("/fast")
    assert watchdog().samples_taken == taken
    assert httpx.get(url + "/monitoring/slow").json()["slow"] == []
    assert not any(r["sampled"] for r in httpx.get(url + "/monitoring/requests").json()["requests"])


def test_in_flight_counts_are_exact_under_16_concurrent_requests(served: tuple[str, MonitorMiddleware]) -> None:
    url, _ = served
    with ThreadPoolExecutor(16) as pool:
        waiting = [pool.submit(httpx.get, url + "/wait", timeout=30) for _ in range(16)]
        counted = wait_until(
            lambda: (n := httpx.get(url + "/monitoring/stats").json()["in_flight"])["process"] == 16 and n
        )
        assert counted["oldest_s"] > 0
        RELEASE.set()
        assert all(f.result().text == "released" for f in waiting)
    assert httpx.get(url + "/monitoring/stats").json()["in_flight"]["process"] == 0


def test_a_stuck_request_degrades_health_while_it_runs() -> None:
    RELEASE.clear()
    app, monitor = make_app(stuck_request_s=0.5)
    with werkzeug_server(app) as url, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx.get, url + "/wait", timeout=30)
        check = lambda: httpx.get(url + "/monitoring/health").json()["checks"]["in_flight"]  # noqa: E731
        degraded = wait_until(lambda: (c := check())["status"] == "degraded" and c)
        assert "GET /wait" in degraded["detail"]
        RELEASE.set()
        stuck.result()
        wait_until(lambda: check()["status"] == "ok")
    monitor.close()
