"""Requests in flight and stack samples of slow ones, through a real threaded server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.servers import gunicorn_server, wait_until, werkzeug_server
from wsgimon import MonitorMiddleware
from wsgimon.recording.sampler import sampler

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
    taken = sampler().samples_taken
    with httpx.Client(base_url=url) as client:
        for _ in range(200):
            client.get("/fast")
    assert sampler().samples_taken == taken
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


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_under_gunicorn_every_worker_shows_the_slow_requests_and_the_deployments_requests_in_flight(
    worker_class: str, tmp_path: Path
) -> None:
    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/slow.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.3",
        "WSGIMON_SLOW_REQUEST_MS": "300",
        "WSGIMON_SLOW_SAMPLE_INTERVAL_MS": "50",
        "WSGIMON_STUCK_REQUEST_S": "1.5",
    }
    # --threads would turn a sync worker into a gthread one.
    threads = ("--threads", "8") if worker_class == "gthread" else ()
    args = ("-w", "2", "-k", worker_class, *threads, "--timeout", "30")
    with gunicorn_server("tests.slow_app:app", *args, env=env) as (url, _master):
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(lambda _: httpx.get(url + "/report", timeout=30).text, range(2))) == ["done"] * 2

        def slow_rows() -> list[dict[str, Any]]:
            # A fresh connection each time: any worker may answer, each must see both.
            rows: list[dict[str, Any]] = httpx.get(url + "/monitoring/slow", timeout=10).json()["slow"]
            return rows

        wait_until(lambda: all(len(slow_rows()) == 2 for _ in range(6)), timeout=15)
        assert {row["app_frame"]["function"] for row in slow_rows()} == {"slow_query"}

        # Held requests: a sync worker serves one at a time, so it holds one and the other answers.
        held = 1 if worker_class == "sync" else 6
        holders = ThreadPoolExecutor(held)
        futures = [holders.submit(httpx.get, url + "/hold?s=4", timeout=30) for _ in range(held)]

        def in_flight() -> dict[str, Any]:
            answer: dict[str, Any] = httpx.get(url + "/monitoring/stats", timeout=10).json()["in_flight"]
            return answer

        wait_until(lambda: all(in_flight()["deployment"] == held for _ in range(4)), timeout=10)
        if worker_class == "sync":
            # The worker answering is not the one holding the request: its view is the deployment's.
            assert in_flight()["process"] == 0 and len(slow_rows()) == 2
        check = wait_until(
            lambda: (
                (c := httpx.get(url + "/monitoring/health", timeout=10).json()["checks"]["in_flight"])["status"]
                == "degraded"
                and c
            ),
            timeout=10,
        )
        assert "GET /hold" in check["detail"]
        assert [f.result().text for f in futures] == ["held"] * held
        holders.shutdown()
        wait_until(lambda: all(in_flight()["deployment"] == 0 for _ in range(4)), timeout=10)
