"""Queries and outbound calls in /monitoring/metrics, and in the JSON answers as the OpenAPI document says.

A real app runs its queries through ``wsgimon.instrument_dbapi`` on a sqlite3 connection and calls a
local HTTP server through ``urllib``; the exposition is parsed (and checked by promtool when it is
installed), and every answer that carries the new fields is validated against the served document,
strictly: a property the document does not declare fails.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import wsgimon
from tests.helpers import call, get_json
from tests.test_metrics import PROMTOOL, need
from wsgimon import MonitorMiddleware

#: what each path of the app does: queries (one of them N+1), outbound calls, both, or neither
PLAN = {"/one": 4, "/loop": 3, "/call": 2, "/none": 2, "/broken": 1}
LOOP = 6  # the N+1: one query per item, after the list


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_app(upstream: str, **options: Any) -> MonitorMiddleware:
    raw = sqlite3.connect(":memory:", check_same_thread=False)
    raw.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    raw.executemany("INSERT INTO items (name) VALUES (?)", [(f"item {n}",) for n in range(LOOP)])
    db = wsgimon.instrument_dbapi(raw)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/one":
            db.execute("SELECT name FROM items WHERE id = ?", (1,)).fetchall()
        elif path == "/loop":
            ids = [row[0] for row in db.execute("SELECT id FROM items").fetchall()]
            for item in ids:
                db.execute("SELECT name FROM items WHERE id = ?", (item,)).fetchone()
        elif path == "/call":
            db.execute("SELECT count(*) FROM items").fetchone()
            with urllib.request.urlopen(f"{upstream}/users/42?x=1", timeout=5) as answer:
                answer.read()
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{upstream}/fail/7", timeout=5)
        elif path == "/broken":
            with pytest.raises(sqlite3.OperationalError):
                db.execute("SELECT nothing FROM nowhere")
            time.sleep(0.4)  # slow: its stack is sampled, and /slow lists its queries
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    options.setdefault("storage", "memory://")
    options.setdefault("slow_request_ms", 100)
    options.setdefault("slow_sample_interval_ms", 20)
    return MonitorMiddleware(app, **options)


@pytest.fixture(scope="module")
def monitor(upstream: str) -> Iterator[MonitorMiddleware]:
    monitor = make_app(upstream)
    for path, times in PLAN.items():
        for _ in range(times):
            assert call(monitor, path).status == "200 OK"
    try:
        yield monitor
    finally:
        monitor.close()


# -- the exposition, parsed -------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family -> type, (name, labels) -> value), checking that every sample belongs to a typed family."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            assert family not in types, f"{family} typed twice"
            types[family] = kind
        elif line and not line.startswith("#"):
            found = _SAMPLE.match(line)
            assert found, line
            name, labels, value = found.groups()
            assert any(name == f or name.startswith(f + "_") for f in types), f"{name} has no TYPE"
            key = (name, frozenset(_LABEL.findall(labels or "")))
            assert key not in samples, f"{line} repeated"
            samples[key] = float(value)
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def exposition(monitor: MonitorMiddleware, openmetrics: bool = False) -> str:
    extra = {"HTTP_ACCEPT": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    answer = call(monitor, "/monitoring/metrics", **extra)
    assert answer.status == "200 OK"
    return answer.body.decode()


def test_queries_and_calls_are_counted_per_endpoint(monitor: MonitorMiddleware) -> None:
    types, samples = parse(exposition(monitor))
    for family in ("wsgimon_db_queries", "wsgimon_db_query_seconds", "wsgimon_http_calls", "wsgimon_http_call_seconds"):
        assert types[family + "_total"] == "counter"
    assert types["wsgimon_db_queries_per_request"] == "histogram"
    queries = {
        "/one": PLAN["/one"],
        "/loop": PLAN["/loop"] * (1 + LOOP),
        "/call": PLAN["/call"],
        "/broken": PLAN["/broken"],  # a failed query counts
    }
    for endpoint, expected in queries.items():
        assert value(samples, "wsgimon_db_queries_total", endpoint=endpoint, method="GET") == expected
        seconds = value(samples, "wsgimon_db_query_seconds_total", endpoint=endpoint, method="GET")
        assert seconds is not None and 0 < seconds < 5
    assert value(samples, "wsgimon_http_calls_total", endpoint="/call", method="GET") == 2 * PLAN["/call"]
    called = value(samples, "wsgimon_http_call_seconds_total", endpoint="/call", method="GET")
    assert called is not None and 0 < called < 10
    assert value(samples, "wsgimon_http_calls_total", endpoint="/one", method="GET") == 0
    # An endpoint that never made a query nor a call has no such series at all.
    assert not [key for key in samples if dict(key[1]).get("endpoint") == "/none" and "_db_" in key[0]]
    assert not [key for key in samples if dict(key[1]).get("endpoint") == "/none" and "_calls" in key[0]]


def test_queries_per_request_histogram_is_exact(monitor: MonitorMiddleware) -> None:
    _, samples = parse(exposition(monitor))
    bucket = "wsgimon_db_queries_per_request_bucket"
    loop = {le: value(samples, bucket, endpoint="/loop", method="GET", le=le) for le in ("5.0", "10.0", "+Inf")}
    assert loop == {"5.0": 0, "10.0": PLAN["/loop"], "+Inf": PLAN["/loop"]}
    assert value(samples, bucket, endpoint="/one", method="GET", le="0.0") == 0
    assert value(samples, bucket, endpoint="/one", method="GET", le="1.0") == PLAN["/one"]
    total = PLAN["/loop"] * (1 + LOOP)
    assert value(samples, "wsgimon_db_queries_per_request_sum", endpoint="/loop", method="GET") == total
    assert value(samples, "wsgimon_db_queries_per_request_count", endpoint="/loop", method="GET") == PLAN["/loop"]
    for endpoint in ("/one", "/loop", "/call", "/broken"):
        found = [
            (float(dict(labels)["le"]), n)
            for name, labels in samples
            if name == bucket and dict(labels)["endpoint"] == endpoint
            for n in [samples[(name, labels)]]
        ]
        counts = [n for _, n in sorted(found)]
        assert counts == sorted(counts) and counts[-1] == PLAN[endpoint], endpoint


def test_counters_only_grow(upstream: str) -> None:
    monitor = make_app(upstream)
    try:
        call(monitor, "/loop")
        _, before = parse(exposition(monitor))
        call(monitor, "/loop")
        call(monitor, "/one")
        _, after = parse(exposition(monitor))
    finally:
        monitor.close()
    assert value(after, "wsgimon_db_queries_total", endpoint="/loop", method="GET") == 2 * (1 + LOOP)
    for key, n in before.items():
        if key[0].startswith(("wsgimon_db_", "wsgimon_http_call")):
            assert after[key] >= n, key


def test_nothing_new_when_nothing_is_captured(upstream: str) -> None:
    monitor = make_app(upstream, capture_db=False, capture_http=False)
    try:
        for path in PLAN:
            call(monitor, path)
        text = exposition(monitor)
        parse(text)
    finally:
        monitor.close()
    assert "wsgimon_http_requests_total" in text
    assert "wsgimon_db_" not in text and "wsgimon_http_call" not in text


def test_openmetrics_names_the_counter_families_without_total(monitor: MonitorMiddleware) -> None:
    text = exposition(monitor, openmetrics=True)
    assert "# TYPE wsgimon_db_queries counter" in text and "# TYPE wsgimon_http_call_seconds counter" in text
    assert "# TYPE wsgimon_db_queries_per_request histogram" in text
    assert 'wsgimon_db_queries_total{endpoint="/one",method="GET"} 4' in text and text.endswith("# EOF\n")


def test_promtool_finds_the_exposition_clean(monitor: MonitorMiddleware) -> None:
    promtool = need(PROMTOOL, "promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition(monitor).encode(), capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the JSON answers against the OpenAPI document ---------------------------------------------------


def strict(schema: Any) -> Any:
    """The schema with every object closed: a property it does not declare is an error."""
    if isinstance(schema, dict):
        closed = {key: strict(item) for key, item in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.mark.parametrize(
    "path",
    [
        "/queries",
        "/queries?endpoint=/loop&method=GET&window=1h&limit=2",
        "/outbound",
        "/stats",
        "/endpoints",
        "/requests",
        "/slow",
    ],
)
def test_answers_with_queries_and_calls_match_the_document_strictly(monitor: MonitorMiddleware, path: str) -> None:
    from jsonschema import Draft202012Validator

    document = get_json(monitor, "/monitoring/openapi.json")
    resource = path.partition("?")[0]
    schema = document["paths"][resource]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    answer = get_json(monitor, "/monitoring" + path)
    Draft202012Validator(strict(schema)).validate(answer)


def test_the_answers_carry_what_was_measured(monitor: MonitorMiddleware, upstream: str) -> None:
    queries = get_json(monitor, "/monitoring/queries")["queries"]
    by_statement = {row["statement"]: row for row in queries}
    (looped,) = [row for row in queries if row["n_plus_one"]]
    assert looped["n_plus_one"] == PLAN["/loop"] and looped["endpoints"][0]["endpoint"] == "/loop"
    assert any(row["errors"] == 1 for row in by_statement.values())
    assert [row["total_ms"] for row in queries] == sorted((row["total_ms"] for row in queries), reverse=True)
    filtered = get_json(monitor, "/monitoring/queries?endpoint=/one&method=GET")
    assert filtered["endpoint"] == "/one" and len(filtered["queries"]) == 1
    outbound = get_json(monitor, "/monitoring/outbound")["outbound"]
    assert {row["method"] for row in outbound} == {"GET"}
    assert sum(row["count"] for row in outbound) == 2 * PLAN["/call"] and sum(row["errors"] for row in outbound) == 2
    assert all(row["target"].startswith(upstream) for row in outbound)
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["time_spent"]["db_queries"]["avg"] > 0 and stats["time_spent"]["http_calls"]["avg"] > 0
    endpoints = {row["endpoint"]: row for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert endpoints["/loop"]["time_spent"]["db_queries"]["avg"] == 1 + LOOP
    requests = get_json(monitor, "/monitoring/requests?endpoint=/call")["requests"]
    assert {(row["db_queries"], row["http_calls"]) for row in requests} == {(1, 2)}


def test_bad_parameters_of_queries_and_outbound_get_a_400(monitor: MonitorMiddleware) -> None:
    for path, query in (
        ("/monitoring/queries", "limit=0"),
        ("/monitoring/queries", "window=1y"),
        ("/monitoring/outbound", "limit=1001"),
        ("/monitoring/outbound", "method=" + "X" * 33),
    ):
        assert call(monitor, path, query=query).status.startswith("400"), query  # type: ignore[union-attr]
    assert call(monitor, "/monitoring/queries", query="release=nope").status.startswith("404")  # type: ignore[union-attr]
