"""The demo starts on its own and shows every panel from its first minute, with history up to now."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_app import create_app
from demo_app.__main__ import demo_options
from demo_app.history import OLD_RELEASE, REGRESSED, RELEASE, seed_history
from demo_app.jobs import CHECKINS
from tests.servers import ROOT, free_port, wait_until
from wsgimon.stats.time_windows import MINUTE

HISTORY_H = 24.0


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@contextmanager
def demo(store: Path) -> Iterator[str]:
    """``python -m demo_app --traffic`` on a free port and the SQLite file ``store``; its base URL once it
    answers (the backfill included, within the README's 25 s)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSGIMON_STORAGE": f"sqlite:///{store}"}
    env.pop("PYTHONDEVMODE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "demo_app", "--port", str(port), "--traffic", "--rate", "60"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert process.poll() is None, "the demo exited"
            try:
                return httpx.get(url + "/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=25, interval=0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def get(url: str, path: str, **params: Any) -> Any:
    answer = httpx.get(url + "/monitoring/" + path, params=params, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def minutes_of_last_hour(url: str) -> list[tuple[str, int]]:
    return [(point["time"], point["requests"]) for point in get(url, "timeseries", window="1h", step="1m")["points"]]


def no_gap(url: str) -> bool:
    """Every minute of the last hour, up to the current one, has requests."""
    return all(requests for _time, requests in minutes_of_last_hour(url))


@pytest.mark.slow
def test_demo_shows_every_panel_and_continues_after_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "demo.sqlite3"
    with demo(store) as url:
        started = time.time()

        def enough_traffic() -> bool:
            stats = get(url, "stats")
            return bool(stats["requests"] >= 40 and stats["status_codes"].get("404"))

        wait_until(enough_traffic, timeout=30, interval=0.2)
        index = httpx.get(url + "/").text
        assert 'href="/monitoring/"' in index and "/test/error" in index
        assert "wsgimon" in httpx.get(url + "/monitoring/").text
        assert get(url, "stats", window="24h")["requests"] > 10_000, "the demo backfills a day of history"
        endpoints = {row["endpoint"] for row in get(url, "endpoints")["endpoints"]}
        assert {REGRESSED, "/test/normal", "/orders"} <= endpoints

        # History up to the moment it started: no gap in the charts.
        wait_until(lambda: no_gap(url), timeout=20, interval=0.5)
        # The deployment started with the history, and each error first with it too.
        uptime = get(url, "stats")["uptime_s"]
        assert HISTORY_H * 3600 - 120 <= uptime <= HISTORY_H * 3600 + 300
        now = time.time()
        failures = {row["type"]: row for row in get(url, "errors", window="24h")["errors"]}
        value_error = failures["ValueError"]
        assert seconds(value_error["first_seen"]) < now - 3 * 3600 < now - 120 < seconds(value_error["last_seen"])
        issue = next(row for row in get(url, "issues")["issues"] if row["type"] == "ValueError")
        assert seconds(issue["first_seen"]) < now - 3 * 3600 and issue["count"] == issue["total"] > 100
        assert {row["release"] for row in issue["releases"]} == {OLD_RELEASE, RELEASE}

        # Two releases, the newer one slower on one endpoint.
        releases = get(url, "releases")
        assert releases["current"] == RELEASE
        assert [row["release"] for row in releases["releases"]] == [RELEASE, OLD_RELEASE]
        newer = releases["releases"][0]
        assert newer["processes"] == 1 and newer["compared_with"] == OLD_RELEASE
        assert [(row["endpoint"], row["metric"]) for row in newer["regressions"]] == [(REGRESSED, "p95")]

        # Check-ins: one up, one failed, one not run.
        monitors = {row["name"]: row for row in wait_until(lambda: get(url, "checkins")["checkins"], timeout=20)}
        assert set(monitors) == set(CHECKINS)

        def states() -> dict[str, str]:
            return {row["name"]: row["state"] for row in get(url, "checkins")["checkins"]}

        wait_until(lambda: states()["csv-import"] == "failed", timeout=45, interval=0.2)
        assert states() == {"heartbeat": "up", "csv-import": "failed", "cache-cleanup": "new"}

        # A slow request, sampled, within the first minute.
        slow = wait_until(lambda: get(url, "slow")["slow"], timeout=started + 60 - time.time(), interval=0.5)
        assert slow[0]["endpoint"] == "/test/slow" and slow[0]["samples"] > 0

        # The SLOs are evaluated; an incident opens, and its first message reaches the stand-in webhook.
        alerts = wait_until(lambda: get(url, "alerts")["incidents"], timeout=started + 60 - time.time(), interval=0.5)
        assert alerts[0]["status"] == "open"
        assert [slo["objective"] for slo in get(url, "alerts")["slo"]] == ["availability", "latency"]
        assert get(url, "alerts")["configured"] == ["webhook"]
        wait_until(
            lambda: get(url, "alerts")["deliveries"].get("webhook", {}).get("delivered"),
            timeout=started + 75 - time.time(),
            interval=0.5,
        )
        first_run = dict(minutes_of_last_hour(url))
        first_uptime = get(url, "stats")["uptime_s"]
        stopped = time.time()

    with demo(store) as url:
        # The restart fills what it missed and nothing more: the minutes the first run recorded keep their
        # counts (closed ones: the first run's last flush at exit may add to its last minute).
        wait_until(lambda: no_gap(url), timeout=20, interval=0.5)
        again = dict(minutes_of_last_hour(url))
        closed = [minute for minute in first_run if seconds(minute) + MINUTE < stopped - 2]
        assert closed and all(again[minute] == first_run[minute] for minute in closed)
        assert get(url, "stats")["uptime_s"] >= first_uptime, "a restart continues the deployment"
        assert [row["release"] for row in get(url, "releases")["releases"]] == [RELEASE, OLD_RELEASE]
        assert {row["name"] for row in get(url, "checkins")["checkins"]} == set(CHECKINS)


def test_history_fills_only_the_gap_up_to_now(tmp_path: Path) -> None:
    """A first run backfills the hours before it; a run half an hour later fills that half hour alone,
    through the real recording path (wall times in the past: errors first seen hours ago)."""
    app, monitor = create_app(**demo_options(None), storage=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    try:
        store = monitor.store
        now = time.time()
        first = seed_history(app, monitor, 2.0, now=now - 1800)
        assert first is not None and not first.continued and first.releases == (OLD_RELEASE, RELEASE)
        first_minutes = {start: agg.count for start, agg in store.series(now - 9000, now - 1800, MINUTE)}
        second = seed_history(app, monitor, 2.0, now=now)
        assert second is not None and second.continued and second.releases == (RELEASE,)
        assert now - 1800 - 30 < second.since <= now - 1800 and second.until == now
        assert seed_history(app, monitor, 2.0, now=now) is None, "nothing left to fill"
        # Every minute of the two hours has requests; those of the first run kept their counts.
        series = dict(store.series(now - 2 * 3600 + MINUTE, now, MINUTE))
        assert all(agg.count for agg in series.values())
        closed = [start for start in first_minutes if start + MINUTE <= now - 1800]
        assert all(series[start].count == first_minutes[start] for start in closed if start in series)
        # The deployment started with the history; errors and issues were first seen then.
        assert abs(store.deployment_started() - (now - 2 * 3600 - 1800)) < 2  # type: ignore[operator]
        errors = store.error_samples()
        sample = next(s for key, s in errors.items() if key[0] == "ValueError")
        assert sample.first_seen < now - 2 * 3600 and sample.last_seen > now - 600
        issue = next(row for row in store.issues(None) if row.type == "ValueError")
        assert issue.first_seen < now - 2 * 3600 and issue.last_seen > now - 600
        assert [row.release for row in store.releases()] == [RELEASE, OLD_RELEASE]
    finally:
        monitor.close()
