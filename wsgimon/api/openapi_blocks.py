"""The building blocks of the OpenAPI description: shared schemas, parameters and answers."""

from __future__ import annotations

from typing import Any

from .params import WINDOW_PATTERN

__all__ = [
    "COUNTS",
    "ERROR",
    "IN_FLIGHT",
    "LATENCY",
    "MS",
    "NO_SUCH_RELEASE",
    "RELEASE",
    "SPENT_BY_REQUEST",
    "TIME",
    "TIME_SPENT",
    "TOTALS",
    "WINDOW",
    "answers",
    "get",
    "limit",
    "object_schema",
]

TIME = {"type": ["string", "null"], "format": "date-time"}
MS = {"type": ["number", "null"]}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
LATENCY = {
    "type": "object",
    "required": ["avg", "min", "max", "p50", "p90", "p95", "p99"],
    "properties": dict.fromkeys(("avg", "min", "max", "p50", "p90", "p95", "p99"), MS),
}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def limit(maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def object_schema(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def get(summary: str, schema: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Bad parameter", "content": {"application/json": {"schema": ERROR}}},
        "401": {"description": "Credentials missing or wrong", "content": {"application/json": {"schema": ERROR}}},
        "403": {
            "description": "Remote client without credentials",
            "content": {"application/json": {"schema": ERROR}},
        },
    }
    if parameters and any(parameter is RELEASE for parameter in parameters):
        responses["404"] = NO_SUCH_RELEASE
    return {"get": {"summary": summary, "parameters": parameters or [], "responses": responses}}


RELEASE = {
    "name": "release",
    "in": "query",
    "required": False,
    "description": "only this release's requests (one of /releases; kept per hour, so the window starts at its hour)",
    "schema": {"type": "string", "maxLength": 64},
}
NO_SUCH_RELEASE = {
    "description": "release= names a release the store does not keep",
    "content": {"application/json": {"schema": ERROR}},
}
WINDOW = {
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


# Per request over a set of requests (those that made none count as zero), and shares of their time.
_AVG_P95 = object_schema(["avg", "p95"], {"avg": MS, "p95": MS})
_SHARE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
TIME_SPENT = {
    "anyOf": [
        object_schema(
            ["db_queries", "db_ms", "http_calls", "http_ms", "share"],
            {
                "db_queries": {**_AVG_P95, "description": "database queries per request"},
                "db_ms": {**_AVG_P95, "description": "ms per request in database queries"},
                "http_calls": {**_AVG_P95, "description": "outbound HTTP calls per request"},
                "http_ms": {**_AVG_P95, "description": "ms per request waiting on outbound calls"},
                "share": object_schema(
                    ["db", "http", "app"],
                    {
                        "db": {**_SHARE, "description": "of the requests' time, in queries"},
                        "http": {**_SHARE, "description": "in outbound calls"},
                        "app": {**_SHARE, "description": "the rest: the application's own code"},
                    },
                ),
            },
        ),
        {"type": "null"},
    ],
    "description": "where the requests' time went; null when queries and calls are not captured",
}
# What one request spent, in /requests and /slow (null: not captured).
SPENT_BY_REQUEST = {
    "db_queries": {"type": ["integer", "null"]},
    "db_ms": MS,
    "http_calls": {"type": ["integer", "null"]},
    "http_ms": MS,
}

# What /stats and every row of /endpoints have in common.
TOTALS = {
    "requests": {"type": "integer"},
    "errors": {"type": "integer"},
    "client_errors": {"type": "integer"},
    "error_rate": {"type": "number"},
    "latency_ms": LATENCY,
    "status_codes": COUNTS,
    "time_spent": TIME_SPENT,
}


IN_FLIGHT = object_schema(
    ["process", "oldest_s", "deployment", "deployment_oldest_s"],
    {
        "process": {"type": "integer", "description": "requests running in the answering process"},
        "oldest_s": MS,
        "deployment": {
            "type": "integer",
            "description": "requests running in every live process (others' as of their last flush)",
        },
        "deployment_oldest_s": MS,
    },
)


def answers(schema: dict[str, Any], *errors: tuple[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    for code, why in (("400", "Bad body"), ("401", "Credentials missing or wrong"), *errors):
        found[code] = {"description": why, "content": {"application/json": {"schema": ERROR}}}
    return found
