"""One consistent picture across real gunicorn workers sharing a SQLite file."""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import gunicorn_server, wait_until

pytestmark = pytest.mark.slow

FLUSH = 0.5
PLAN = {
    "/test/normal": 60,
    "/items/{n}": 50,
    "/test/error": 12,
    "/test/notfound": 10,
    "/test/server-error": 8,
    "/scan/{n}": 20,
}
EXPECTED_STATUS = {"200": 110, "404": 30, "500": 20}


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3", "WSGIMON_FLUSH_INTERVAL": str(FLUSH)}


def send_plan(url: str, repeat: int = 1) -> int:
    jobs = [path.format(n=random.randint(1, 10_000)) for path, n in PLAN.items() for _ in range(n * repeat)]
    random.shuffle(jobs)

    def send(paths: list[str]) -> None:
        for path in paths:
            # A fresh connection each time spreads requests over the workers.
            httpx.get(url + path, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [jobs[i::8] for i in range(8)]))
    return len(jobs)


def views_from_workers(url: str, attempts: int = 16) -> tuple[set[int], list[dict[str, Any]]]:
    pids, stats = set(), []
    for _ in range(attempts):
        pids.add(httpx.get(url + "/monitoring/health", timeout=10).json()["process"]["pid"])
        stats.append(httpx.get(url + "/monitoring/stats?window=all", timeout=10).json())
    return pids, stats


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry))
    return pids


def every_view_is(url: str, requests: int) -> bool:
    """Whichever worker answers, it counts exactly ``requests``."""
    return {s.get("requests") for s in views_from_workers(url, 8)[1]} == {requests}


def total_requests(url: str) -> int:
    return int(httpx.get(url + "/monitoring/stats?window=all", timeout=10).json()["requests"])


def test_every_worker_reports_the_same_exact_counts_through_hup_and_kill(tmp_path: Path) -> None:
    args = ("-w", "4", "-k", "gthread", "--threads", "4")
    with gunicorn_server("demo_app:app", *args, env=env_for(tmp_path)) as (url, master):
        sent = send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)
        pids, views = views_from_workers(url)
        assert len(pids) >= 2, "the views should come from several workers"
        for stats in views:
            assert stats["requests"] == sent
            assert stats["status_codes"] == EXPECTED_STATUS
            assert stats["error_types"]["ValueError"] == 12
        endpoints = httpx.get(url + "/monitoring/endpoints?window=all").json()["endpoints"]
        names = {row["endpoint"] for row in endpoints}
        assert "/items/<int:item_id>" in names and "<unmatched>" in names and len(names) == 6

        # A graceful reload replaces every worker; nothing is lost.
        old_workers = set(worker_pids(master.pid))
        assert pids <= {p["pid"] for p in httpx.get(url + "/monitoring/health").json()["deployment"]["processes"]}
        master.send_signal(signal.SIGHUP)
        wait_until(lambda: not old_workers & set(worker_pids(master.pid)) and len(worker_pids(master.pid)) == 4, 20)
        wait_until(lambda: total_requests(url) == sent, 10)
        sent += send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)

        # kill -9 of a worker after its flush loses nothing.
        os.kill(worker_pids(master.pid)[0], signal.SIGKILL)
        wait_until(lambda: len(worker_pids(master.pid)) == 4, 20)
        wait_until(lambda: every_view_is(url, sent), 20)

        # kill -9 right after a burst loses at most that worker's last interval.
        burst = send_plan(url)
        killed_at = time.time()
        os.kill(worker_pids(master.pid)[0], signal.SIGKILL)
        wait_until(lambda: len(worker_pids(master.pid)) == 4, 20)
        # The surviving workers' shares arrive within a flush interval; the killed one's may not.
        # A decision to wait for: every live worker has written what it had to the store. Forty
        # requests reach each of the four workers (all but surely), then each flushes them.
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(40):
                assert client.get("/items/1", headers={"Connection": "close"}).status_code == 200
        nudged = time.time()
        sent += 40
        wait_until(lambda: all_flushed_since(url, max(nudged, killed_at + FLUSH), 4), 20)
        after = total_requests(url)
        assert sent <= after <= sent + burst
        assert after >= sent + burst * 0.5, "more than the killed worker's share was lost"

        health = httpx.get(url + "/monitoring/health").json()
        live = {p["pid"] for p in health["deployment"]["processes"]}
        assert not old_workers & live, "workers that exited cleanly are not listed"
        assert health["uptime_s"] >= health["process"]["uptime_s"]


def test_max_requests_recycling_loses_nothing(tmp_path: Path) -> None:
    args = ("-w", "2", "-k", "gthread", "--threads", "2", "--max-requests", "25")
    with gunicorn_server("demo_app:app", *args, env=env_for(tmp_path)) as (url, _master):
        sent = send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)  # the stats requests themselves are not counted


def test_preloaded_app_flushes_from_the_forked_workers(tmp_path: Path) -> None:
    args = ("-w", "2", "--preload")
    with gunicorn_server("demo_app:app", *args, env=env_for(tmp_path)) as (url, _master):
        sent = send_plan(url)
        wait_until(lambda: every_view_is(url, sent), 20)


def all_flushed_since(url: str, moment: float, workers: int) -> bool:
    """``workers`` processes wrote to the store after ``moment``."""
    processes = httpx.get(url + "/monitoring/health", timeout=10).json()["deployment"]["processes"]
    flushed = [datetime.fromisoformat(p["last_flush"].replace("Z", "+00:00")).timestamp() for p in processes]
    return sum(when > moment for when in flushed) >= workers
