"""The OpenAPI 3.1 description of the monitoring API, served at ``<prefix>/openapi.json``."""

from __future__ import annotations

from typing import Any

from . import alerts, dependencies, endpoints, errors, issues, releases, requests, slow
from .openapi_blocks import (
    COUNTS,
    ERROR,
    IN_FLIGHT,
    MS,
    RELEASE,
    SPENT_BY_REQUEST,
    TIME,
    TOTALS,
    WINDOW,
    get,
    limit,
    object_schema,
)
from .openapi_features import (
    LOST_REQUESTS,
    SATURATION,
    alerts_schema,
    checkins_paths,
    dependencies_schema,
    releases_schema,
    silences_paths,
    slow_schema,
)
from .params import MAX_MS, STATUS_PATTERN

__all__ = ["openapi_document"]


def openapi_document(prefix: str, version: str) -> dict[str, Any]:
    endpoint_row = object_schema(
        ["endpoint", "method", *TOTALS],
        {
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            **TOTALS,
            "last_seen": TIME,
            "sparkline": {"type": "array", "items": MS, "description": "with sparkline=N: average latency per slot"},
        },
    )
    request_row = object_schema(
        ["time", "method", "path", "endpoint", "status", "duration_ms", *SPENT_BY_REQUEST],
        {
            "time": TIME,
            "method": {"type": "string"},
            "path": {"type": "string", "description": "path and query string, sensitive values redacted"},
            "endpoint": {"type": "string"},
            "status": {"type": "integer"},
            "duration_ms": {"type": "number"},
            "ttfb_ms": MS,
            "error_type": {"type": ["string", "null"]},
            "response_bytes": {"type": ["integer", "null"]},
            "sampled": {"type": "boolean", "description": "its stack was sampled: see /slow"},
            **SPENT_BY_REQUEST,
        },
    )
    error_row = object_schema(
        ["type", "endpoint", "count", "last_seen", "message"],
        {
            "type": {"type": "string"},
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "count": {"type": "integer"},
            "first_seen": TIME,
            "last_seen": TIME,
            "message": {"type": "string"},
            "traceback": {"type": ["string", "null"]},
        },
    )
    point = object_schema(
        ["time", "requests", "errors", "client_errors", "avg", "p50", "p95", "p99"],
        {
            "time": TIME,
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "client_errors": {"type": "integer"},
            **dict.fromkeys(("avg", "p50", "p95", "p99"), MS),
        },
    )
    check = object_schema(
        ["status", "detail"],
        {
            "status": {"enum": ["ok", "degraded", "fail"]},
            "detail": {"type": "string"},
            "duration_ms": {"type": "number"},
        },
    )
    health = object_schema(
        ["status", "checks", "uptime_s", "version", "process"],
        {
            "status": {"enum": ["ok", "degraded", "fail"]},
            "checks": {"type": "object", "additionalProperties": check},
            "uptime_s": {"type": "number"},
            "version": {"type": "string"},
            "process": object_schema(
                ["pid", "rss_bytes", "cpu_s", "threads", "uptime_s"],
                {
                    "pid": {"type": "integer"},
                    "rss_bytes": {"type": "integer"},
                    "cpu_s": {"type": "number"},
                    "threads": {"type": "integer"},
                    "uptime_s": {"type": "number"},
                },
            ),
            "deployment": object_schema(
                ["processes"],
                {
                    "processes": {
                        "type": "array",
                        "description": "processes that wrote statistics in the last minute",
                        "items": object_schema(
                            ["host", "pid", "started", "last_flush", "requests", "in_flight"],
                            {
                                "host": {"type": "string"},
                                "pid": {"type": "integer"},
                                "started": TIME,
                                "last_flush": TIME,
                                "requests": {"type": "integer"},
                                "in_flight": {"type": "integer", "description": "requests running at its last flush"},
                            },
                        ),
                    }
                },
            ),
        },
    )
    stats = object_schema(
        [*TOTALS, "error_types", "saturation", "lost_requests"],
        {
            **TOTALS,
            "error_types": COUNTS,
            "window": {"type": "string"},
            "release": {"type": "string", "description": "with release="},
            "requests_per_minute": {"type": "number"},
            "uptime_s": {"type": "number"},
            "since": TIME,
            "endpoints_overflowed": {"type": "integer"},
            "in_flight": IN_FLIGHT,
            "saturation": SATURATION,
            "lost_requests": LOST_REQUESTS,
        },
    )
    health_get = get("Health of the application (503 when a check fails)", health)
    health_get["get"]["responses"]["503"] = {
        "description": "A health check failed",
        "content": {"application/json": {"schema": health}},
    }
    query = {"in": "query", "required": False}
    by_dependency = [
        WINDOW,
        {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
        {"name": "method", **query, "schema": {"type": "string", "maxLength": 32}},
        RELEASE,
        {**limit(dependencies.MAX_LIMIT), "description": "the most rows wanted; default 50"},
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "wsgimon monitoring API", "version": version},
        "servers": [{"url": prefix}],
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{}, {"basic": []}, {"bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "summary": "The dashboard: one self-contained HTML page over this API",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/stats": get("Totals and latency over all endpoints", stats, [WINDOW, RELEASE]),
            "/endpoints": get(
                "Statistics per endpoint and method",
                object_schema(
                    ["window", "endpoints"],
                    {
                        "window": {"type": "string"},
                        "release": {"type": "string", "description": "with release="},
                        "endpoints": {"type": "array", "items": endpoint_row},
                    },
                ),
                [
                    {"name": "sort", **query, "schema": {"enum": list(endpoints.SORT_KEYS)}},
                    limit(endpoints.MAX_LIMIT),
                    WINDOW,
                    RELEASE,
                    {
                        "name": "sparkline",
                        **query,
                        "description": "add an average-latency line of this many points to every row",
                        "schema": {"type": "integer", "minimum": 1, "maximum": endpoints.MAX_SPARKLINE},
                    },
                ],
            ),
            "/requests": get(
                "The most recent requests, newest first",
                object_schema(["requests"], {"requests": {"type": "array", "items": request_row}}),
                [
                    {
                        **limit(requests.MAX_LIMIT),
                        "description": "the most rows wanted; the log holds recent_requests at most",
                    },
                    {
                        "name": "status",
                        **query,
                        "schema": {"type": "string", "pattern": STATUS_PATTERN, "examples": ["5xx", "404"]},
                    },
                    {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
                    {"name": "min_ms", **query, "schema": {"type": "number", "minimum": 0, "maximum": MAX_MS}},
                ],
            ),
            "/errors": get(
                "Error types per endpoint with the latest message and traceback",
                object_schema(["errors"], {"errors": {"type": "array", "items": error_row}}),
                [limit(errors.MAX_LIMIT), WINDOW, RELEASE],
            ),
            "/timeseries": get(
                "Requests, errors and latency per step over the window, empty steps as zeros",
                object_schema(
                    ["step_s", "points", "releases"],
                    {
                        "window": {"type": "string"},
                        "step_s": {"type": "integer"},
                        "points": {"type": "array", "items": point},
                        "releases": {
                            "type": "array",
                            "description": "releases first seen in the window, oldest first: deploy markers",
                            "items": object_schema(
                                ["release", "first_seen"], {"release": {"type": "string"}, "first_seen": TIME}
                            ),
                        },
                    },
                ),
                [
                    WINDOW,
                    RELEASE,
                    {
                        "name": "step",
                        **query,
                        "schema": {"enum": ["1m", "5m", "10m", "15m", "30m", "1h", "6h", "12h", "1d"]},
                    },
                    {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
                    {"name": "method", **query, "schema": {"type": "string", "maxLength": 32}},
                ],
            ),
            "/health": health_get,
            "/slow": get(
                "The slowest requests whose stacks were sampled while they ran, with their profiles",
                slow_schema(),
                [
                    {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
                    limit(slow.MAX_LIMIT),
                ],
            ),
            "/queries": get(
                "Database statements (normalised) the requests ran, the most time first, with likely N+1s",
                dependencies_schema("queries"),
                by_dependency,
            ),
            "/outbound": get(
                "Outbound HTTP targets the requests called, the most time first",
                dependencies_schema("outbound"),
                by_dependency,
            ),
            "/releases": get(
                "Every release, newest first, each compared with the one before it: regressions, new error types",
                releases_schema(),
                [limit(releases.MAX_LIMIT)],
            ),
            "/alerts": get(
                "Recent alerts of the deployment with each channel's delivery, firing conditions, SLO status",
                alerts_schema(),
                [limit(alerts.MAX_LIMIT)],
            ),
            **issues.openapi_paths(TIME, ERROR, WINDOW),
            **silences_paths(),
            **checkins_paths(),
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus text format (OpenMetrics with Accept: application/openmetrics-text)",
                    "responses": {
                        "200": {
                            "description": "the deployment's counters and histograms",
                            "content": {"text/plain": {}, "application/openmetrics-text": {}},
                        }
                    },
                }
            },
        },
    }
