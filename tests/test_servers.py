"""The same behaviour under gunicorn, waitress and werkzeug's server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from demo_app import create_app
from tests.servers import gunicorn_server, wait_until, waitress_server, werkzeug_server


@pytest.fixture(autouse=True)
def quiet_flask_errors() -> None:
    logging.getLogger("demo_app").setLevel(logging.CRITICAL)


PLAN = {"/test/normal": 30, "/items/5": 20, "/test/error": 5, "/test/notfound": 4, "/missing": 3}


def exercise(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for path, n in PLAN.items():
            for _ in range(n):
                client.get(path)
        # A request is recorded when the server closes its body, which may come a moment after
        # the client has read the last byte.
        stats = wait_until(
            lambda: (answer := client.get("/monitoring/stats").json())["requests"] == sum(PLAN.values()) and answer,
            timeout=5,
        )
        errors = client.get("/monitoring/errors").json()["errors"]
        endpoints = {row["endpoint"] for row in client.get("/monitoring/endpoints").json()["endpoints"]}
    assert stats["requests"] == sum(PLAN.values())
    assert stats["status_codes"] == {"200": 50, "404": 7, "500": 5}
    assert stats["error_types"]["ValueError"] == 5
    assert any(row["type"] == "ValueError" and "raise ValueError" in row["traceback"] for row in errors)
    assert endpoints == {"/test/normal", "/items/<int:item_id>", "/test/error", "/test/notfound", "<unmatched>"}


@pytest.mark.parametrize("server", [werkzeug_server, waitress_server], ids=["werkzeug", "waitress"])
def test_threaded_servers(server: Callable[[Any], AbstractContextManager[str]]) -> None:
    app, _ = create_app()
    with server(app) as url:
        exercise(url)


@pytest.mark.slow
def test_gunicorn_gthread_worker() -> None:
    with gunicorn_server("demo_app:app", "-w", "1", "-k", "gthread", "--threads", "4") as (url, _):
        exercise(url)


@pytest.mark.slow
def test_gunicorn_sync_worker_streams_and_closes() -> None:
    with gunicorn_server("tests.streaming_app:app", "-w", "1") as (url, _):
        with httpx.stream("GET", url + "/stream") as response:
            chunks = list(response.iter_bytes())
        assert b"".join(chunks) == b"chunk-0chunk-1chunk-2"
        file_response = httpx.get(url + "/file")
        assert file_response.content == b"x" * 100_000
        rows = httpx.get(url + "/monitoring/requests").json()["requests"]
    by_path = {row["path"]: row for row in rows}
    assert by_path["/stream"]["response_bytes"] == 21
    assert by_path["/stream"]["ttfb_ms"] < by_path["/stream"]["duration_ms"]
    # The stream sleeps 50 ms between chunks: total time covers the whole body, not the first chunk.
    assert by_path["/stream"]["duration_ms"] >= 100
    assert by_path["/file"]["response_bytes"] == 100_000
