"""``/issues``: failures grouped by cause, and ``/issues/<id>`` to read one or change its status.

An issue is every failure with one fingerprint (see :mod:`wsgimon.recording.fingerprint`),
whichever endpoints it broke. The list is sorted by last seen, then by count; ``count``
is what happened in the window, ``total`` everything the store kept.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..stats.issues import STATUSES, parse_change
from ..stats.time_windows import HOUR, MINUTE
from ..stores.records import IssueRow
from .context import Context
from .params import BadRequest, Query
from .values import iso

__all__ = ["MAX_LIMIT", "ONE_PARAMETERS", "PARAMETERS", "answer", "answer_one", "change"]

PARAMETERS = {"window", "status", "release", "endpoint", "limit", "sparkline"}
ONE_PARAMETERS = {"window"}
MAX_LIMIT = 1000
MAX_SPARKLINE = 60
MAX_BODY_BYTES = 4096
_POINTS = 60


class NoSuchIssue(BadRequest):
    status = 404


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    limit = query.integer("limit", default=100, maximum=MAX_LIMIT)
    points = query.integer("sparkline", default=0, maximum=MAX_SPARKLINE) if "sparkline" in query else 0
    status = query.choice("status", ("all", *STATUSES), "all")
    endpoint = query.text("endpoint")
    window = query.window()
    now = ctx.now()
    ctx.flush_own()
    store = ctx.store
    release = query.release([row.release for row in store.releases()]) if "release" in query else None
    since = window.since(now)
    counts = store.issue_window_counts(since, now)
    rows = []
    for issue in store.issues(since):
        if status != "all" and issue.status != status:
            continue
        if endpoint is not None and all(name != endpoint for name, _method, _n in issue.endpoints):
            continue
        count = counts.get(issue.id, 0)
        if release is not None:
            in_release = [n for name, n, *_ in issue.releases if name == release]
            if not in_release:
                continue
            count = in_release[0] if since is None else min(count, in_release[0])
        if since is not None and count == 0:
            continue
        rows.append(_row(issue, count))
    rows.sort(key=lambda row: (row["last_seen"] or "", row["count"]), reverse=True)
    rows = rows[:limit]
    if points:
        _sparklines(ctx, rows, since, now, points)
    body: dict[str, Any] = {"window": window.label, "issues": rows}
    if release is not None:
        body["release"] = release
    return body


def answer_one(ctx: Context, query: Query, issue_id: str) -> dict[str, Any]:
    window = query.window()
    now = ctx.now()
    ctx.flush_own()
    issue = _find(ctx, issue_id)
    since = window.since(now)
    if since is None:
        since = issue.first_seen
    resolution = MINUTE if since >= now - ctx.store.minute_retention_s and now - since <= 6 * HOUR else HOUR
    step = max(resolution, math.ceil((now - since) / _POINTS / resolution) * resolution)
    first = int(since // step * step)
    slots = [0] * (int(now - first) // step + 1)
    for start, count in ctx.store.issue_series(resolution, first, int(now) + 1, issue.id):
        if start >= first:
            slots[min(len(slots) - 1, (start - first) // step)] += count
    body = _row(issue, sum(slots))
    body["window"] = window.label
    body["step_s"] = step
    body["occurrences"] = [{"time": iso(first + index * step), "count": n} for index, n in enumerate(slots)]
    return body


def change(ctx: Context, body: bytes, issue_id: str) -> dict[str, Any]:
    """``{"status": "resolved" | "ignored" | "open"}``, with ``in_release`` (resolved) or ``for``,
    ``until``, ``count`` (ignored)."""
    try:
        asked = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest('the body must be a JSON object such as {"status": "resolved"}') from None
    if not isinstance(asked, dict):
        raise BadRequest('the body must be a JSON object such as {"status": "resolved"}')
    unknown = sorted(set(asked) - {"status", "in_release", "for", "until", "count"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; expected status, in_release, for, until, count")
    now = ctx.now()
    try:
        parsed = parse_change(
            asked.get("status"), asked.get("in_release"), asked.get("for"), asked.get("until"), asked.get("count"), now
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    _find(ctx, issue_id)
    changed = ctx.store.change_issue(issue_id, parsed, now)
    if changed is None:
        raise NoSuchIssue(f"no issue {issue_id!r}")
    return _row(changed, changed.count)


def _find(ctx: Context, issue_id: str) -> IssueRow:
    if not (0 < len(issue_id) <= 64 and issue_id.isascii() and issue_id.isalnum()):
        raise BadRequest("an issue id is the hexadecimal id given by /issues")
    issue = ctx.store.issue(issue_id)
    if issue is None:
        raise NoSuchIssue(f"no issue {issue_id!r}")
    return issue


def _row(issue: IssueRow, count: int) -> dict[str, Any]:
    return {
        "id": issue.id,
        "fingerprint": issue.fingerprint,
        "type": issue.type,
        "title": issue.title,
        "message": issue.message,
        "culprit": issue.culprit,
        "count": count,
        "total": issue.count,
        "first_seen": iso(issue.first_seen),
        "last_seen": iso(issue.last_seen),
        "endpoints": [{"endpoint": e, "method": m, "count": n} for e, m, n in issue.endpoints],
        "releases": [
            {"release": r, "count": n, "first_seen": iso(first), "last_seen": iso(last)}
            for r, n, first, last in issue.releases
        ],
        "status": issue.status,
        "status_changed": iso(issue.status_changed),
        "resolved_in": issue.resolved_in,
        "ignored_until": iso(issue.ignored_until),
        "ignored_until_count": issue.ignored_until_count,
        "traceback": issue.traceback,
        "frames": issue.frames,
    }


def _sparklines(ctx: Context, rows: list[dict[str, Any]], since: float | None, now: float, points: int) -> None:
    if since is None:
        since = min(ctx.deployment_started(), now - 60)
    resolution = MINUTE if since >= now - ctx.store.minute_retention_s and now - since < 86400 else HOUR
    first = int(since // resolution * resolution)
    slot_s = max(1.0, (now - first) / points)
    lines = {row["id"]: [0] * points for row in rows}
    for issue_id, start, count in ctx.store.issue_counts(resolution, first, int(now) + 1):
        line = lines.get(issue_id)
        if line is not None and start >= first:
            line[min(points - 1, int((start - first) / slot_s))] += count
    for row in rows:
        row["sparkline"] = lines[row["id"]]


def openapi_paths(time: dict[str, Any], error: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """``/issues`` and ``/issues/{id}`` as the OpenAPI document describes them."""
    text = {"type": "string"}
    nullable_text = {"type": ["string", "null"]}
    frame = {
        "type": "object",
        "required": ["file", "line", "function", "in_app"],
        "properties": {"file": text, "line": {"type": "integer"}, "function": text, "in_app": {"type": "boolean"}},
    }
    fields = {
        "id": {**text, "description": "short id: the fingerprint's first 12 hex digits"},
        "fingerprint": text,
        "type": text,
        "title": {**text, "description": "the message's first line with numbers, ids and quoted values as <…>"},
        "message": {**text, "description": "the latest occurrence's message, secrets redacted"},
        "culprit": {**nullable_text, "description": "the app's module and function where it breaks"},
        "count": {"type": "integer", "description": "occurrences in the window"},
        "total": {"type": "integer", "description": "occurrences the store kept, all time"},
        "first_seen": time,
        "last_seen": time,
        "endpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["endpoint", "method", "count"],
                "properties": {"endpoint": text, "method": text, "count": {"type": "integer"}},
            },
        },
        "releases": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["release", "count", "first_seen", "last_seen"],
                "properties": {"release": text, "count": {"type": "integer"}, "first_seen": time, "last_seen": time},
            },
        },
        "status": {"enum": list(STATUSES)},
        "status_changed": time,
        "resolved_in": nullable_text,
        "ignored_until": time,
        "ignored_until_count": {"type": ["integer", "null"], "description": "ignored until the total reaches this"},
        "traceback": nullable_text,
        "frames": {"type": "array", "items": frame, "description": "the latest traceback's frames, innermost last"},
    }
    issue = {"type": "object", "required": list(fields), "properties": fields}
    listed = {**issue, "properties": {**fields, "sparkline": {"type": "array", "items": {"type": "integer"}}}}
    one = {
        **issue,
        "required": [*issue["required"], "step_s", "occurrences"],
        "properties": {
            **fields,
            "window": text,
            "step_s": {"type": "integer"},
            "occurrences": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["time", "count"],
                    "properties": {"time": time, "count": {"type": "integer"}},
                },
            },
        },
    }
    query = {"in": "query", "required": False}

    def answers(schema: dict[str, Any], *errors: tuple[str, str]) -> dict[str, Any]:
        found = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
        for code, why in (("400", "Bad parameter"), ("401", "Credentials missing or wrong"), *errors):
            found[code] = {"description": why, "content": {"application/json": {"schema": error}}}
        found.setdefault(
            "403", {"description": "Remote client without credentials", "content": found["400"]["content"]}
        )
        return found

    item = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"}}
    duration = {"type": "string", "pattern": "^[1-9][0-9]{0,5}[smhd]$", "examples": ["30m", "12h", "7d"]}
    change = {
        "oneOf": [
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {"status": {"const": "open"}},
            },
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {
                    "status": {"const": "resolved"},
                    "in_release": {
                        **text,
                        "minLength": 1,
                        "maxLength": 64,
                        "description": "the release that ships the fix",
                    },
                },
            },
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "not": {"required": ["for", "until"]},
                "properties": {
                    "status": {"const": "ignored"},
                    "for": {**duration, "description": "ignored for a while (at most 366d)"},
                    "until": {**text, "format": "date-time", "description": "ignored until this time (future)"},
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 10**9,
                        "description": "ignored until it happens this many more times",
                    },
                },
            },
        ]
    }
    return {
        "/issues": {
            "get": {
                "summary": "Failures grouped by cause (stack fingerprint), last seen first, then by count",
                "parameters": [
                    window,
                    {"name": "status", **query, "schema": {"enum": ["all", *STATUSES]}},
                    {"name": "release", **query, "schema": {"type": "string", "maxLength": 64}},
                    {"name": "endpoint", **query, "schema": {"type": "string", "maxLength": 2048}},
                    {"name": "limit", **query, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                    {
                        "name": "sparkline",
                        **query,
                        "description": "add occurrences per slot, this many slots over the window",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SPARKLINE},
                    },
                ],
                "responses": answers(
                    {
                        "type": "object",
                        "required": ["window", "issues"],
                        "properties": {"window": text, "release": text, "issues": {"type": "array", "items": listed}},
                    },
                    ("404", "release= names a release the store does not keep"),
                ),
            }
        },
        "/issues/{id}": {
            "get": {
                "summary": "One issue, with its occurrences over the window",
                "parameters": [item, window],
                "responses": answers(one, ("404", "No such issue")),
            },
            "post": {
                "summary": "Resolve, ignore or reopen an issue (JSON body; refused when another site sent it)",
                "parameters": [item],
                "requestBody": {"required": True, "content": {"application/json": {"schema": change}}},
                "responses": answers(
                    issue,
                    ("403", "Sent by another site's page, or a remote client without credentials"),
                    ("404", "No such issue"),
                    ("413", "Body too large"),
                    ("415", "Not JSON"),
                ),
            },
        },
    }
