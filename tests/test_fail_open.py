"""Failures inside wsgimon are logged and counted; the application's response always goes out."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from demo_app import create_app
from tests import wsgi_apps
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware

pytestmark = pytest.mark.internal_errors


class Broken(Exception):
    pass


def explode(*args: Any, **kwargs: Any) -> Any:
    raise Broken("forced failure inside wsgimon")


class BrokenQueue:
    append = staticmethod(explode)


def test_broken_recorder_still_serves_the_response(caplog: pytest.LogCaptureFixture) -> None:
    app, monitor = create_app()
    monitor._pending = BrokenQueue()  # type: ignore[assignment]
    for _ in range(3):
        result = call(monitor, "/items/3")
        assert result.status == "200 OK" and b'"id":3' in result.body
    errors = [r for r in caplog.records if r.name == "wsgimon" and r.levelno == logging.ERROR]
    assert len(errors) == 1, "a repeated failure is logged once"
    assert "request finish" in errors[0].getMessage()
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["wsgimon"]["status"] == "degraded"


@pytest.mark.internal_errors
def test_broken_start_of_recording_passes_the_request_through() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    monitor.recorder.ensure_started = explode  # type: ignore[method-assign]
    assert call(monitor, "/x").body == b"hello"
    assert call(monitor, "/x").body == b"hello"


def test_broken_store_keeps_serving_and_keeps_the_data_for_later() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    write = monitor.store.write
    monitor.store.write = explode  # type: ignore[method-assign]
    try:
        assert call(monitor, "/x").body == b"hello"
        assert call(monitor, "/monitoring/stats").status == "200 OK"
        assert get_json(monitor, "/monitoring/health")["checks"]["wsgimon"]["status"] == "degraded"
    finally:
        monitor.store.write = write  # type: ignore[method-assign]
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1
    monitor.close()


def test_broken_endpoint_callable_does_not_break_requests() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, endpoint=explode)
    assert call(monitor, "/users/1").body == b"hello"
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert [row["endpoint"] for row in rows] == ["/users/<int>"]


def test_broken_naming_loses_one_kind_of_request_not_the_flush() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    original = monitor.recorder.namer.name
    calls = {"n": 0}

    def flaky(*args: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Broken("first fold fails")
        return original(*args)

    monitor.recorder.namer.name = flaky  # type: ignore[method-assign]
    for path in ("/x", "/y", "/z"):
        call(monitor, path)
    assert get_json(monitor, "/monitoring/stats")["requests"] == 2
