"""Counts are exact under concurrency, and endpoint names stay bounded whatever the traffic."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from demo_app import create_app
from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.servers import werkzeug_server
from wsgimon import MonitorMiddleware


def test_exact_counts_with_8_threads_hammering_in_process() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, flush_interval=0.01)
    per_thread = 5000
    barrier = threading.Barrier(8)

    def hammer(worker: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            assert call(monitor, f"/w{worker}/{i}").status == "200 OK"

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hammer, range(8)))
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["requests"] == 8 * per_thread
    assert stats["status_codes"] == {"200": 8 * per_thread}
    endpoints = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert sum(row["requests"] for row in endpoints) == 8 * per_thread


def test_exact_counts_through_a_real_threaded_server() -> None:
    app, _ = create_app()
    plan = {"/test/normal": 120, "/items/7": 80, "/test/notfound": 40, "/test/server-error": 24}
    jobs = [path for path, n in plan.items() for _ in range(n)]
    random.Random(5).shuffle(jobs)
    with werkzeug_server(app) as url:

        def send(paths: list[str]) -> None:
            with httpx.Client(base_url=url) as client:
                for path in paths:
                    client.get(path)

        chunks = [jobs[i::8] for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, chunks))
        stats = httpx.get(url + "/monitoring/stats").json()
        endpoints = httpx.get(url + "/monitoring/endpoints").json()["endpoints"]
    assert stats["requests"] == len(jobs)
    assert stats["status_codes"] == {"200": 200, "404": 40, "500": 24}
    assert stats["errors"] == 24 and stats["client_errors"] == 40
    by_name = {row["endpoint"]: row for row in endpoints}
    assert by_name["/items/<int:item_id>"]["requests"] == 80
    assert by_name["/test/notfound"]["client_errors"] == 40


def test_thousand_item_paths_collapse_into_one_endpoint() -> None:
    app, monitor = create_app()
    for n in range(1000):
        assert call(monitor, f"/items/{n}").status == "200 OK"
    endpoints = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert [(row["endpoint"], row["requests"]) for row in endpoints] == [("/items/<int:item_id>", 1000)]


def test_ten_thousand_random_404s_create_only_unmatched() -> None:
    app, monitor = create_app()
    rng = random.Random(11)
    for _ in range(10_000):
        path = "/" + "/".join(rng.choice(["wp-admin", "x", ".env", "a%20b", str(rng.random())]) for _ in range(3))
        assert call(monitor, path).status.startswith("404")  # type: ignore[union-attr]
    call(monitor, "/.git/config", method="POST")
    endpoints = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert {(row["endpoint"], row["method"]) for row in endpoints} == {("<unmatched>", "GET"), ("<unmatched>", "POST")}
    assert endpoints[0]["requests"] == 10_000


def test_route_that_returns_404_itself_keeps_its_name() -> None:
    app, monitor = create_app()
    call(monitor, "/test/notfound")
    (row,) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert row["endpoint"] == "/test/notfound" and row["status_codes"] == {"404": 1}


def test_plain_wsgi_paths_are_normalised() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    for path in ("/users/1", "/users/22", "/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/blobs/deadbeef42"):
        call(monitor, path)
    names = {row["endpoint"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert names == {"/users/<int>", "/orders/<uuid>", "/blobs/<hex>"}


def test_endpoint_callable_names_requests() -> None:
    def by_first_segment(environ: dict[str, Any]) -> str:
        return "/" + environ["PATH_INFO"].strip("/").split("/")[0]

    monitor = MonitorMiddleware(wsgi_apps.list_app, endpoint=by_first_segment)
    for path in ("/api/a", "/api/b/c", "/static/x.css"):
        call(monitor, path)
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert {row["endpoint"]: row["requests"] for row in rows} == {"/api": 2, "/static": 1}


def test_endpoint_cap_overflows_into_other() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, max_endpoints=5, endpoint=lambda environ: environ["PATH_INFO"])
    for i in range(20):
        call(monitor, f"/page-{chr(97 + i)}")
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    names = {row["endpoint"] for row in rows}
    assert len(names - {"<other>"}) == 5 and "<other>" in names
    assert sum(row["requests"] for row in rows) == 20
    assert get_json(monitor, "/monitoring/stats")["endpoints_overflowed"] == 15


def test_exclude_matches_whole_segments_only() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, exclude=["/static"])
    for path in ("/static", "/static/app.js", "/static-admin/delete-user", "/staticky"):
        call(monitor, path)
    names = {row["endpoint"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert names == {"/static-admin/delete-user", "/staticky"}


def test_monitoring_and_excluded_requests_are_not_counted() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, exclude=["/static", "/favicon.ico"])
    call(monitor, "/static/app.js")
    call(monitor, "/favicon.ico")
    call(monitor, "/counted")
    for _ in range(3):
        get_json(monitor, "/monitoring/stats")
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1


def test_recent_requests_ring_is_bounded() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, recent_requests=50)
    for i in range(120):
        call(monitor, f"/r/{i}")
    rows = get_json(monitor, "/monitoring/requests?limit=1000")["requests"]
    assert len(rows) == 50
    assert rows[0]["path"] == "/r/119" and rows[-1]["path"] == "/r/70"


def test_errors_alike_on_many_paths_make_one_sample_with_the_latest_message() -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise LookupError(f"no such item {environ['PATH_INFO']}")

    monitor = MonitorMiddleware(failing)
    for item in range(1, 6):
        assert isinstance(call(monitor, f"/items/{item}").error, LookupError)
        time.sleep(0.002)
    errors = get_json(monitor, "/monitoring/errors")["errors"]
    assert [(row["type"], row["endpoint"], row["count"]) for row in errors] == [("LookupError", "/items/<int>", 5)]
    assert errors[0]["message"] == "no such item /items/5"
    assert "LookupError: no such item /items/5" in errors[0]["traceback"]
    assert errors[0]["first_seen"] < errors[0]["last_seen"]
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert [(row["endpoint"], row["requests"], row["errors"]) for row in rows] == [("/items/<int>", 5, 5)]
