"""The OpenAPI 3.1 description of the monitoring API, served at ``<prefix>/openapi.json``."""

from __future__ import annotations

from typing import Any

from ..alerts.silencing import RULES
from . import alerts, endpoints, errors, issues, releases, requests, slow
from .params import MAX_MS, STATUS_PATTERN, WINDOW_PATTERN

__all__ = ["openapi_document"]

_TIME = {"type": ["string", "null"], "format": "date-time"}
_MS = {"type": ["number", "null"]}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
_LATENCY = {
    "type": "object",
    "required": ["avg", "min", "max", "p50", "p90", "p95", "p99"],
    "properties": dict.fromkeys(("avg", "min", "max", "p50", "p90", "p95", "p99"), _MS),
}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _limit(maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _get(summary: str, schema: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Bad parameter", "content": {"application/json": {"schema": _ERROR}}},
        "401": {"description": "Credentials missing or wrong", "content": {"application/json": {"schema": _ERROR}}},
        "403": {
            "description": "Remote client without credentials",
            "content": {"application/json": {"schema": _ERROR}},
        },
    }
    if parameters and any(parameter is _RELEASE for parameter in parameters):
        responses["404"] = _NO_SUCH_RELEASE
    return {"get": {"summary": summary, "parameters": parameters or [], "responses": responses}}


_RELEASE = {
    "name": "release",
    "in": "query",
    "required": False,
    "description": "only this release's requests (one of /releases; kept per hour, so the window starts at its hour)",
    "schema": {"type": "string", "maxLength": 64},
}
_NO_SUCH_RELEASE = {
    "description": "release= names a release the store does not keep",
    "content": {"application/json": {"schema": _ERROR}},
}
_WINDOW = {
    "name": "window",
    "in": "query",
    "required": False,
    "description": "5m, 1h, 24h, 7d, 30d (any <n>m|h|d up to 366d) or all; default 24h",
    "schema": {
        "type": "string",
        "pattern": WINDOW_PATTERN,
        "default": "24h",
        "examples": ["5m", "1h", "24h", "7d", "30d", "all"],
    },
}


# What /stats and every row of /endpoints have in common.
_TOTALS = {
    "requests": {"type": "integer"},
    "errors": {"type": "integer"},
    "client_errors": {"type": "integer"},
    "error_rate": {"type": "number"},
    "latency_ms": _LATENCY,
    "status_codes": _COUNTS,
}


_IN_FLIGHT = _object(
    ["process", "oldest_s", "deployment", "deployment_oldest_s"],
    {
        "process": {"type": "integer", "description": "requests running in the answering process"},
        "oldest_s": _MS,
        "deployment": {
            "type": "integer",
            "description": "requests running in every live process (others' as of their last flush)",
        },
        "deployment_oldest_s": _MS,
    },
)


def _slow_schema() -> dict[str, Any]:
    frame = _object(
        ["file", "line", "function"],
        {"file": {"type": "string"}, "line": {"type": "integer"}, "function": {"type": "string"}},
    )
    row = _object(
        ["time", "method", "path", "endpoint", "status", "duration_ms", "samples", "app_frame", "frames", "stacks"],
        {
            "time": _TIME,
            "method": {"type": "string"},
            "path": {"type": "string"},
            "endpoint": {"type": "string"},
            "status": {"type": "integer"},
            "duration_ms": {"type": "number"},
            "samples": {"type": "integer"},
            "app_frame": {"anyOf": [frame, {"type": "null"}]},
            "frames": {
                "type": "array",
                "items": {**frame, "properties": {**frame["properties"], "share": {"type": "number"}}},
            },
            "stacks": {
                "type": "array",
                "items": _object(
                    ["frames", "count"], {"frames": {"type": "array", "items": frame}, "count": {"type": "integer"}}
                ),
            },
        },
    )
    return _object(["slow", "in_flight"], {"slow": {"type": "array", "items": row}, "in_flight": _IN_FLIGHT})


def _releases_schema() -> dict[str, Any]:
    regression = _object(
        ["endpoint", "method", "metric", "before", "after", "requests_before", "requests_after"],
        {
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "metric": {"enum": ["p95", "error_rate"]},
            "before": {"type": "number", "description": "p95 in ms, or the error rate as a fraction"},
            "after": {"type": "number"},
            "requests_before": {"type": "integer"},
            "requests_after": {"type": "integer"},
        },
    )
    row = _object(
        [
            "release",
            "first_seen",
            "last_seen",
            "processes",
            "requests",
            "errors",
            "error_rate",
            "latency_ms",
            "compared_with",
            "new_error_types",
            "regressions",
        ],
        {
            "release": {"type": "string"},
            "first_seen": _TIME,
            "last_seen": _TIME,
            "processes": {"type": "integer", "description": "processes running it now"},
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "error_rate": {"type": "number"},
            "latency_ms": _object(["p50", "p95", "p99"], dict.fromkeys(("p50", "p95", "p99"), _MS)),
            "compared_with": {"type": ["string", "null"], "description": "the release before it"},
            "new_error_types": {"type": "array", "items": {"type": "string"}},
            "regressions": {"type": "array", "items": regression},
        },
    )
    return _object(
        ["current", "releases"],
        {
            "current": {"type": ["string", "null"], "description": "the answering process's release"},
            "releases": {"type": "array", "items": row},
        },
    )


def _alerts_schema() -> dict[str, Any]:
    delivery = _object(
        ["status"],
        {
            "status": {"enum": ["queued", "retrying", "delivered", "failed"]},
            "reason": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
        },
    )
    alert = _object(
        ["id", "rule", "key", "severity", "state", "title", "summary", "opened", "sent", "suppressed", "deliveries"],
        {
            "id": {"type": "integer"},
            "rule": {"type": "string"},
            "key": {"type": "string"},
            "severity": {"enum": ["critical", "warning", "info"]},
            "state": {"enum": ["firing", "resolved"]},
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "opened": _TIME,
            "sent": _TIME,
            "suppressed": {"type": "integer"},
            "deliveries": {"type": "object", "additionalProperties": delivery},
        },
    )
    channel = _object(
        ["delivered", "failed", "dropped", "retrying", "last_error", "stopped"],
        {
            **dict.fromkeys(("delivered", "failed", "dropped", "retrying"), {"type": "integer"}),
            "last_error": {"type": ["string", "null"]},
            "stopped": {"type": ["string", "null"], "description": "why the channel was stopped (webhook gone)"},
            "failing_since": {"type": ["number", "null"], "description": "epoch seconds of the first failure"},
        },
    )
    slo = _object(
        ["objective", "target", "burn_rates", "error_budget_remaining", "firing"],
        {
            "objective": {"enum": ["availability", "latency"]},
            "target": {"type": "number"},
            "latency_ms": _MS,
            "description": {"type": "string"},
            "burn_rates": {"type": "object", "additionalProperties": _MS},
            "error_budget_remaining": _MS,
            "requests_30d": {"type": "integer"},
            "firing": {"enum": ["page", "ticket", None]},
        },
    )
    condition = _object(
        ["key", "rule", "severity", "status", "title", "summary", "since", "event", "silenced", "inhibited"],
        {
            "key": {"type": "string"},
            "rule": {"type": "string"},
            "severity": {"enum": ["critical", "warning", "info"]},
            "status": {"enum": ["pending", "firing", "resolved"]},
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "since": _TIME,
            "event": {"type": "boolean", "description": "told once, never resolves (a release's regression)"},
            "silenced": {"type": "boolean"},
            "inhibited": {"type": "boolean", "description": "held back by something deployment-wide"},
            "issue": {"type": ["string", "null"]},
            "endpoint": {"type": ["string", "null"]},
            "last_seen": _TIME,
        },
    )
    incident = _object(
        ["id", "group", "status", "title", "opened", "resolved", "messages", "last_sent", "conditions"],
        {
            "id": {"type": "integer"},
            "group": {"type": "string"},
            "status": {"enum": ["open", "resolved"]},
            "title": {"type": "string"},
            "opened": _TIME,
            "resolved": _TIME,
            "messages": {"type": "integer", "description": "messages sent about it"},
            "last_sent": _TIME,
            "conditions": {"type": "array", "items": condition},
        },
    )
    counts = _object(
        ["delivered", "retrying", "failed", "queued"],
        dict.fromkeys(("delivered", "retrying", "failed", "queued"), {"type": "integer"}),
    )
    return _object(
        ["incidents", "firing", "silences", "maintenance", "alerts", "deliveries", "channels", "configured", "slo"],
        {
            "incidents": {"type": "array", "items": incident, "description": "open ones first"},
            "firing": {"type": "array", "items": {"type": "string"}},
            "silences": {"type": "array", "items": SILENCE},
            "maintenance": {"type": "boolean", "description": "a maintenance window mutes every alert now"},
            "evaluated_at": _TIME,
            "alerts": {"type": "array", "items": alert},
            "deliveries": {
                "type": "object",
                "additionalProperties": counts,
                "description": "per channel, how the deployment's recent messages went",
            },
            "channels": {"type": "object", "additionalProperties": channel},
            "configured": {"type": "array", "items": {"type": "string"}},
            "slo": {"type": "array", "items": slo},
        },
    )


SILENCE = _object(
    ["id", "rule", "endpoint", "issue", "severity", "reason", "created_by", "starts", "ends", "active"],
    {
        "id": {"type": "integer"},
        **dict.fromkeys(("rule", "endpoint", "issue", "severity"), {"type": ["string", "null"]}),
        "reason": {"type": "string"},
        "created_by": {"type": "string"},
        "starts": _TIME,
        "ends": _TIME,
        "active": {"type": "boolean"},
    },
)


def _answers(schema: dict[str, Any], *errors: tuple[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    for code, why in (("400", "Bad body"), ("401", "Credentials missing or wrong"), *errors):
        found[code] = {"description": why, "content": {"application/json": {"schema": _ERROR}}}
    return found


def _silences_paths() -> dict[str, Any]:
    text = {"type": "string"}
    duration = {"type": "string", "pattern": "^[1-9][0-9]{0,5}[smhd]$", "examples": ["30m", "2h", "1d"]}
    # Each matcher may be null (not matched on); at least one must be given.
    matcher = {
        "rule": {"enum": [*RULES, None]},
        "endpoint": {"type": ["string", "null"], "minLength": 1, "maxLength": 2048},
        "issue": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
        "severity": {"enum": ["critical", "warning", "info", None]},
    }
    named = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in matcher]
    common = {
        **matcher,
        "reason": {**text, "minLength": 1, "maxLength": 500, "pattern": "\\S"},
        "created_by": {**text, "maxLength": 100},
    }
    make = {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["reason", "for"],
                "anyOf": named,
                "properties": {**common, "for": {**duration, "description": "how long (at most 366d)"}},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["reason", "until"],
                "anyOf": named,
                "properties": {**common, "until": {**text, "format": "date-time", "description": "a future time"}},
            },
        ]
    }
    write = ("403", "Sent by another site's page, or a remote client without credentials")
    return {
        "/silences": {
            "get": {
                "summary": "Silences, active and recently ended",
                "parameters": [],
                "responses": _answers(_object(["silences"], {"silences": {"type": "array", "items": SILENCE}})),
            },
            "post": {
                "summary": "Mute alerts matching every given field for a while, with a reason",
                "parameters": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": make}}},
                "responses": _answers(SILENCE, write, ("413", "Body too large"), ("415", "Not JSON")),
            },
        },
        "/silences/{id}": {
            "post": {
                "summary": 'End a silence now: the body is {"expire": true}',
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10**12 - 1},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["expire"],
                                "additionalProperties": False,
                                "properties": {"expire": {"const": True}},
                            }
                        }
                    },
                },
                "responses": _answers(SILENCE, write, ("404", "No such silence"), ("415", "Not JSON")),
            }
        },
    }


def openapi_document(prefix: str, version: str) -> dict[str, Any]:
    endpoint_row = _object(
        ["endpoint", "method", *_TOTALS],
        {
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            **_TOTALS,
            "last_seen": _TIME,
            "sparkline": {"type": "array", "items": _MS, "description": "with sparkline=N: average latency per slot"},
        },
    )
    request_row = _object(
        ["time", "method", "path", "endpoint", "status", "duration_ms"],
        {
            "time": _TIME,
            "method": {"type": "string"},
            "path": {"type": "string", "description": "path and query string, sensitive values redacted"},
            "endpoint": {"type": "string"},
            "status": {"type": "integer"},
            "duration_ms": {"type": "number"},
            "ttfb_ms": _MS,
            "error_type": {"type": ["string", "null"]},
            "response_bytes": {"type": ["integer", "null"]},
            "sampled": {"type": "boolean", "description": "its stack was sampled: see /slow"},
        },
    )
    error_row = _object(
        ["type", "endpoint", "count", "last_seen", "message"],
        {
            "type": {"type": "string"},
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "count": {"type": "integer"},
            "first_seen": _TIME,
            "last_seen": _TIME,
            "message": {"type": "string"},
            "traceback": {"type": ["string", "null"]},
        },
    )
    point = _object(
        ["time", "requests", "errors", "client_errors", "avg", "p50", "p95", "p99"],
        {
            "time": _TIME,
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "client_errors": {"type": "integer"},
            **dict.fromkeys(("avg", "p50", "p95", "p99"), _MS),
        },
    )
    check = _object(
        ["status", "detail"],
        {
            "status": {"enum": ["ok", "degraded", "fail"]},
            "detail": {"type": "string"},
            "duration_ms": {"type": "number"},
        },
    )
    health = _object(
        ["status", "checks", "uptime_s", "version", "process"],
        {
            "status": {"enum": ["ok", "degraded", "fail"]},
            "checks": {"type": "object", "additionalProperties": check},
            "uptime_s": {"type": "number"},
            "version": {"type": "string"},
            "process": _object(
                ["pid", "rss_bytes", "cpu_s", "threads", "uptime_s"],
                {
                    "pid": {"type": "integer"},
                    "rss_bytes": {"type": "integer"},
                    "cpu_s": {"type": "number"},
                    "threads": {"type": "integer"},
                    "uptime_s": {"type": "number"},
                },
            ),
            "deployment": _object(
                ["processes"],
                {
                    "processes": {
                        "type": "array",
                        "description": "processes that wrote statistics in the last minute",
                        "items": _object(
                            ["host", "pid", "started", "last_flush", "requests", "in_flight"],
                            {
                                "host": {"type": "string"},
                                "pid": {"type": "integer"},
                                "started": _TIME,
                                "last_flush": _TIME,
                                "requests": {"type": "integer"},
                                "in_flight": {"type": "integer", "description": "requests running at its last flush"},
                            },
                        ),
                    }
                },
            ),
        },
    )
    stats = _object(
        [*_TOTALS, "error_types"],
        {
            **_TOTALS,
            "error_types": _COUNTS,
            "window": {"type": "string"},
            "requests_per_minute": {"type": "number"},
            "uptime_s": {"type": "number"},
            "since": _TIME,
            "endpoints_overflowed": {"type": "integer"},
            "in_flight": _IN_FLIGHT,
        },
    )
    health_get = _get("Health of the application (503 when a check fails)", health)
    health_get["get"]["responses"]["503"] = {
        "description": "A health check failed",
        "content": {"application/json": {"schema": health}},
    }
    query = {"in": "query", "required": False}
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
            "/stats": _get("Totals and latency over all endpoints", stats, [_WINDOW, _RELEASE]),
            "/endpoints": _get(
                "Statistics per endpoint and method",
                _object(["endpoints"], {"endpoints": {"type": "array", "items": endpoint_row}}),
                [
                    {"name": "sort", **query, "schema": {"enum": list(endpoints.SORT_KEYS)}},
                    _limit(endpoints.MAX_LIMIT),
                    _WINDOW,
                    _RELEASE,
                    {
                        "name": "sparkline",
                        **query,
                        "description": "add an average-latency line of this many points to every row",
                        "schema": {"type": "integer", "minimum": 1, "maximum": endpoints.MAX_SPARKLINE},
                    },
                ],
            ),
            "/requests": _get(
                "The most recent requests, newest first",
                _object(["requests"], {"requests": {"type": "array", "items": request_row}}),
                [
                    {
                        **_limit(requests.MAX_LIMIT),
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
            "/errors": _get(
                "Error types per endpoint with the latest message and traceback",
                _object(["errors"], {"errors": {"type": "array", "items": error_row}}),
                [_limit(errors.MAX_LIMIT), _WINDOW, _RELEASE],
            ),
            "/timeseries": _get(
                "Requests, errors and latency per step over the window, empty steps as zeros",
                _object(
                    ["step_s", "points", "releases"],
                    {
                        "window": {"type": "string"},
                        "step_s": {"type": "integer"},
                        "points": {"type": "array", "items": point},
                        "releases": {
                            "type": "array",
                            "description": "releases first seen in the window, oldest first: deploy markers",
                            "items": _object(
                                ["release", "first_seen"], {"release": {"type": "string"}, "first_seen": _TIME}
                            ),
                        },
                    },
                ),
                [
                    _WINDOW,
                    _RELEASE,
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
            "/slow": _get(
                "The slowest requests whose stacks were sampled while they ran, with their profiles",
                _slow_schema(),
                [
                    {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
                    _limit(slow.MAX_LIMIT),
                ],
            ),
            "/releases": _get(
                "Every release, newest first, each compared with the one before it: regressions, new error types",
                _releases_schema(),
                [_limit(releases.MAX_LIMIT)],
            ),
            "/alerts": _get(
                "Recent alerts of the deployment with each channel's delivery, firing conditions, SLO status",
                _alerts_schema(),
                [_limit(alerts.MAX_LIMIT)],
            ),
            **issues.openapi_paths(_TIME, _ERROR, _WINDOW),
            **_silences_paths(),
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
