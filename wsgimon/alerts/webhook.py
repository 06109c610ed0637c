"""A JSON webhook channel (Slack-compatible).

Usage::

    channel = WebhookChannel("https://hooks.slack.com/services/T000/B000/XXXX")
    channel.send(alert)  # one attempt; raises Retry, Permanent or Gone
    channel.close()

The body carries ``text`` (one line of Slack mrkdwn), ``blocks`` (Slack's layout,
ignored by other receivers) and ``wsgimon``: every field of the alert with times
in ISO 8601 UTC, for any receiver that wants structure rather than prose.

The URL is a credential: :mod:`.http` keeps it out of every message and log record.
"""

from __future__ import annotations

from typing import Any

import httpx

from .http import HTTPDelivery, parse_webhook_url
from .model import Alert
from .text import fence_safe, fit, iso_utc, safe_link, utf16_len, without_secrets

__all__ = ["WebhookChannel", "build_webhook_payload"]


# Slack's mrkdwn: &, < and > are the only characters that must be escaped (they make links and mentions).
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _slack(text: str, limit: int, *, keep: str = "head") -> str:
    """Escaped for mrkdwn and cut to ``limit`` without leaving half an entity (``&am…``)."""
    budget = limit
    while True:
        escaped = fit(text, budget, keep=keep).translate(_SLACK_ESCAPES)
        excess = utf16_len(escaped) - limit
        if excess <= 0:
            return escaped
        budget -= excess


def _slack_code(text: str, limit: int, *, keep: str = "head") -> str:
    return "```\n" + _slack(fence_safe(text), limit - 8, keep=keep) + "\n```"


def _label(alert: Alert) -> str:
    return "RESOLVED" if alert.state == "resolved" else fit(alert.severity.upper() or "ALERT", 20)


_SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """The alert's facts as (name, value) pairs of plain text, in reading order."""
    facts: list[tuple[str, str]] = []
    if alert.endpoint:
        facts.append(("Endpoint", f"{alert.method} {alert.endpoint}" if alert.method else alert.endpoint))
    if alert.error_type:
        facts.append(("Error type", alert.error_type))
    if alert.count is not None:
        facts.append(("Count", f"{alert.count:,}"))
    for name, epoch in (("First seen", alert.first_seen), ("Last seen", alert.last_seen)):
        when = iso_utc(epoch)
        if when:
            facts.append((name, when.replace("T", " ")))
    facts.extend(alert.fields)
    return facts


def build_webhook_payload(alert: Alert) -> dict[str, Any]:
    """The JSON body: Slack's ``text`` and ``blocks``, and the whole alert under ``wsgimon``.

    Slack's limits are kept (header 150, section text 3000, 10 fields of 2000, 50 blocks) and
    every text is escaped for mrkdwn, so an error message cannot post a link or a mention; no
    secret is in any of them (the alert is scrubbed first).
    """
    alert = without_secrets(alert)
    label = _label(alert)
    emoji = ":white_check_mark:" if alert.state == "resolved" else _SLACK_EMOJI.get(alert.severity, ":bell:")
    line = " ".join(f"{alert.title} — {alert.summary}".split() if alert.summary else alert.title.split())
    text = f"{emoji} *{label}* {_slack(line, 500)}"

    body = _slack(alert.summary, 1500)
    if alert.items:
        listed = "\n".join("• " + _slack(item, 300) for item in alert.items[:10])
        body = (body + "\n" if body else "") + fit(listed, 3000 - utf16_len(body) - 1)
    if alert.message:
        body = (body + "\n" if body else "") + _slack_code(alert.message, 3000 - utf16_len(body) - 1)
    header = {"type": "plain_text", "text": fit(f"{label}: {' '.join(alert.title.split())}", 150), "emoji": True}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": header}]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    facts = [
        {"type": "mrkdwn", "text": f"*{_slack(name, 200)}*\n{_slack(value, 1790) or ' '}"}
        for name, value in _facts(alert)[:10]
    ]
    if facts:
        blocks.append({"type": "section", "fields": facts})
    if alert.traceback:
        traceback = _slack_code(alert.traceback, 3000, keep="tail")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": traceback}})
    link = safe_link(alert.dashboard_url)
    if link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the dashboard"}, "url": link}
        blocks.append({"type": "actions", "elements": [button]})
    footer = {"type": "mrkdwn", "text": f"wsgimon · {_slack(alert.rule, 200)}"}
    blocks.append({"type": "context", "elements": [footer]})

    return {"text": text, "blocks": blocks, "wsgimon": alert_as_json(alert)}


def alert_as_json(alert: Alert) -> dict[str, Any]:
    """Every field of the alert, times as ISO 8601 UTC and ``fields`` as name/value objects."""
    return {
        "key": alert.key,
        "rule": alert.rule,
        "severity": alert.severity,
        "state": alert.state,
        "title": alert.title,
        "summary": alert.summary,
        "opened_at": iso_utc(alert.opened_at),
        "endpoint": alert.endpoint,
        "method": alert.method,
        "error_type": alert.error_type,
        "message": alert.message,
        "traceback": alert.traceback,
        "count": alert.count,
        "first_seen": iso_utc(alert.first_seen),
        "last_seen": iso_utc(alert.last_seen),
        "fields": [{"name": name, "value": value} for name, value in alert.fields],
        "dashboard_url": alert.dashboard_url,
        "kind": alert.kind,
        "incident": alert.incident,
        "thread": alert.thread,
        "thread_title": alert.thread_title,
        "items": list(alert.items),
    }


class WebhookChannel:
    """POSTs each alert as JSON to one URL (Slack's incoming webhooks, or any receiver of JSON)."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        target = parse_webhook_url(url, service="webhook")
        self._http = HTTPDelivery(target, service="webhook", timeout_s=timeout_s, transport=transport)

    def send(self, alert: Alert, *, patience: float = 1.0) -> float | None:
        """One delivery attempt; None when accepted (a plain webhook says nothing about rate limits)."""
        response = self._http.post(build_webhook_payload(alert), patience)
        self._http.raise_for_outcome(response, gone=frozenset({401, 403, 404, 410}))
        return None

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<WebhookChannel to {self._http.host}>"
