"""?window= on the statistics endpoints and /monitoring/timeseries, over seeded history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.seeding import batch_of, process
from wsgimon import MonitorMiddleware
from wsgimon.stats.time_windows import DAY, HOUR


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[MonitorMiddleware]:
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{tmp_path}/w.sqlite3")
    now = time.time()
    history = [
        (now - 90, "/recent", "GET", 200, 10.0),
        (now - 100, "/recent", "GET", 500, 30.0),
        (now - 3 * HOUR, "/hours", "GET", 200, 20.0),
        (now - 3 * DAY, "/days", "POST", 404, 5.0),
        (now - 20 * DAY, "/old", "GET", 200, 1.0),
    ]
    monitor.store.write(batch_of(history), process())
    yield monitor
    monitor.close()


@pytest.mark.parametrize(("window", "count"), [("5m", 2), ("1h", 2), ("24h", 3), ("7d", 4), ("30d", 5), ("all", 5)])
def test_stats_window(monitor: MonitorMiddleware, window: str, count: int) -> None:
    stats = get_json(monitor, f"/monitoring/stats?window={window}")
    assert stats["requests"] == count and stats["window"] == window


def test_default_window_is_24h(monitor: MonitorMiddleware) -> None:
    assert get_json(monitor, "/monitoring/stats")["window"] == "24h"
    names = {row["endpoint"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert names == {"/recent", "/hours"}


def test_endpoints_and_errors_follow_the_window(monitor: MonitorMiddleware) -> None:
    week = get_json(monitor, "/monitoring/endpoints?window=7d")["endpoints"]
    assert {row["endpoint"] for row in week} == {"/recent", "/hours", "/days"}
    errors_5m = get_json(monitor, "/monitoring/errors?window=5m")["errors"]
    assert [(row["type"], row["count"]) for row in errors_5m] == [("ValueError", 1)]
    assert errors_5m[0]["message"].startswith("failed at")
    errors_week = get_json(monitor, "/monitoring/errors?window=7d")["errors"]
    assert {row["type"] for row in errors_week} == {"ValueError", "404 Not Found"}


def test_timeseries_points_with_zeros(monitor: MonitorMiddleware) -> None:
    call(monitor, "/live")
    series = get_json(monitor, "/monitoring/timeseries?window=1h&step=1m")
    assert series["step_s"] == 60
    points = series["points"]
    assert 60 <= len(points) <= 61
    assert sum(p["requests"] for p in points) == 3
    assert sum(p["errors"] for p in points) == 1
    assert sum(1 for p in points if p["requests"] == 0) >= 57
    assert all(p["p95"] is None for p in points if p["requests"] == 0)
    assert set(points[0]) == {"time", "requests", "errors", "client_errors", "avg", "p50", "p95", "p99"}
    times = [p["time"] for p in points]
    assert times == sorted(times)


def test_timeseries_of_one_endpoint_and_long_windows(monitor: MonitorMiddleware) -> None:
    one = get_json(monitor, "/monitoring/timeseries?window=24h&step=1h&endpoint=/hours&method=GET")
    assert sum(p["requests"] for p in one["points"]) == 1
    month = get_json(monitor, "/monitoring/timeseries?window=30d&step=1d")
    assert month["step_s"] == DAY and sum(p["requests"] for p in month["points"]) == 5
    default = get_json(monitor, "/monitoring/timeseries")
    assert default["window"] == "24h" and len(default["points"]) <= 300


@pytest.mark.parametrize(
    "query",
    [
        "window=5x",
        "window=0m",
        "window=400d",
        "window=30s",
        "step=7m",
        "step=1m&window=30d",
        "step=1m&window=7d",
        "endpoint=/hours",
        "bogus=1",
    ],
)
def test_bad_timeseries_parameters(monitor: MonitorMiddleware, query: str) -> None:
    result = call(monitor, "/monitoring/timeseries", query=query)
    assert result.status is not None and result.status.startswith("400"), query
    assert json.loads(result.body)["error"]


@pytest.mark.parametrize("path", ["/monitoring/stats", "/monitoring/endpoints", "/monitoring/errors"])
def test_bad_window_is_a_400(monitor: MonitorMiddleware, path: str) -> None:
    result = call(monitor, path, query="window=yesterday")
    assert result.status is not None and result.status.startswith("400")
    assert "window" in json.loads(result.body)["error"]


def test_health_reports_the_deployment(monitor: MonitorMiddleware) -> None:
    call(monitor, "/x")
    health = get_json(monitor, "/monitoring/health")
    import os

    pids = [p["pid"] for p in health["deployment"]["processes"]]
    assert os.getpid() in pids
    assert health["process"]["uptime_s"] <= health["uptime_s"] + 1


@pytest.mark.parametrize("storage", ["memory://", "sqlite"])
def test_sparklines_average_each_slot_in_both_stores(tmp_path: Path, storage: str) -> None:
    url = f"sqlite:///{tmp_path}/s.sqlite3" if storage == "sqlite" else storage
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=url)
    now = time.time()
    history = [
        (now - 90, "/spark", "GET", 200, 10.0),
        (now - 100, "/spark", "GET", 200, 30.0),
        (now - 50 * 60, "/spark", "GET", 200, 4.0),
        (now - 3 * HOUR, "/spark", "GET", 200, 999.0),  # outside the window
    ]
    monitor.store.write(batch_of(history), process())
    rows = get_json(monitor, "/monitoring/endpoints?window=1h&sparkline=4")["endpoints"]
    assert [(row["endpoint"], row["sparkline"]) for row in rows] == [("/spark", [4.0, None, None, 20.0])]
    monitor.close()
