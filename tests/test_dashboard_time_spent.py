"""The dashboard's database and outbound HTTP panels in a real headless Chromium, against a Flask app that runs
an N+1 on a wrapped sqlite3 connection and calls a local HTTP server through urllib."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.servers import werkzeug_server
from tests.test_dashboard_browser import Page
from wsgimon import MonitorMiddleware, instrument_dbapi

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

SCREENSHOT = Path("/tmp/dash-time.png")
N_PLUS_ONE = "SELECT customer FROM orders WHERE id = ?"
REPEATS = 6
QUERIES = 1 + 1 + 1 + REPEATS + 1  # create, fill, list, the N+1, count: per request to /orders
STATEMENTS = 5
LITERAL = "secret-literal"
# A quoted alias is an identifier: the normaliser keeps it, so markup reaches the page in a statement.
MARKUP_ALIAS = '"<img src=x onerror=window.__pwned=1>"'
MARKUP_QUERY = f"SELECT count(*) AS {MARKUP_ALIAS} FROM orders WHERE note <> '{LITERAL}'"
ORDERS_REQUESTS = 5
ITEM_REQUESTS = 4


class Backend(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_app(backend: str, **options: Any) -> Flask:
    app = Flask("time-spent-under-test")

    def list_orders() -> list[str]:
        conn = instrument_dbapi(sqlite3.connect(":memory:"))  # closed, not left to the collector (3.13 warns)
        try:
            conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, note TEXT)")
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, f"c{i}", "x") for i in range(10)])
            ids = [row[0] for row in conn.execute(f"SELECT id FROM orders WHERE note <> '{LITERAL}' LIMIT {REPEATS}")]
            names = [conn.execute(N_PLUS_ONE, (i,)).fetchone()[0] for i in ids]  # the N+1
            conn.execute(MARKUP_QUERY).fetchone()
            return names
        finally:
            conn.close()

    @app.route("/orders")
    def orders() -> dict[str, Any]:
        return {"customers": list_orders()}

    @app.route("/slow-orders")
    def slow_orders() -> dict[str, Any]:
        names = list_orders()
        time.sleep(0.35)
        return {"customers": names}

    @app.route("/items/<int:n>")
    def item(n: int) -> bytes:
        with urllib.request.urlopen(f"{backend}/items/{n}", timeout=5) as answer:
            return bytes(answer.read())

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    app.logger.disabled = True
    options.setdefault("storage", "memory://")
    app.wsgi_app = MonitorMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


def record_traffic(url: str, slow: bool = True) -> None:
    with httpx.Client(base_url=url) as client:
        for _ in range(ORDERS_REQUESTS):
            assert client.get("/orders").status_code == 200
        for n in range(ITEM_REQUESTS):
            assert client.get(f"/items/{n}").status_code == 200
        for _ in range(3):
            client.get("/ok")
        if slow:
            assert client.get("/slow-orders").status_code == 200


def pct(share: float) -> str:
    return f"{share * 100:.{2 if share < 0.1 else 1}f}%"


def rows_of(page: Page, table: str) -> list[list[str]]:
    return list(
        page.page.eval_on_selector_all(
            f"#{table} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
    )


def test_queries_outbound_and_breakdown_panels(browser: Any, backend: str) -> None:
    app = make_app(backend, slow_request_ms=100, slow_sample_interval_ms=20)
    with werkzeug_server(app) as url:
        record_traffic(url)
        api = url + "/monitoring"
        queries = httpx.get(api + "/queries?window=1h").json()["queries"]
        outbound = httpx.get(api + "/outbound?window=1h").json()["outbound"]
        stats = httpx.get(api + "/stats?window=1h").json()
        endpoints = {r["endpoint"]: r for r in httpx.get(api + "/endpoints?window=1h").json()["endpoints"]}
        by_statement = {q["statement"]: q for q in queries}
        assert by_statement[N_PLUS_ONE]["n_plus_one"] == ORDERS_REQUESTS + 1
        assert LITERAL not in json.dumps(queries)  # literals are replaced by ?
        markup = next(q for q in queries if MARKUP_ALIAS in q["statement"])
        [target] = outbound
        assert target["target"].endswith("/items/<int>") and target["count"] == ITEM_REQUESTS

        page = Page(browser, url + "/monitoring/")
        try:
            page.page.set_viewport_size({"width": 1280, "height": 900})
            page.wait_refreshes(1)
            page.refresh_until(f"document.querySelectorAll('#queries tbody tr[data-query]').length >= {STATEMENTS}")

            # Queries: the statements as the API gives them, as text, the N+1 marked, the literal nowhere.
            shown = {
                row["statement"]: row
                for row in page.page.eval_on_selector_all(
                    "#queries tbody tr[data-query]",
                    """rows => rows.map(r => ({
                        statement: r.querySelector('code.statement').textContent,
                        badge: r.querySelector('.n-plus-one')?.textContent || null,
                        cells: [...r.cells].map(c => c.textContent)}))""",
                )
            }
            assert set(shown) == set(by_statement)
            n1 = shown[N_PLUS_ONE]
            assert n1["badge"] == "N+1" and f"repeated in {ORDERS_REQUESTS + 1} requests" in n1["cells"][0]
            assert n1["cells"][1] == str((ORDERS_REQUESTS + 1) * REPEATS)
            assert "GET /orders ×" in n1["cells"][7] and "GET /slow-orders ×" in n1["cells"][7]
            assert n1["cells"][8] == (by_statement[N_PLUS_ONE]["frame"] or "–")
            assert shown[markup["statement"]]["badge"] is None
            assert page.page.locator("#queries img, #queries script").count() == 0
            assert page.page.evaluate("window.__pwned") is None
            assert LITERAL not in page.page.inner_text("body")

            # Outbound: the target with its method, count, errors, p95.
            [row] = rows_of(page, "outbound")
            assert row[0] == "GET" and row[1] == target["target"] and row[2] == str(ITEM_REQUESTS) and row[3] == "0"
            assert "GET /items/<int:n> ×4" in row[8]

            # The breakdown: the whole app first, then the endpoints with their shares and counts per request.
            breakdown = {r[0]: r for r in rows_of(page, "time-breakdown")}
            total = stats["time_spent"]
            assert rows_of(page, "time-breakdown")[0][0] == "all endpoints"
            assert breakdown["all endpoints"][2] == pct(total["share"]["db"])
            assert breakdown["all endpoints"][3] == pct(total["share"]["http"])
            orders = endpoints["/orders"]["time_spent"]
            assert breakdown["GET /orders"][5] == f"{QUERIES} ({QUERIES})"  # every request
            assert breakdown["GET /orders"][2] == pct(orders["share"]["db"]) and breakdown["GET /orders"][3] == "0.00%"
            assert breakdown["GET /items/<int:n>"][7] == "1 (1)"
            assert breakdown["GET /items/<int:n>"][3] == pct(endpoints["/items/<int:n>"]["time_spent"]["share"]["http"])
            widths = page.page.eval_on_selector_all(
                "#time-breakdown tbody tr",
                """rows => rows.map(r => [r.cells[0].textContent,
                    ...[...r.querySelectorAll('.split i')].map(i => i.getBoundingClientRect().width)])""",
            )
            for name, db, http, rest in widths:
                assert db + http + rest == pytest.approx(widths[0][1] + widths[0][2] + widths[0][3], abs=1.5), name
            items_bar = next(w for w in widths if w[0] == "GET /items/<int:n>")
            assert items_bar[1] == 0 and items_bar[2] > 0
            assert next(w for w in widths if w[0] == "GET /orders")[1] > 0

            # The cards and the request log.
            cards = dict(zip(page.texts(".card .label"), page.texts(".card .value"), strict=True))
            assert cards["queries / req"] and cards["calls / req"]
            log = rows_of(page, "log")
            orders_log = [r for r in log if r[6] == "/orders"]
            assert len(orders_log) == ORDERS_REQUESTS
            assert all(r[9].startswith(f"{QUERIES} · ") and r[9].endswith(" ms") and r[10] == "0" for r in orders_log)
            assert all(r[9] == "0" and r[10].startswith("1 · ") for r in log if r[6] == "/items/<int:n>")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.page.locator("#time-panel").screenshot(path=str(SCREENSHOT.with_name("dash-time-breakdown.png")))
            page.page.locator("#queries-panel").screenshot(path=str(SCREENSHOT.with_name("dash-time-queries.png")))

            # A click on a statement shows it whole; on a breakdown row filters the page to that endpoint.
            page.page.click(f"#queries tr[data-query='{by_statement[N_PLUS_ONE]['id']}']")
            assert (
                page.page.get_attribute(f"#queries tr[data-query='{by_statement[N_PLUS_ONE]['id']}']", "aria-expanded")
                == "true"
            )
            page.page.click("#time-breakdown tbody tr[data-endpoint='/orders']")
            page.wait_for("document.querySelector('#outbound tbody td.empty') !== null")
            assert page.page.inner_text("#filter-name") == "GET /orders"
            page.wait_for(f"document.querySelectorAll('#queries tbody tr[data-query]').length === {STATEMENTS}")
            assert "GET /slow-orders" not in page.page.inner_text("#queries")

            # The slow request's profile lists the queries it ran.
            page.page.click("#filter-clear")
            page.refresh_until("document.querySelector('#slow tbody tr.clickable') !== null")
            page.page.click("#slow tbody tr.clickable")
            page.wait_for("document.querySelector('#slow-profile .slow-queries') !== null")
            profile_statements = page.texts("#slow-profile .slow-queries code.statement")
            assert N_PLUS_ONE in profile_statements and LITERAL not in "".join(profile_statements)
            assert f"{QUERIES} queries" in page.page.inner_text("#slow-profile .slow-queries h3")
            page.page.locator("#slow-panel").screenshot(path=str(SCREENSHOT.with_name("dash-time-slow.png")))

            assert not page.console, page.console
            assert all(request.startswith(url + "/") for request in page.requests), page.requests
        finally:
            page.close()


def test_not_captured_is_said_not_drawn(browser: Any, backend: str) -> None:
    app = make_app(backend, capture_db=False, capture_http=False)
    with werkzeug_server(app) as url:
        record_traffic(url, slow=False)
        assert httpx.get(url + "/monitoring/stats").json()["time_spent"] is None
        page = Page(browser, url + "/monitoring/")
        try:
            page.wait_refreshes(1)
            assert "not captured" in page.page.inner_text("#time-notes")
            assert page.page.locator("#time-wrap").is_hidden()
            assert "queries / req" not in page.texts(".card .label")
            assert page.texts("#queries tbody td.empty") and page.texts("#outbound tbody td.empty")
            assert {r[9] for r in rows_of(page, "log")} == {""}  # not known, not zero
            assert not page.console, page.console
        finally:
            page.close()


AT = "2026-01-02T03:04:05Z"
MARKUP_HOST = "<img src=x onerror=window.__pwned=1>"
HOSTS: list[dict[str, Any]] = [
    {"host": "web-1", "workers": 2, "busy": 6, "capacity": 8},
    {"host": MARKUP_HOST, "workers": 1, "busy": 1, "capacity": None},
]


def test_saturation_and_lost_requests_when_the_server_reports_them(browser: Any, backend: str) -> None:
    """/stats answers are changed in flight: the page draws saturation and lost requests when present, and
    does without them (an older server)."""
    app = make_app(backend)
    extra: dict[str, Any] = {}

    def answer_with(route: Any) -> None:
        answer = route.fetch()
        body = {k: v for k, v in answer.json().items() if k not in ("saturation", "lost_requests")}
        route.fulfill(response=answer, json={**body, **extra})

    with werkzeug_server(app) as url:
        record_traffic(url, slow=False)
        stats = httpx.get(url + "/monitoring/stats").json()
        assert stats["saturation"]["hosts"] and stats["lost_requests"]["count"] == 0
        page = Page(browser, url + "/monitoring/")
        try:
            page.wait_refreshes(1)
            page.page.route("**/monitoring/stats?*", answer_with)
            page.refresh_until("document.querySelector('.card.saturation') === null")  # loaded before the route
            labels = page.texts(".card .label")
            assert "saturation" not in labels and "lost requests" not in labels and "in flight" in labels

            extra["saturation"] = {"busy": 7, "capacity": 8, "hosts": HOSTS}
            extra["lost_requests"] = {
                "count": 3,
                "recent": [{"host": "web-2", "pid": 4242, "requests": 3, "request": "GET /<b>x</b>", "at": AT}],
            }
            page.refresh_until(
                "[...document.querySelectorAll('.card .label')].some(l => l.textContent === 'lost requests')"
            )
            cards = dict(zip(page.texts(".card .label"), page.texts(".card .value"), strict=True))
            assert cards["saturation"] == "7 / 8" and cards["lost requests"] == "3"
            hosts = page.texts(".card.saturation .saturation-host")
            assert hosts[0].startswith("web-1") and "6 / 8" in hosts[0] and "2 workers" in hosts[0]
            assert hosts[1].startswith(MARKUP_HOST) and "1 worker" in hosts[1]
            assert page.page.locator(".card.saturation .meter.busy").count() == 1  # none for an unknown capacity
            lost = page.page.inner_text(".card.lost")
            assert "web-2 · pid 4242 · 3 requests" in lost and "GET /<b>x</b>" in lost
            assert (
                page.page.locator(".cards img, .cards b").count() == 0 and page.page.evaluate("window.__pwned") is None
            )
            page.page.locator("#cards").screenshot(path=str(SCREENSHOT.with_name("dash-time-cards.png")))

            extra["lost_requests"] = {"count": 0, "recent": []}  # none lost: no card
            page.refresh_until(
                "![...document.querySelectorAll('.card .label')].some(l => l.textContent === 'lost requests')"
            )
            assert "saturation" in page.texts(".card .label")

            page.page.unroute("**/monitoring/stats?*")  # the server's own answer
            host = json.dumps(stats["saturation"]["hosts"][0]["host"])
            page.refresh_until(
                f"document.querySelector('.card.saturation .saturation-host span')?.textContent === {host}"
            )
            assert not page.console, page.console
        finally:
            page.close()
