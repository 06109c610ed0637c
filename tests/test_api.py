"""The JSON API: shapes, filters, sorting, and clear 4xx answers to bad input."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from openapi_spec_validator import validate

from demo_app import create_app
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware

LATENCY_KEYS = {"avg", "min", "max", "p50", "p90", "p95", "p99"}


@pytest.fixture
def monitor() -> MonitorMiddleware:
    _, monitor = create_app()
    for n in range(6):
        call(monitor, f"/items/{n}")
    for _ in range(3):
        call(monitor, "/test/normal")
    call(monitor, "/test/notfound")
    call(monitor, "/test/server-error")
    call(monitor, "/test/server-error")
    call(monitor, "/nowhere")
    return monitor


def test_stats_shape_and_values(monitor: MonitorMiddleware) -> None:
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["requests"] == 13 and stats["errors"] == 2 and stats["client_errors"] == 2
    assert stats["error_rate"] == pytest.approx(2 / 13, abs=1e-6)
    assert set(stats["latency_ms"]) == LATENCY_KEYS
    latency = stats["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert stats["status_codes"] == {"200": 9, "404": 2, "500": 2}
    assert stats["error_types"] == {"404 Not Found": 2, "500 Internal Server Error": 2}
    assert stats["requests_per_minute"] > 0 and stats["uptime_s"] >= 0
    since = datetime.fromisoformat(stats["since"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - since).total_seconds()) < 60


def test_endpoints_sorting_and_limit(monitor: MonitorMiddleware) -> None:
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert [row["endpoint"] for row in rows[:2]] == ["/items/<int:item_id>", "/test/normal"]
    assert {
        "endpoint",
        "method",
        "requests",
        "errors",
        "client_errors",
        "error_rate",
        "latency_ms",
        "status_codes",
        "last_seen",
    } <= set(rows[0])
    by_errors = get_json(monitor, "/monitoring/endpoints?sort=errors&limit=1")["endpoints"]
    assert [(row["endpoint"], row["errors"]) for row in by_errors] == [("/test/server-error", 2)]
    for key in ("p95", "avg"):
        ordered = get_json(monitor, f"/monitoring/endpoints?sort={key}")["endpoints"]
        values = [row["latency_ms"][key] for row in ordered]
        assert values == sorted(values, reverse=True)


def test_requests_filters(monitor: MonitorMiddleware) -> None:
    rows = get_json(monitor, "/monitoring/requests")["requests"]
    assert len(rows) == 13 and rows[0]["path"] == "/nowhere"
    times = [row["time"] for row in rows]
    assert times == sorted(times, reverse=True)
    assert {row["status"] for row in get_json(monitor, "/monitoring/requests?status=5xx")["requests"]} == {500}
    assert len(get_json(monitor, "/monitoring/requests?status=404")["requests"]) == 2
    assert len(get_json(monitor, "/monitoring/requests?status=2xx&limit=4")["requests"]) == 4
    items = get_json(monitor, "/monitoring/requests?endpoint=/items/<int:item_id>")["requests"]
    assert len(items) == 6 and all(row["endpoint"] == "/items/<int:item_id>" for row in items)
    assert get_json(monitor, "/monitoring/requests?min_ms=100000")["requests"] == []
    # A limit is the most rows wanted: more than the log holds gives the whole log; past the
    # documented maximum it is a 400.
    assert len(get_json(monitor, "/monitoring/requests?limit=1000000")["requests"]) == 13
    assert "at most 1000000" in get_json(monitor, "/monitoring/requests?limit=1000001")["error"]


def test_errors_list(monitor: MonitorMiddleware) -> None:
    errors = get_json(monitor, "/monitoring/errors")["errors"]
    by_type = {row["type"]: row for row in errors}
    assert by_type["500 Internal Server Error"]["count"] == 2
    assert by_type["500 Internal Server Error"]["endpoint"] == "/test/server-error"
    assert by_type["404 Not Found"]["count"] == 1  # one per endpoint: /test/notfound and <unmatched>
    assert len([row for row in errors if row["type"] == "404 Not Found"]) == 2


@pytest.mark.parametrize(
    "path",
    [
        "/monitoring/requests?limit=0",
        "/monitoring/requests?limit=ten",
        "/monitoring/requests?status=6xx",
        "/monitoring/requests?status=abc",
        "/monitoring/requests?min_ms=-1",
        "/monitoring/requests?min_ms=nan",
        "/monitoring/endpoints?sort=name",
        "/monitoring/endpoints?limit=-5",
        "/monitoring/stats?windw=1h",
    ],
)
def test_bad_parameters_get_a_400_with_a_message(monitor: MonitorMiddleware, path: str) -> None:
    path, query = path.split("?")
    result = call(monitor, path, query=query)
    assert result.status is not None and result.status.startswith("400")
    body = json.loads(result.body)
    assert set(body) == {"error"} and body["error"]


def test_unknown_path_is_a_json_404(monitor: MonitorMiddleware) -> None:
    result = call(monitor, "/monitoring/nope")
    assert result.status is not None and result.status.startswith("404")
    assert "/monitoring/nope" in json.loads(result.body)["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_get_405_with_allow(monitor: MonitorMiddleware, method: str) -> None:
    result = call(monitor, "/monitoring/stats", method=method)
    assert result.status is not None and result.status.startswith("405")
    assert ("Allow", "GET, HEAD") in result.headers


def test_headers_forbid_caching(monitor: MonitorMiddleware) -> None:
    result = call(monitor, "/monitoring/stats")
    headers = dict(result.headers)
    assert headers["Cache-Control"] == "no-store" and headers["Content-Type"] == "application/json"


def test_prefix_is_configurable_and_bounded_by_segment() -> None:
    _, monitor = create_app(prefix="/_ops")
    assert call(monitor, "/_ops/stats").status == "200 OK"
    assert call(monitor, "/_opsx").status.startswith("404")  # type: ignore[union-attr]
    assert call(monitor, "/monitoring/stats").status.startswith("404")  # type: ignore[union-attr]
    assert get_json(monitor, "/_ops/stats")["requests"] == 2


def test_openapi_document_is_valid_and_lists_every_endpoint(monitor: MonitorMiddleware) -> None:
    document: dict[str, Any] = get_json(monitor, "/monitoring/openapi.json")
    validate(document)
    assert document["openapi"].startswith("3.1")
    # Every resource the API routes is described, and nothing else.
    from wsgimon.api.app import ITEMS, RESOURCES, WRITES

    items = {path.replace("<item>", "{id}") for path in (*ITEMS, *WRITES)}
    assert set(document["paths"]) == {"/", "/openapi.json", "/metrics", *RESOURCES, *items}
    assert {"/stats", "/endpoints", "/requests", "/errors", "/timeseries", "/health", "/alerts"} <= set(RESOURCES)


def test_index_links(monitor: MonitorMiddleware) -> None:
    links = get_json(monitor, "/monitoring/index.json")["links"]
    assert links["dashboard"] == "/monitoring/"
    for link in links.values():
        assert call(monitor, link).status == "200 OK"


def test_every_response_matches_its_documented_schema(monitor: MonitorMiddleware) -> None:
    from jsonschema import Draft202012Validator

    document = get_json(monitor, "/monitoring/openapi.json")
    issue = get_json(monitor, "/monitoring/issues")["issues"][0]["id"]
    for path, item in document["paths"].items():
        if "get" not in item:
            continue  # a write only (POST /silences/{id})
        content = item["get"]["responses"]["200"].get("content", {})
        if "application/json" not in content or path == "/openapi.json":
            continue  # the dashboard, the metrics (text) and this document itself
        schema = content["application/json"]["schema"]
        Draft202012Validator(schema).validate(get_json(monitor, "/monitoring" + path.replace("{id}", issue)))
