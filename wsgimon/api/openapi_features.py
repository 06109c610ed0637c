"""The OpenAPI schemas of the larger answers: slow requests, queries and outbound calls, releases, alerts,
silences, and what /stats tells of the deployment's workers."""

from __future__ import annotations

from typing import Any

from ..alerts.silencing import RULES
from .openapi_blocks import IN_FLIGHT, MS, SPENT_BY_REQUEST, TIME, answers, object_schema

__all__ = [
    "LOST_REQUESTS",
    "SATURATION",
    "SILENCE",
    "alerts_schema",
    "checkins_paths",
    "dependencies_schema",
    "releases_schema",
    "silences_paths",
    "slow_schema",
]


def slow_schema() -> dict[str, Any]:
    frame = object_schema(
        ["file", "line", "function"],
        {"file": {"type": "string"}, "line": {"type": "integer"}, "function": {"type": "string"}},
    )
    statement = object_schema(
        ["statement", "count", "total_ms", "failed"],
        {
            "statement": {"type": "string", "description": "normalised: no literal, no parameter"},
            "count": {"type": "integer"},
            "total_ms": {"type": "number"},
            "failed": {"type": "integer", "description": "executions that raised"},
        },
    )
    row = object_schema(
        [
            "time",
            "method",
            "path",
            "endpoint",
            "status",
            "duration_ms",
            *SPENT_BY_REQUEST,
            "samples",
            "app_frame",
            "frames",
            "stacks",
            "queries",
        ],
        {
            "time": TIME,
            "method": {"type": "string"},
            "path": {"type": "string"},
            "endpoint": {"type": "string"},
            "status": {"type": "integer"},
            "duration_ms": {"type": "number"},
            **SPENT_BY_REQUEST,
            "samples": {"type": "integer"},
            "app_frame": {"anyOf": [frame, {"type": "null"}]},
            "frames": {
                "type": "array",
                "items": {**frame, "properties": {**frame["properties"], "share": {"type": "number"}}},
            },
            "stacks": {
                "type": "array",
                "items": object_schema(
                    ["frames", "count"], {"frames": {"type": "array", "items": frame}, "count": {"type": "integer"}}
                ),
            },
            "queries": {
                "type": "array",
                "items": statement,
                "description": "the request's statements, the most time first (empty when none or not captured)",
            },
        },
    )
    return object_schema(["slow", "in_flight"], {"slow": {"type": "array", "items": row}, "in_flight": IN_FLIGHT})


def dependencies_schema(key: str) -> dict[str, Any]:
    """``/queries`` (key "queries": statements) or ``/outbound`` (key "outbound": HTTP targets)."""
    common = {
        "id": {"type": "string"},
        "count": {"type": "integer", "description": "executions"},
        "errors": {"type": "integer", "description": "executions that failed (raised, or a 5xx answer)"},
        "total_ms": {"type": "number"},
        "avg_ms": MS,
        "p95_ms": MS,
        "max_ms": {"type": "number"},
        "endpoints": {
            "type": "array",
            "description": "the endpoints that ran it, the most executions first",
            "items": object_schema(
                ["endpoint", "method", "count"],
                {"endpoint": {"type": "string"}, "method": {"type": "string"}, "count": {"type": "integer"}},
            ),
        },
        "more_endpoints": {"type": "integer", "description": "endpoints that ran it beyond those listed"},
        "first_seen": TIME,
        "last_seen": TIME,
    }
    if key == "queries":
        own = {
            "statement": {"type": "string", "description": "normalised: no literal, no parameter"},
            "frame": {
                "type": ["string", "null"],
                "description": "where the app ran it (module in function, line N), seen on a slow or repeated run",
            },
            "n_plus_one": {
                "type": "integer",
                "description": "requests in which it ran n_plus_one_repeats times or more: a likely N+1",
            },
        }
    else:
        own = {
            "method": {"type": "string"},
            "target": {"type": "string", "description": "origin and path template (ids as <int>), no query"},
        }
    row = object_schema([*common, *own], {**common, **own})
    return object_schema(
        ["window", key],
        {
            "window": {"type": "string"},
            key: {"type": "array", "items": row, "description": "the most time first"},
            "release": {"type": "string", "description": "with release="},
            "endpoint": {"type": "string", "description": "with endpoint="},
        },
    )


# What /stats tells of the workers: how many are busy, and requests lost with a worker that died.
SATURATION = object_schema(
    ["busy", "capacity", "hosts"],
    {
        "busy": {
            "type": "integer",
            "description": "requests running in every live process (others' as of their last flush)",
        },
        "capacity": {
            "type": ["integer", "null"],
            "description": "requests the workers can run at once; null where a worker's server did not say",
        },
        "hosts": {
            "type": "array",
            "items": object_schema(
                ["host", "workers", "busy", "capacity"],
                {
                    "host": {"type": "string"},
                    "workers": {"type": "integer"},
                    "busy": {"type": "integer"},
                    "capacity": {"type": ["integer", "null"]},
                },
            ),
        },
    },
)
LOST_REQUESTS = object_schema(
    ["count", "recent"],
    {
        "count": {
            "type": "integer",
            "description": "requests in flight in a worker that vanished (killed), in the window (a day at most)",
        },
        "recent": {
            "type": "array",
            "description": "the workers that vanished, at most 20",
            "items": object_schema(
                ["host", "pid", "requests", "request", "at"],
                {
                    "host": {"type": "string"},
                    "pid": {"type": "integer"},
                    "requests": {"type": "integer"},
                    "request": {"type": ["string", "null"], "description": "the oldest of them, when known"},
                    "at": {**TIME, "description": "its last flush"},
                },
            ),
        },
    },
)


def releases_schema() -> dict[str, Any]:
    regression = object_schema(
        ["endpoint", "method", "metric", "before", "after", "requests_before", "requests_after"],
        {
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "metric": {"enum": ["p95", "error_rate", "queries"]},
            "before": {
                "type": "number",
                "description": "p95 in ms, the error rate as a fraction, or queries per request on average",
            },
            "after": {"type": "number"},
            "requests_before": {"type": "integer"},
            "requests_after": {"type": "integer"},
        },
    )
    row = object_schema(
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
            "first_seen": TIME,
            "last_seen": TIME,
            "processes": {"type": "integer", "description": "processes running it now"},
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "error_rate": {"type": "number"},
            "latency_ms": object_schema(["p50", "p95", "p99"], dict.fromkeys(("p50", "p95", "p99"), MS)),
            "compared_with": {"type": ["string", "null"], "description": "the release before it"},
            "new_error_types": {"type": "array", "items": {"type": "string"}},
            "regressions": {"type": "array", "items": regression},
        },
    )
    return object_schema(
        ["current", "releases"],
        {
            "current": {"type": ["string", "null"], "description": "the answering process's release"},
            "releases": {"type": "array", "items": row},
        },
    )


def alerts_schema() -> dict[str, Any]:
    delivery = object_schema(
        ["status"],
        {
            "status": {"enum": ["queued", "retrying", "delivered", "failed"]},
            "reason": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
        },
    )
    alert = object_schema(
        ["id", "rule", "key", "severity", "state", "title", "summary", "opened", "sent", "suppressed", "deliveries"],
        {
            "id": {"type": "integer"},
            "rule": {"type": "string"},
            "key": {"type": "string"},
            "severity": {"enum": ["critical", "warning", "info"]},
            "state": {"enum": ["firing", "resolved"]},
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "opened": TIME,
            "sent": TIME,
            "suppressed": {"type": "integer"},
            "deliveries": {"type": "object", "additionalProperties": delivery},
        },
    )
    channel = object_schema(
        ["delivered", "failed", "dropped", "retrying", "last_error", "stopped"],
        {
            **dict.fromkeys(("delivered", "failed", "dropped", "retrying"), {"type": "integer"}),
            "last_error": {"type": ["string", "null"]},
            "stopped": {"type": ["string", "null"], "description": "why the channel was stopped (webhook gone)"},
            "failing_since": {"type": ["number", "null"], "description": "epoch seconds of the first failure"},
        },
    )
    slo = object_schema(
        ["objective", "target", "burn_rates", "error_budget_remaining", "firing"],
        {
            "objective": {"enum": ["availability", "latency"]},
            "target": {"type": "number"},
            "latency_ms": MS,
            "description": {"type": "string"},
            "burn_rates": {"type": "object", "additionalProperties": MS},
            "error_budget_remaining": MS,
            "requests_30d": {"type": "integer"},
            "firing": {"enum": ["page", "ticket", None]},
        },
    )
    condition = object_schema(
        ["key", "rule", "severity", "status", "title", "summary", "since", "event", "silenced", "inhibited"],
        {
            "key": {"type": "string"},
            "rule": {"type": "string"},
            "severity": {"enum": ["critical", "warning", "info"]},
            "status": {"enum": ["pending", "firing", "resolved"]},
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "since": TIME,
            "event": {"type": "boolean", "description": "told once, never resolves (a release's regression)"},
            "silenced": {"type": "boolean"},
            "inhibited": {"type": "boolean", "description": "held back by something deployment-wide"},
            "issue": {"type": ["string", "null"]},
            "endpoint": {"type": ["string", "null"]},
            "last_seen": TIME,
        },
    )
    incident = object_schema(
        ["id", "group", "status", "title", "opened", "resolved", "messages", "last_sent", "conditions"],
        {
            "id": {"type": "integer"},
            "group": {"type": "string"},
            "status": {"enum": ["open", "resolved"]},
            "title": {"type": "string"},
            "opened": TIME,
            "resolved": TIME,
            "messages": {"type": "integer", "description": "messages sent about it"},
            "last_sent": TIME,
            "conditions": {"type": "array", "items": condition},
        },
    )
    counts = object_schema(
        ["delivered", "retrying", "failed", "queued"],
        dict.fromkeys(("delivered", "retrying", "failed", "queued"), {"type": "integer"}),
    )
    return object_schema(
        ["incidents", "firing", "silences", "maintenance", "alerts", "deliveries", "channels", "configured", "slo"],
        {
            "incidents": {"type": "array", "items": incident, "description": "open ones first"},
            "firing": {"type": "array", "items": {"type": "string"}},
            "silences": {"type": "array", "items": SILENCE},
            "maintenance": {"type": "boolean", "description": "a maintenance window mutes every alert now"},
            "evaluated_at": TIME,
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


SILENCE = object_schema(
    ["id", "rule", "endpoint", "issue", "severity", "reason", "created_by", "starts", "ends", "active"],
    {
        "id": {"type": "integer"},
        **dict.fromkeys(("rule", "endpoint", "issue", "severity"), {"type": ["string", "null"]}),
        "reason": {"type": "string"},
        "created_by": {"type": "string"},
        "starts": TIME,
        "ends": TIME,
        "active": {"type": "boolean"},
    },
)


def silences_paths() -> dict[str, Any]:
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
                "responses": answers(object_schema(["silences"], {"silences": {"type": "array", "items": SILENCE}})),
            },
            "post": {
                "summary": "Mute alerts matching every given field for a while, with a reason",
                "parameters": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": make}}},
                "responses": answers(SILENCE, write, ("413", "Body too large"), ("415", "Not JSON")),
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
                "responses": answers(SILENCE, write, ("404", "No such silence"), ("415", "Not JSON")),
            }
        },
    }


def checkins_paths() -> dict[str, Any]:
    """``GET /checkins`` and the pings (``POST /checkins/{id}``, ``…/start``, ``…/fail``)."""
    from .checkins import DURATION_PATTERN, MAX_DURATION_S, MAX_LOG_CHARS, MAX_PING_BODY_BYTES, PINGS_PER_MINUTE

    seconds = {"type": ["number", "null"]}
    run = object_schema(
        ["started", "ended", "ok", "exit_code", "error", "duration_s"],
        {
            "started": {**TIME, "description": "null when only its end was pinged"},
            "ended": {**TIME, "description": "null while it runs"},
            "ok": {"type": ["boolean", "null"], "description": "null while it runs"},
            "exit_code": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"], "description": "an exception's type, or a short reason"},
            "duration_s": seconds,
            "log": {"type": ["string", "null"], "description": "with name=: the end of its output, scrubbed"},
        },
    )
    checkin = object_schema(
        [
            "name",
            "schedule",
            "grace_s",
            "state",
            "detail",
            "last_ping",
            "last_duration_s",
            "next_expected",
            "recent_runs",
        ],
        {
            "name": {"type": "string"},
            "schedule": object_schema(
                ["every_s", "cron", "timezone"],
                {
                    "every_s": {**seconds, "description": "an interval after the last run"},
                    "cron": {"type": ["string", "null"], "description": "or a cron expression"},
                    "timezone": {"type": ["string", "null"], "description": "the cron's IANA time zone"},
                },
            ),
            "describe": {"type": "string", "examples": ["every 1d", "cron 0 3 * * * (Europe/Paris)"]},
            "grace_s": {"type": "number"},
            "state": {"enum": ["new", "up", "late", "down", "failed", "running_too_long"]},
            "detail": {"type": "string"},
            "since": {**TIME, "description": "when it entered this state"},
            "last_ping": TIME,
            "last_duration_s": seconds,
            "next_expected": TIME,
            "recent_runs": {"type": "array", "items": run, "description": "newest first"},
        },
    )
    name = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "the monitor's name",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
    }
    query = {"in": "query", "required": False}
    duration = {"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "15m", "1h", "1d"]}
    schedule: list[tuple[str, str, dict[str, Any]]] = [
        ("every", "declares it: expected every … after its last run", duration),
        ("cron", "or at a cron expression's times", {"type": "string", "examples": ["0 3 * * *"]}),
        ("timezone", "the cron's IANA time zone (default UTC)", {"type": "string", "examples": ["Europe/Paris"]}),
        ("tz", "the same as timezone", {"type": "string"}),
        ("grace", "how late it may be before it is down (default 5m)", duration),
    ]
    ending: list[tuple[str, str, dict[str, Any]]] = [
        ("exit_code", "not 0: the run failed", {"type": "integer", "minimum": 0, "maximum": 255}),
        (
            "duration_s",
            "how long it ran (when no start was pinged)",
            {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
        ),
    ]
    positive_seconds = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S}

    def body(fields: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for key, why, schema in fields:
            allowed = [duration, positive_seconds] if key in ("every", "grace") else [schema]
            properties[key] = {"anyOf": [*allowed, {"type": "null"}], "description": why}
        properties["log"] = {"type": ["string", "null"], "description": "the job's output (as a text body is)"}
        return {
            "required": False,
            "description": "the job's output as text (its last "
            f"{MAX_LOG_CHARS} characters are kept, without secrets), or JSON with the parameters' fields "
            "(over the query's) and log",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": False, "properties": properties}
                },
            },
        }

    errors = (
        ("403", "Sent by another site's page, or a remote client without credentials"),
        ("404", "No such monitor, and the ping carries no schedule to create it"),
        ("409", "The store keeps the most monitors it may: a ping cannot add one"),
        ("413", f"Body larger than {MAX_PING_BODY_BYTES} bytes"),
        ("429", f"More than {PINGS_PER_MINUTE} pings a minute for this monitor (Retry-After says when to retry)"),
    )

    def post(summary: str, fields: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": [name, *({"name": key, **query, "description": why, "schema": schema}
                                       for key, why, schema in fields)],
                "requestBody": body(fields),
                "responses": answers(checkin, *errors),
            }
        }  # fmt: skip

    return {
        "/checkins": {
            "get": {
                "summary": "Jobs beside the app (cron, workers, scripts): whether each ran when expected",
                "parameters": [
                    {
                        "name": "name",
                        **query,
                        "description": "only this monitor, with its runs' output",
                        "schema": {"type": "string", "maxLength": 64},
                    },
                    {
                        "name": "runs",
                        **query,
                        "description": "recent runs shown per monitor (default 10)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                    },
                ],  # fmt: skip
                "responses": answers(
                    object_schema(["checkins"], {"checkins": {"type": "array", "items": checkin}}),
                    ("404", "name= names no monitor"),
                ),
            }
        },
        "/checkins/{id}": post("A run ended well (or failed, with a non-zero exit_code)", [*schedule, *ending]),
        "/checkins/{id}/start": post("A run started (it is running too long past its grace)", schedule),
        "/checkins/{id}/fail": post("A run failed", [*schedule, *ending]),
    }
