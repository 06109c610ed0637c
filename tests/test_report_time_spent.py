"""The report's "Where the time went": real queries through instrument_dbapi, a real outbound call,
a real SQLite store; and no such section for an app that makes neither."""

from __future__ import annotations

import sqlite3
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import call
from wsgimon import MonitorMiddleware, instrument_dbapi
from wsgimon.reporting.period import Period, period_from
from wsgimon.reporting.report import build_report, render_report

UTC = timezone.utc
#: literals the app puts in its statements: normalised away, never in the report
SECRET_CUSTOMER = "carol@shop.example"
ORDER_BASE = 904_711
ITEMS_PER_ORDER = 8


class _Rates(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"eur": 1.0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def rates() -> Iterator[str]:
    """A real HTTP server the app calls out to."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rates)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def shop_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER, name TEXT)")
    for n in range(ITEMS_PER_ORDER):
        order = ORDER_BASE + n
        db.execute("INSERT INTO orders VALUES (?, ?)", (order, SECRET_CUSTOMER))
        db.executemany("INSERT INTO items (order_id, name) VALUES (?, ?)", [(order, f"item {i}") for i in range(3)])
    db.commit()
    return db


def shop(db_path: Path, rates_url: str) -> Any:
    """An app whose /orders page runs one query per order (an N+1) and calls out once; literals inlined."""
    db = instrument_dbapi(shop_db(db_path))

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/orders":
            orders = db.execute(f"SELECT id FROM orders WHERE customer = '{SECRET_CUSTOMER}' AND id >= {ORDER_BASE}")
            for (order,) in orders.fetchall():
                db.execute("SELECT name FROM items WHERE order_id = ?", (order,)).fetchall()
            with urllib.request.urlopen(f"{rates_url}/rates/{ORDER_BASE}") as answer:
                answer.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def this_week() -> Period:
    return period_from(datetime.now(UTC).date(), "week", UTC)


def test_the_report_says_where_the_time_went_with_the_n_plus_one_and_no_literal(tmp_path: Path, rates: str) -> None:
    monitor = MonitorMiddleware(shop(tmp_path / "shop.sqlite3", rates), storage=f"sqlite:///{tmp_path}/store.sqlite3")
    for _ in range(12):
        assert call(monitor, "/orders").status == "200 OK"
    for _ in range(4):
        call(monitor, "/health")
    monitor.flush()
    report = build_report(monitor.store, this_week(), monitor.config)
    spent = report.time_spent
    assert spent is not None
    assert spent.queries_per_request == (1 + ITEMS_PER_ORDER) * 12 / 16
    assert spent.calls_per_request == 12 / 16
    assert spent.db_share is not None and spent.http_share is not None and spent.app_share is not None
    assert 0 < spent.db_share + spent.http_share <= 1.0
    statements = {q["statement"]: q for q in spent.statements}
    n_plus_one = next(q for text, q in statements.items() if text.startswith("SELECT name FROM items"))
    assert n_plus_one["count"] == 12 * ITEMS_PER_ORDER and n_plus_one["n_plus_one"] == 12
    assert n_plus_one["frame"] and n_plus_one["frame"].startswith("tests.test_report_time_spent in app, line ")
    assert n_plus_one["endpoints"] == [{"endpoint": "/orders", "method": "GET", "count": 12 * ITEMS_PER_ORDER}]
    once = next(q for text, q in statements.items() if text.startswith("SELECT id FROM orders"))
    assert once["count"] == 12 and once["n_plus_one"] == 0
    (target,) = spent.targets
    assert (target["method"], target["count"]) == ("GET", 12) and target["target"].endswith("/rates/<int>")

    text, html = render_report(report)
    where = text.split("\nWhere the time went\n", 1)[1].split("\n\n", 1)[0]
    assert "Database " in where and "outbound HTTP " in where and "the app itself " in where
    assert "Per request: 6.8 queries" in where and "0.75 outbound calls" in where
    assert "SELECT name FROM items WHERE order_id = ?" in where
    assert "N+1: ran 5 times or more in one request, in 12 requests" in where
    assert "from tests.test_report_time_spent in app, line " in where and "GET /orders" in where
    assert "/rates/<int>" in where and "12 calls" in where
    assert "Where the time went" in html and "<b>N+1</b>" in html and "/rates/&lt;int&gt;" in html
    assert "/rates/<int>" not in html, "the HTML part is escaped"
    for part in (text, html):
        assert SECRET_CUSTOMER not in part and str(ORDER_BASE) not in part, "no literal of a statement or a URL"
    monitor.close()


def test_an_app_without_queries_or_calls_has_no_such_section(tmp_path: Path) -> None:
    def plain(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    monitor = MonitorMiddleware(plain, storage=f"sqlite:///{tmp_path}/store.sqlite3")
    for n in range(30):
        call(monitor, f"/page/{n % 3}")
    monitor.flush()
    report = build_report(monitor.store, this_week(), monitor.config)
    assert report.traffic and report.time_spent is None
    text, html = render_report(report)
    for part in (text, html):
        assert "Where the time went" not in part and "N+1" not in part and "queries" not in part
    assert "Busiest endpoints" in text and "Busiest endpoints" in html
    monitor.close()
