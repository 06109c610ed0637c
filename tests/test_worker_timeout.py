"""Requests gunicorn kills: the worker timeout's request recorded with where it was stuck, a killed
worker's requests counted lost, and how busy the workers are."""

from __future__ import annotations

import contextlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .servers import gunicorn_server, wait_until

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    return {"WSGIMON_STORAGE": f"sqlite:///{tmp_path}/killed.sqlite3", "WSGIMON_FLUSH_INTERVAL": "0.3"}


def _get(url: str, path: str) -> Any:
    return httpx.get(url + path, timeout=10).json()


def test_a_request_the_worker_timeout_kills_is_an_issue_with_the_stack_it_was_stuck_in(tmp_path: Path) -> None:
    with gunicorn_server("tests.slow_app:app", "-w", "1", "--timeout", "2", env=_env(tmp_path)) as (url, _master):
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(httpx.get, url + "/hold?s=10", timeout=30)
            # gunicorn answers 500 as the worker goes (or the connection just closes).
            with contextlib.suppress(httpx.HTTPError):
                assert held.result().status_code == 500

        def killed() -> dict[str, Any] | None:
            issues = _get(url, "/monitoring/issues")["issues"]
            return next((issue for issue in issues if issue["type"].endswith("WorkerTimeout")), None)

        issue = wait_until(killed, timeout=20)
        assert issue["endpoints"][0]["endpoint"] == "/hold"
        detail = _get(url, f"/monitoring/issues/{issue['id']}")
        traceback = detail["traceback"]
        # The innermost frame is the app's function that was sleeping, not wsgimon's or gunicorn's.
        assert 'in hold\n    time.sleep(min(10.0, float(request.args.get("s", "1"))))' in traceback
        assert "killed by gunicorn's worker timeout after" in detail["message"]
        # The request's stack from where the server called the app: not gunicorn's loop, not wsgimon's hook.
        assert "arbiter.py" not in traceback and "integrations/gunicorn.py" not in traceback
        assert traceback.index("flask/app.py") < traceback.index("slow_app.py")
        requests = _get(url, "/monitoring/requests")["requests"]
        assert [(r["status"], r["error_type"]) for r in requests if r["endpoint"] == "/hold"] == [(500, issue["type"])]


def test_a_killed_workers_requests_in_flight_are_counted_lost_and_saturation_shows_busy_workers(
    tmp_path: Path,
) -> None:
    args = ("-w", "1", "-k", "gthread", "--threads", "4", "--timeout", "30")
    with gunicorn_server("tests.slow_app:app", *args, env=_env(tmp_path)) as (url, _master):
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(httpx.get, url + "/hold?s=10", timeout=30)
            stats = wait_until(
                lambda: (
                    (s := _get(url, "/monitoring/stats"))["saturation"]["busy"] == 1
                    and s["saturation"]["capacity"] == 4
                    and s
                ),
                timeout=15,
            )
            (host,) = stats["saturation"]["hosts"]
            assert host["workers"] == 1 and host["busy"] == 1 and host["capacity"] == 4
            assert stats["lost_requests"] == {"count": 0, "recent": []}
            # The row the store has for this worker must say one in flight before it dies.
            wait_until(lambda: _get(url, "/monitoring/slow")["in_flight"]["deployment"] == 1, timeout=10)
            worker = _get(url, "/monitoring/health")["process"]["pid"]
            os.kill(worker, signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                held.result()

        lost = wait_until(
            lambda: (s := _get(url, "/monitoring/stats"))["lost_requests"]["count"] and s["lost_requests"],
            timeout=30,
        )
        assert lost["count"] == 1
        assert lost["recent"][0]["pid"] == worker and lost["recent"][0]["request"] == "GET /hold"
        # Counted once, however many times the new worker looks.
        wait_until(lambda: _get(url, "/monitoring/health")["process"]["pid"] != worker)
        assert _get(url, "/monitoring/stats")["lost_requests"]["count"] == 1
