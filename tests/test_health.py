"""/monitoring/health: built-in thresholds, user checks that fail, raise or hang, and the alias."""

from __future__ import annotations

import threading

from demo_app import create_app
from tests import wsgi_apps
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware


def health(monitor: MonitorMiddleware, path: str = "/monitoring/health") -> tuple[str, dict]:  # type: ignore[type-arg]
    import json

    result = call(monitor, path)
    assert result.status is not None
    return result.status, json.loads(result.body)


def test_healthy_service_reports_process_details() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    status, body = health(monitor)
    assert status == "200 OK" and body["status"] == "ok"
    assert body["version"] and body["uptime_s"] >= 0
    process = body["process"]
    assert process["rss_bytes"] > 1_000_000 and process["threads"] >= 1 and process["cpu_s"] > 0
    import os

    assert process["pid"] == os.getpid()


def test_failing_user_checks_make_it_fail_with_503() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, health_check_timeout=0.3)
    release = threading.Event()
    monitor.add_health_check("database", lambda: True)
    monitor.add_health_check("cache", lambda: False)
    monitor.add_health_check("queue", lambda: 1 / 0)
    monitor.add_health_check("hangs", lambda: release.wait(10))
    try:
        status, body = health(monitor)
    finally:
        release.set()
    assert status.startswith("503") and body["status"] == "fail"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["cache"]["status"] == "fail"
    assert checks["queue"] == {**checks["queue"], "status": "fail", "detail": "ZeroDivisionError: division by zero"}
    assert checks["hangs"]["status"] == "fail" and "timed out" in checks["hangs"]["detail"]


def test_high_recent_error_rate_degrades() -> None:
    _, monitor = create_app(degraded_error_rate=0.2)
    for _ in range(20):
        call(monitor, "/test/normal")
    assert health(monitor)[1]["status"] == "ok"
    for _ in range(10):
        call(monitor, "/test/server-error")
    status, body = health(monitor)
    assert status == "200 OK" and body["status"] == "degraded"
    assert body["checks"]["error_rate"]["status"] == "degraded"
    assert "33.3%" in body["checks"]["error_rate"]["detail"]


def test_slow_p95_degrades_when_a_threshold_is_set() -> None:
    import time

    def slow_app(environ: dict, start_response: object) -> list[bytes]:  # type: ignore[type-arg]
        time.sleep(0.005)
        return wsgi_apps.list_app(environ, start_response)

    monitor = MonitorMiddleware(slow_app, degraded_p95_ms=1.0)
    for _ in range(20):
        call(monitor, "/s")
    body = health(monitor)[1]
    assert body["status"] == "degraded" and body["checks"]["latency_p95"]["status"] == "degraded"


def test_health_path_alias_answers_like_the_prefixed_one() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, health_path="/health")
    status, body = health(monitor, "/health")
    assert status == "200 OK" and body["status"] == "ok"
    assert call(monitor, "/health", method="POST").status.startswith("405")  # type: ignore[union-attr]
    call(monitor, "/health")
    assert get_json(monitor, "/monitoring/stats")["requests"] == 0


def test_bad_check_registration_is_refused() -> None:
    import pytest

    monitor = MonitorMiddleware(wsgi_apps.list_app)
    with pytest.raises(ValueError):
        monitor.add_health_check("", lambda: True)
    with pytest.raises(ValueError):
        monitor.add_health_check("x", "not callable")  # type: ignore[arg-type]


def test_a_hung_check_is_not_resubmitted_and_does_not_starve_the_others() -> None:
    """Four hung checks would fill a pool of four; each is reported still running instead."""
    monitor = MonitorMiddleware(wsgi_apps.list_app, health_check_timeout=0.2)
    release = threading.Event()
    calls = []

    def hangs() -> None:
        calls.append(1)
        release.wait(30)

    monitor.add_health_check("hangs", hangs)
    monitor.add_health_check("database", lambda: True)
    try:
        for _ in range(8):
            _, body = health(monitor)
            assert body["checks"]["database"]["status"] == "ok", body["checks"]["database"]
            assert body["checks"]["hangs"]["status"] == "fail"
        assert len(calls) == 1, "the hung check was submitted again while it still ran"
        assert "still running" in body["checks"]["hangs"]["detail"]
    finally:
        release.set()
