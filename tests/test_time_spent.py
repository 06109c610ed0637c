"""Time spent in queries and outbound calls, per request: real SQLite, a real local HTTP server, real clients.

What a user sees: the request log counts each request's queries and calls and their time,
``/monitoring/queries`` lists statements with their literals gone and flags N+1s with the view
that ran them, ``/monitoring/outbound`` groups calls by target template, and no literal a query
held reaches an answer or the store's file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sqlite3
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import sqlalchemy
from flask import Flask
from sqlalchemy import text

import wsgimon
from tests.helpers import call, get_json
from tests.servers import wait_until
from wsgimon import MonitorMiddleware

# What the app's queries hold and no answer or stored byte may: a text literal and the ids.
SECRET = "secret-4711"
BOUND_IDS = [904711001 + n for n in range(12)]
INLINE_IDS = [905822001 + n for n in range(12)]
LOOKUP_SQL = "SELECT name FROM items WHERE id = :id"


# -- a local HTTP server the app calls -------------------------------------------------------------


class _Items(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status = 500 if self.path.startswith("/items/0") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture(scope="module")
def items_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Items)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def tls_items(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The same server over TLS, with a certificate for 127.0.0.1 made here: (URL, certificate file)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0 or shutil.which("openssl") is None:
        pytest.skip("openssl could not make a certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Items)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the app ---------------------------------------------------------------------------------------


def app_database(directory: Path) -> sqlalchemy.Engine:
    """The app's own SQLite file (apart from the store's), with the rows its routes look up."""
    directory.mkdir()
    engine = sqlalchemy.create_engine(f"sqlite:///{directory / 'app.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, tag TEXT)"))
        rows = [{"id": i, "name": f"item {i}", "tag": SECRET} for i in BOUND_IDS + INLINE_IDS]
        conn.execute(text("INSERT INTO items (id, name, tag) VALUES (:id, :name, :tag)"), rows)
    return engine


def make_app(engine: sqlalchemy.Engine, items_url: str = "", **options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask("time_spent")
    holding = threading.Event()

    @app.route("/one")
    def one_query() -> str:
        with engine.connect() as conn:
            found = conn.execute(text(f"SELECT count(*) FROM items WHERE tag = '{SECRET}'")).scalar()
        return str(found)

    @app.route("/bound")
    def lookup_each_bound() -> str:
        names = []
        with engine.connect() as conn:
            for item_id in BOUND_IDS:
                names.append(conn.execute(text(LOOKUP_SQL), {"id": item_id}).scalar())
        return ",".join(map(str, names))

    @app.route("/inline")
    def lookup_each_inline() -> str:
        names = []
        with engine.connect() as conn:
            for item_id in INLINE_IDS:
                sql = f"SELECT name FROM items WHERE id = {item_id} AND tag = '{SECRET}'"
                names.append(conn.execute(text(sql)).scalar())
        return ",".join(map(str, names))

    @app.route("/held")
    def held_while_sampled() -> str:
        """Queries, then held until the sampler has seen this request: a slow request, with its queries."""
        with engine.connect() as conn:
            for item_id in INLINE_IDS[:3]:
                conn.execute(text(f"SELECT name FROM items WHERE id = {item_id} AND tag = '{SECRET}'"))
        me = monitor.in_flight.table[threading.get_ident()]
        holding.set()
        wait_until(lambda: me.samples)
        return "held"

    @app.route("/fanout")
    def fanout() -> str:
        with urllib.request.urlopen(f"{items_url}/items/1", timeout=5) as response:
            response.read()
        requests.get(f"{items_url}/items/2", timeout=5).raise_for_status()
        httpx.get(f"{items_url}/items/3", timeout=5).raise_for_status()
        return "called"

    @app.route("/fanout-async")
    def fanout_async() -> str:
        async def fetch() -> list[int]:
            async with httpx.AsyncClient(timeout=5) as client:
                first = await client.get(f"{items_url}/items/7")
                second = await client.get(f"{items_url}/items/8?q={SECRET}")
            return [first.status_code, second.status_code]

        return ",".join(map(str, asyncio.run(fetch())))

    @app.route("/plain")
    def plain() -> str:
        return "nothing waited on"

    options.setdefault("slow_request_ms", 0)
    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


@pytest.fixture
def monitors() -> Iterator[list[MonitorMiddleware]]:
    made: list[MonitorMiddleware] = []
    yield made
    for monitor in made:
        monitor.close()


def requests_by_endpoint(monitor: MonitorMiddleware) -> dict[str, dict[str, Any]]:
    rows = get_json(monitor, "/monitoring/requests?limit=1000")["requests"]
    return {row["endpoint"]: row for row in rows}


def queries_by_statement(monitor: MonitorMiddleware, query: str = "") -> dict[str, dict[str, Any]]:
    rows = get_json(monitor, f"/monitoring/queries{query}")["queries"]
    return {row["statement"]: row for row in rows}


def leaks(text: str) -> list[str]:
    """The app's literals found in ``text``: the secret, and any id as a whole number."""
    found = [SECRET] if SECRET in text else []
    found += [str(i) for i in BOUND_IDS + INLINE_IDS if re.search(rf"(?<![0-9.]){i}(?![0-9])", text)]
    return found


# -- 1. Flask + SQLAlchemy -------------------------------------------------------------------------


def test_flask_sqlalchemy_counts_queries_flags_n_plus_one_and_keeps_no_literal(
    tmp_path: Path, monitors: list[MonitorMiddleware]
) -> None:
    engine = app_database(tmp_path / "app")
    (tmp_path / "store").mkdir()
    store_file = tmp_path / "store" / "wsgimon.sqlite3"
    _, monitor = make_app(engine, storage=f"sqlite:///{store_file}", slow_request_ms=20, slow_sample_interval_ms=10)
    monitors.append(monitor)
    for path in ("/one", "/bound", "/inline", "/held", "/plain"):
        assert call(monitor, path).status == "200 OK"

    logged = requests_by_endpoint(monitor)
    assert logged["/one"]["db_queries"] == 1 and logged["/one"]["db_ms"] > 0
    assert logged["/bound"]["db_queries"] == 12 and logged["/bound"]["db_ms"] > 0
    assert logged["/inline"]["db_queries"] == 12
    assert logged["/held"]["db_queries"] == 3
    assert (logged["/plain"]["db_queries"], logged["/plain"]["db_ms"]) == (0, 0.0)
    assert logged["/bound"]["db_ms"] <= logged["/bound"]["duration_ms"]

    queries = queries_by_statement(monitor)
    bound = queries["SELECT name FROM items WHERE id = ?"]
    inline = queries["SELECT name FROM items WHERE id = ? AND tag = ?"]
    single = queries["SELECT count(*) FROM items WHERE tag = ?"]
    assert len(queries) == 3, list(queries)
    # One statement for all twelve, whether the app bound its ids or wrote them into the text.
    assert (bound["count"], inline["count"], single["count"]) == (12, 15, 1)
    assert bound["n_plus_one"] == 1 and inline["n_plus_one"] == 1 and single["n_plus_one"] == 0
    assert bound["frame"] is not None and "lookup_each_bound" in bound["frame"]
    assert inline["frame"] is not None and "lookup_each_inline" in inline["frame"]
    assert bound["frame"].startswith("tests.test_time_spent in ")
    assert bound["endpoints"] == [{"endpoint": "/bound", "method": "GET", "count": 12}]
    assert {row["endpoint"]: row["count"] for row in inline["endpoints"]} == {"/inline": 12, "/held": 3}
    assert bound["p95_ms"] is not None and 0 < bound["p95_ms"] <= bound["max_ms"]
    assert bound["total_ms"] > 0 and bound["errors"] == 0

    # Filtered by endpoint: only what that endpoint ran.
    assert list(queries_by_statement(monitor, "?endpoint=/bound")) == ["SELECT name FROM items WHERE id = ?"]

    # The endpoint's totals carry what its requests spent.
    endpoints = {row["endpoint"]: row for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert endpoints["/bound"]["time_spent"]["db_queries"]["avg"] == 12
    assert endpoints["/plain"]["time_spent"]["db_queries"]["avg"] == 0
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["time_spent"]["db_queries"]["avg"] == pytest.approx((1 + 12 + 12 + 3 + 0) / 5, abs=0.01)

    # The slow request lists its statements, normalised.
    slow = get_json(monitor, "/monitoring/slow")
    (held,) = [row for row in slow["slow"] if row["endpoint"] == "/held"]
    assert [(q["statement"], q["count"]) for q in held["queries"]] == [
        ("SELECT name FROM items WHERE id = ? AND tag = ?", 3)
    ]

    answers = [
        get_json(monitor, path)
        for path in (
            "/monitoring/queries?window=all",
            "/monitoring/requests?limit=1000",
            "/monitoring/slow",
            "/monitoring/endpoints",
            "/monitoring/stats",
            "/monitoring/outbound",
        )
    ]
    assert not leaks(json.dumps(answers))

    monitor.close()
    with sqlite3.connect(store_file) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        stored = {table: conn.execute(f'SELECT * FROM "{table}"').fetchall() for table in tables}
    assert stored["dependencies"], "the statements were stored"
    assert not leaks(repr(stored))
    file_bytes = b"".join(path.read_bytes() for path in (tmp_path / "store").iterdir())
    assert not leaks(file_bytes.decode("latin-1"))


def test_a_failing_query_is_counted_as_an_error(tmp_path: Path, monitors: list[MonitorMiddleware]) -> None:
    engine = app_database(tmp_path / "app")
    app = Flask("failing_query")
    app.logger.disabled = True

    @app.route("/broken")
    def broken() -> str:
        with engine.connect() as conn:
            conn.execute(text("SELECT name FROM items WHERE id = :id"), {"id": 1})
            try:
                conn.execute(text(f"SELECT nope FROM items WHERE tag = '{SECRET}'"))
            except sqlalchemy.exc.OperationalError:
                return "recovered"
        return "unexpected"

    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://")
    app.wsgi_app = monitor  # type: ignore[method-assign]
    monitors.append(monitor)
    assert call(monitor, "/broken").body == b"recovered"
    (logged,) = get_json(monitor, "/monitoring/requests")["requests"]
    assert logged["db_queries"] == 2
    queries = queries_by_statement(monitor)
    assert queries["SELECT nope FROM items WHERE tag = ?"]["errors"] == 1
    assert queries["SELECT name FROM items WHERE id = ?"]["errors"] == 0
    assert not leaks(json.dumps(queries))


def test_queries_outside_a_request_are_not_counted(tmp_path: Path, monitors: list[MonitorMiddleware]) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, storage="memory://")
    monitors.append(monitor)
    with engine.connect() as conn:  # a script or a background thread: no request to charge
        conn.execute(text(LOOKUP_SQL), {"id": BOUND_IDS[0]})
    done = threading.Event()

    def elsewhere() -> None:
        with engine.connect() as conn:
            conn.execute(text(LOOKUP_SQL), {"id": BOUND_IDS[1]})
        done.set()

    threading.Thread(target=elsewhere).start()
    assert done.wait(10)
    call(monitor, "/one")
    (logged,) = get_json(monitor, "/monitoring/requests")["requests"]
    assert logged["db_queries"] == 1
    assert list(queries_by_statement(monitor)) == ["SELECT count(*) FROM items WHERE tag = ?"]


# -- 3. a raw DB-API connection --------------------------------------------------------------------


def test_an_instrumented_dbapi_connection_counts(tmp_path: Path, monitors: list[MonitorMiddleware]) -> None:
    path = tmp_path / "raw.sqlite3"
    raw = sqlite3.connect(path, check_same_thread=False)
    conn = wsgimon.instrument_dbapi(raw)
    assert wsgimon.instrument_dbapi(conn) is conn
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany("INSERT INTO users (id, email) VALUES (?, ?)", [(i, f"{i}@example.com") for i in BOUND_IDS])
    conn.commit()

    def users(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        cursor = conn.cursor()
        emails = []
        for user_id in BOUND_IDS[:6]:
            cursor.execute("SELECT email FROM users WHERE id = ?", (user_id,))
            emails.append(cursor.fetchone()[0])
        with conn:  # the connection's shortcut, and its context manager
            conn.execute(f"UPDATE users SET email = '{SECRET}@example.com' WHERE id = {BOUND_IDS[0]}")
        for row in conn.cursor().execute("SELECT count(*) FROM users"):
            emails.append(str(row[0]))
        shortcut = conn.execute("SELECT count(*) FROM users WHERE email LIKE ?", ("%@example.com",))
        emails.append(str(next(shortcut)[0]))
        shortcut.execute("SELECT count(*) FROM users WHERE email LIKE ?", ("%@example.org",))  # its cursor, timed
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [",".join(emails).encode()]

    monitor = MonitorMiddleware(users, storage="memory://")
    monitors.append(monitor)
    assert call(monitor, "/users").status == "200 OK"
    (logged,) = get_json(monitor, "/monitoring/requests")["requests"]
    assert logged["db_queries"] == 10 and logged["db_ms"] > 0
    queries = queries_by_statement(monitor)
    assert queries["SELECT email FROM users WHERE id = ?"]["count"] == 6
    assert queries["SELECT email FROM users WHERE id = ?"]["n_plus_one"] == 1
    assert "users" in queries["SELECT email FROM users WHERE id = ?"]["frame"]
    assert queries["UPDATE users SET email = ? WHERE id = ?"]["count"] == 1
    assert queries["SELECT count(*) FROM users"]["count"] == 1
    assert queries["SELECT count(*) FROM users WHERE email LIKE ?"]["count"] == 2
    assert not leaks(json.dumps(queries))
    # Everything else passes through to the driver's connection.
    assert conn.total_changes == raw.total_changes and conn.in_transaction is False
    raw.close()


# -- 4. outbound calls -----------------------------------------------------------------------------


def test_calls_through_urllib_requests_and_httpx_are_timed_and_grouped(
    tmp_path: Path, items_url: str, monitors: list[MonitorMiddleware]
) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, items_url, storage="memory://")
    monitors.append(monitor)
    assert call(monitor, "/fanout").body == b"called"
    logged = requests_by_endpoint(monitor)["/fanout"]
    assert logged["http_calls"] == 3 and logged["http_ms"] > 0
    assert logged["http_ms"] <= logged["duration_ms"]
    assert logged["db_queries"] == 0
    (target,) = get_json(monitor, "/monitoring/outbound")["outbound"]
    assert (target["method"], target["target"], target["count"], target["errors"]) == (
        "GET",
        f"{items_url}/items/<int>",
        3,
        0,
    )
    assert target["p95_ms"] is not None and target["p95_ms"] > 0
    assert target["endpoints"] == [{"endpoint": "/fanout", "method": "GET", "count": 3}]
    endpoints = {row["endpoint"]: row for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert endpoints["/fanout"]["time_spent"]["http_calls"]["avg"] == 3


def test_a_failing_call_is_an_error_of_its_target(items_url: str, monitors: list[MonitorMiddleware]) -> None:
    app = Flask("failing_call")

    @app.route("/failing-call")
    def failing_call() -> str:
        return str(httpx.get(f"{items_url}/items/0", timeout=5).status_code)

    closed = f"http://127.0.0.1:{_closed_port()}"

    @app.route("/refused")
    def refused() -> str:
        with contextlib.suppress(requests.ConnectionError):
            return f"unexpected {requests.get(f'{closed}/items/5', timeout=5)}"
        with contextlib.suppress(OSError):
            return f"unexpected {urllib.request.urlopen(f'{closed}/items/6', timeout=5)}"
        return "refused"

    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://")
    app.wsgi_app = monitor  # type: ignore[method-assign]
    monitors.append(monitor)
    assert call(monitor, "/failing-call").body == b"500"
    (target,) = get_json(monitor, "/monitoring/outbound")["outbound"]
    assert (target["target"], target["count"], target["errors"]) == (f"{items_url}/items/<int>", 1, 1)
    # A refused connection never had a response: still a call of the request, and a failed one.
    assert call(monitor, "/refused").body == b"refused"
    logged = requests_by_endpoint(monitor)["/refused"]
    assert logged["http_calls"] == 2 and logged["http_ms"] > 0
    targets = {row["target"]: row for row in get_json(monitor, "/monitoring/outbound")["outbound"]}
    assert (targets[f"{closed}/items/<int>"]["count"], targets[f"{closed}/items/<int>"]["errors"]) == (2, 2)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_calls_over_tls_are_named_https(tls_items: tuple[str, str], monitors: list[MonitorMiddleware]) -> None:
    url, cert = tls_items
    app = Flask("tls_calls")

    @app.route("/fanout-tls")
    def fanout_tls() -> str:
        context = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(f"{url}/items/1", timeout=5, context=context) as response:
            response.read()
        requests.get(f"{url}/items/2", timeout=5, verify=cert).raise_for_status()
        httpx.get(f"{url}/items/3", timeout=5, verify=context).raise_for_status()
        return "called"

    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://")
    app.wsgi_app = monitor  # type: ignore[method-assign]
    monitors.append(monitor)
    assert call(monitor, "/fanout-tls").body == b"called"
    (logged,) = get_json(monitor, "/monitoring/requests")["requests"]
    assert logged["http_calls"] == 3
    (target,) = get_json(monitor, "/monitoring/outbound")["outbound"]
    assert (target["target"], target["count"], target["errors"]) == (f"{url}/items/<int>", 3, 0)


def test_clients_name_one_target_alike(items_url: str, monitors: list[MonitorMiddleware]) -> None:
    """The same URL through http.client and httpx is one target: as sent, percent-encoding kept."""
    app = Flask("alike")

    @app.route("/files")
    def files() -> str:
        with urllib.request.urlopen(f"{items_url}/files/report%20q3?v=1", timeout=5) as response:
            response.read()
        httpx.get(f"{items_url}/files/report%20q3?v=2", timeout=5)
        return "called"

    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://")
    app.wsgi_app = monitor  # type: ignore[method-assign]
    monitors.append(monitor)
    assert call(monitor, "/files").body == b"called"
    (target,) = get_json(monitor, "/monitoring/outbound")["outbound"]
    assert (target["target"], target["count"]) == (f"{items_url}/files/report%20q3", 2)


# -- 6. async httpx in the request's thread --------------------------------------------------------


def test_async_httpx_on_an_event_loop_in_the_request_thread_counts(
    tmp_path: Path, items_url: str, monitors: list[MonitorMiddleware]
) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, items_url, storage="memory://")
    monitors.append(monitor)
    assert call(monitor, "/fanout-async").body == b"200,200"
    logged = requests_by_endpoint(monitor)["/fanout-async"]
    assert logged["http_calls"] == 2 and logged["http_ms"] > 0
    outbound = get_json(monitor, "/monitoring/outbound")
    (target,) = outbound["outbound"]
    assert (target["target"], target["count"]) == (f"{items_url}/items/<int>", 2)
    assert SECRET not in json.dumps(outbound)  # the query string is not part of the target


# -- 5. capture off --------------------------------------------------------------------------------


def test_capture_off_counts_nothing_and_says_unknown(
    tmp_path: Path, items_url: str, monitors: list[MonitorMiddleware]
) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, items_url, storage="memory://", capture_db=False, capture_http=False)
    monitors.append(monitor)
    for path in ("/bound", "/fanout"):
        assert call(monitor, path).status == "200 OK"
    for row in get_json(monitor, "/monitoring/requests")["requests"]:
        assert (row["db_queries"], row["db_ms"], row["http_calls"], row["http_ms"]) == (None, None, None, None)
    assert get_json(monitor, "/monitoring/queries")["queries"] == []
    assert get_json(monitor, "/monitoring/outbound")["outbound"] == []
    (endpoint, *_) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert endpoint["time_spent"] is None


def test_capture_db_off_still_times_calls(tmp_path: Path, items_url: str, monitors: list[MonitorMiddleware]) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, items_url, storage="memory://", capture_db=False)
    monitors.append(monitor)
    for path in ("/bound", "/fanout"):
        assert call(monitor, path).status == "200 OK"
    logged = requests_by_endpoint(monitor)
    # Not counted: unknown (null), neither 12 nor a zero that would claim none were made.
    assert (logged["/bound"]["db_queries"], logged["/bound"]["db_ms"]) == (None, None)
    assert (logged["/fanout"]["db_queries"], logged["/fanout"]["db_ms"]) == (None, None)
    assert logged["/fanout"]["http_calls"] == 3
    assert get_json(monitor, "/monitoring/queries")["queries"] == []
    assert len(get_json(monitor, "/monitoring/outbound")["outbound"]) == 1


def test_capture_http_off_still_counts_queries(
    tmp_path: Path, items_url: str, monitors: list[MonitorMiddleware]
) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, items_url, storage="memory://", capture_http=False)
    monitors.append(monitor)
    for path in ("/bound", "/fanout"):
        assert call(monitor, path).status == "200 OK"
    logged = requests_by_endpoint(monitor)
    assert logged["/bound"]["db_queries"] == 12
    assert (logged["/fanout"]["http_calls"], logged["/fanout"]["http_ms"]) == (None, None)
    assert get_json(monitor, "/monitoring/outbound")["outbound"] == []
    assert len(get_json(monitor, "/monitoring/queries")["queries"]) == 1


def test_n_plus_one_repeats_is_the_threshold(tmp_path: Path, monitors: list[MonitorMiddleware]) -> None:
    engine = app_database(tmp_path / "app")
    _, monitor = make_app(engine, storage="memory://", n_plus_one_repeats=13)
    monitors.append(monitor)
    call(monitor, "/bound")
    (row,) = get_json(monitor, "/monitoring/queries")["queries"]
    assert (row["count"], row["n_plus_one"]) == (12, 0)
