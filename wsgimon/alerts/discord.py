"""The Discord channel: one alert, one webhook message with a readable embed.

Usage::

    channel = DiscordChannel("https://discord.com/api/webhooks/123/TOKEN")
    wait = channel.send(alert)  # None, or seconds to wait before the next send (bucket empty)
    channel.close()

Discord refuses a whole message (400) when any text is over its limits, so the payload
is built within all of them by :func:`build_discord_payload` and checked again by
:func:`fit_discord_limits`. Texts from requests are escaped (or put in code blocks) and
``allowed_mentions`` is empty, so an error message can neither ping ``@everyone`` nor
post a link. ``?wait=true`` makes Discord answer an error for a message it did not keep.
The webhook URL holds its token: see :mod:`wsgimon.alerts.http` for how it stays out
of logs, errors and reprs.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx

from .http import HTTPDelivery, parse_webhook_url
from .model import Alert
from .text import fence_safe, fit, iso_utc, parse_seconds, safe_link, utf16_len, without_secrets

__all__ = ["DiscordChannel", "LIMITS", "build_discord_payload", "fit_discord_limits"]

#: Discord's documented limits, in characters (counted here in UTF-16 units, the stricter count).
LIMITS = {
    "content": 2000,
    "embeds": 10,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "author": 256,
    "total": 6000,
}

_COLOURS = {"critical": 0xE74C3C, "warning": 0xE67E22, "info": 0x3498DB}
_RESOLVED = 0x2ECC71
_OTHER = 0x95A5A6
_EMOJI = {"critical": "\N{LARGE RED CIRCLE}", "warning": "\N{LARGE ORANGE CIRCLE}", "info": "\N{LARGE BLUE CIRCLE}"}
_TRACEBACK_EXCERPT = 1500  # the end of a traceback: enough for the last frames and the exception
_MESSAGE_EXCERPT = 1500
_BLANK = "\u200b"  # Discord refuses an empty field name or value

# Markdown that Discord renders anywhere, and what it renders at the start of a line.
_MARKUP = re.compile(r"([\\*_~`|<>\[\]()])")
_LINE_START = re.compile(r"^(\s*)([-#+])(?=[\s#])", re.MULTILINE)
_ORDERED = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)


def escape(text: str) -> str:
    """Text that Discord shows as typed: no bold, no masked link, no mention syntax, no autolink."""
    text = _MARKUP.sub(r"\\\1", text)
    text = _LINE_START.sub(r"\1\\\2", text)
    text = _ORDERED.sub(r"\1\\.", text)
    return text.replace("://", "\\://")


def _code(text: str, limit: int) -> str:
    """Inline code (shown raw, so nothing to escape); a backtick inside becomes a look-alike."""
    return "`" + fit(" ".join(text.split()).replace("`", "\u02cb"), limit - 2) + "`"


def _when(epoch: float | None) -> str | None:
    """A Discord timestamp (shown in the reader's zone, relative, exact on hover)."""
    if epoch is None or not math.isfinite(epoch) or iso_utc(epoch) is None:
        return None
    return f"<t:{int(epoch)}:R>"


def _label(alert: Alert) -> str:
    return "RESOLVED" if alert.state == "resolved" else fit(" ".join(alert.severity.split()).upper() or "ALERT", 20)


def _colour(alert: Alert) -> int:
    return _RESOLVED if alert.state == "resolved" else _COLOURS.get(alert.severity, _OTHER)


def _description(alert: Alert, budget: int) -> str:
    """Summary, then the message and the end of the traceback in code blocks, within ``budget``."""
    budget = min(budget, LIMITS["description"])
    parts = [fit(escape(alert.summary.strip()), min(1024, budget))] if alert.summary.strip() else []
    if alert.items:
        listed = "\n".join(fit(escape(" ".join(item.split())), 300) for item in alert.items)
        parts.append(fit(listed, min(1500, max(0, budget - sum(utf16_len(p) for p in parts) - 200))))
    used = sum(utf16_len(part) for part in parts)
    blocks = (
        ("", alert.message, _MESSAGE_EXCERPT, "head"),
        ("**Traceback**\n", alert.traceback, _TRACEBACK_EXCERPT, "tail"),
    )
    for heading, text, cap, keep in blocks:
        if not text or not text.strip():
            continue
        fence = "```py\n" if heading else "```\n"
        overhead = 2 + utf16_len(heading) + utf16_len(fence) + 4
        room = min(cap, budget - used - overhead)
        if room < 40:
            break
        part = heading + fence + fit(fence_safe(text), room, keep=keep) + "\n```"
        parts.append(part)
        used += utf16_len(part) + 2
    return fit("\n\n".join(parts), budget)


def _fields(alert: Alert) -> list[dict[str, Any]]:
    facts: list[tuple[str, str]] = []
    if alert.endpoint:
        facts.append(("Endpoint", _code(alert.endpoint, 300)))
    if alert.method:
        facts.append(("Method", _code(alert.method, 40)))
    if alert.error_type:
        facts.append(("Error type", _code(alert.error_type, 300)))
    if alert.count is not None:
        facts.append(("Count", f"{alert.count:,}"))
    for name, epoch in (("First seen", alert.first_seen), ("Last seen", alert.last_seen)):
        when = _when(epoch)
        if when:
            facts.append((name, when))
    facts.extend((escape(name.strip()), escape(value.strip())) for name, value in alert.fields)
    fields = [
        {
            "name": fit(name, LIMITS["field_name"]) or _BLANK,
            "value": fit(value, LIMITS["field_value"]) or _BLANK,
            "inline": utf16_len(value) <= 40,
        }
        for name, value in facts
    ]
    if len(fields) > LIMITS["fields"]:
        hidden = len(fields) - LIMITS["fields"] + 1
        fields = [*fields[: LIMITS["fields"] - 1], {"name": "…", "value": f"{hidden} more not shown", "inline": False}]
    return fields


def _embed_units(embed: dict[str, Any]) -> int:
    """What Discord counts toward the 6000 of all embeds: title, description, fields, footer, author."""
    total = utf16_len(str(embed.get("title", ""))) + utf16_len(str(embed.get("description", "")))
    for item in embed.get("fields", ()):
        total += utf16_len(str(item.get("name", ""))) + utf16_len(str(item.get("value", "")))
    total += utf16_len(str(embed.get("footer", {}).get("text", ""))) + utf16_len(
        str(embed.get("author", {}).get("name", ""))
    )
    return total


def _resolved_prefix(alert: Alert) -> str:
    # An incident's resolved message says so in its own title.
    return "Resolved: " if alert.state == "resolved" and alert.incident is None else ""


def build_discord_payload(alert: Alert) -> dict[str, Any]:
    """The webhook body for ``alert``: a one-line ``content`` and one embed, within every limit.

    When the embed would pass 6000 in all, the description shrinks first (the traceback is
    its end) but keeps at least 1500, then trailing fields go. No secret is in it (the alert is
    scrubbed first).
    """
    alert = without_secrets(alert)
    label = _label(alert)
    title = " ".join(alert.title.split()) or "wsgimon alert"
    emoji = "\N{WHITE HEAVY CHECK MARK}" if alert.state == "resolved" else _EMOJI.get(alert.severity, "\N{BELL}")
    embed: dict[str, Any] = {
        "title": fit(
            escape(f"{'Resolved: ' if alert.state == 'resolved' and alert.incident is None else ''}{title}"),
            LIMITS["title"],
        ),
        "color": _colour(alert),
        "footer": {"text": fit(f"wsgimon · {' '.join(alert.rule.split())}", 100)},
    }
    link = safe_link(alert.dashboard_url)
    if link:
        embed["url"] = link
    when = iso_utc(alert.last_seen if alert.last_seen is not None else alert.opened_at)
    if when:
        embed["timestamp"] = when
    fields = _fields(alert)
    fixed = utf16_len(embed["title"]) + utf16_len(embed["footer"]["text"])
    fields_units = sum(utf16_len(item["name"]) + utf16_len(item["value"]) for item in fields)
    description = _description(alert, max(1500, LIMITS["total"] - fixed - fields_units))
    if description:
        embed["description"] = description
    embed["fields"] = _trim_fields(fields, LIMITS["total"] - fixed - utf16_len(description))
    payload: dict[str, Any] = {
        "content": fit(f"{emoji} **{label}** · {escape(title)}", 400),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }
    return fit_discord_limits(payload)


def _trim_fields(fields: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The leading fields that fit ``budget``, the first that does not cut short, and a count of the rest."""
    reserve = 30  # room for the "… N more not shown" field
    kept: list[dict[str, Any]] = []
    for index, item in enumerate(fields):
        cost = utf16_len(item["name"]) + utf16_len(item["value"])
        if cost <= budget - (0 if index == len(fields) - 1 else reserve):
            kept.append(item)
            budget -= cost
            continue
        room = budget - reserve - utf16_len(item["name"])
        if room >= 40:
            kept.append({**item, "value": _shorten(item["value"], room), "inline": False})
            budget -= utf16_len(item["name"]) + utf16_len(kept[-1]["value"])
        hidden = len(fields) - len(kept)
        if hidden and budget >= reserve:
            kept.append({"name": "…", "value": f"{hidden} more not shown", "inline": False})
        break
    return kept


def _shorten(value: str, limit: int) -> str:
    if len(value) > 2 and value[0] == value[-1] == "`":
        return "`" + fit(value[1:-1], limit - 2) + "`"
    return fit(value, limit)


def fit_discord_limits(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of any webhook payload cut to Discord's limits (a last guard: the builder already fits).

    Every text is cut to its own limit; beyond 6000 in all, descriptions shrink, then fields
    go from the end, then footers and titles shrink.
    """
    result = dict(payload)
    if isinstance(result.get("content"), str):
        result["content"] = fit(result["content"], LIMITS["content"])
    embeds = []
    for raw in list(result.get("embeds") or ())[: LIMITS["embeds"]]:
        embed = dict(raw)
        for key, limit in (("title", LIMITS["title"]), ("description", LIMITS["description"])):
            if key in embed:
                embed[key] = fit(str(embed[key]), limit)
        for key, limit in (("footer", LIMITS["footer"]), ("author", LIMITS["author"])):
            part = embed.get(key)
            if isinstance(part, dict):
                name = "text" if key == "footer" else "name"
                embed[key] = {**part, name: fit(str(part.get(name, "")), limit) or _BLANK}
        if "fields" in embed:
            embed["fields"] = [
                {
                    **item,
                    "name": fit(str(item.get("name", "")), LIMITS["field_name"]) or _BLANK,
                    "value": fit(str(item.get("value", "")), LIMITS["field_value"]) or _BLANK,
                }
                for item in list(embed["fields"])[: LIMITS["fields"]]
            ]
        embeds.append(embed)
    excess = sum(_embed_units(embed) for embed in embeds) - LIMITS["total"]
    for embed in reversed(embeds):
        if excess <= 0:
            break
        if embed.get("description"):
            size = utf16_len(embed["description"])
            if size - excess > 1:
                embed["description"] = fit(embed["description"], size - excess)
                excess -= size - utf16_len(embed["description"])
            else:
                del embed["description"]
                excess -= size
        while excess > 0 and embed.get("fields"):
            last = embed["fields"][-1]
            embed["fields"] = embed["fields"][:-1]
            excess -= utf16_len(last["name"]) + utf16_len(last["value"])
        for key, name in (("footer", "text"), ("author", "name")):
            part = embed.get(key)
            if excess > 0 and isinstance(part, dict):
                text = str(part.get(name, ""))
                embed[key] = {**part, name: fit(text, max(1, utf16_len(text) - excess))}
                excess -= utf16_len(text) - utf16_len(embed[key][name])
        if excess > 0 and embed.get("title"):
            size = utf16_len(embed["title"])
            embed["title"] = fit(embed["title"], max(1, size - excess))
            excess -= size - utf16_len(embed["title"])
    if embeds or "embeds" in result:
        result["embeds"] = embeds
    return result


def _retry_after(response: httpx.Response) -> float | None:
    """Discord's 429 body says how long to wait (``retry_after``, seconds); the header is the fallback."""
    try:
        body = json.loads(response.text[:2000])
    except ValueError:
        return None
    return parse_seconds(body.get("retry_after")) if isinstance(body, dict) else None


def _explain(response: httpx.Response) -> str:
    """Discord's error: ``Invalid Form Body (50035): embeds.0.description: Must be 4096 or fewer in length.``"""
    try:
        body = json.loads(response.text[:20000])
    except ValueError:
        return " ".join(response.text[:300].split())
    if not isinstance(body, dict):
        return ""
    text = str(body.get("message", "")).strip()
    if "code" in body:
        text = f"{text} ({body['code']})"
    problems: list[str] = []

    def walk(node: object, path: list[str]) -> None:
        if len(problems) >= 3 or not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "_errors" and isinstance(value, list):
                problems.extend(
                    f"{'.'.join(path)}: {item.get('message', '')}" for item in value[:3] if isinstance(item, dict)
                )
            else:
                walk(value, [*path, str(key)])

    walk(body.get("errors"), [])
    return "; ".join([text, *problems[:3]]) if problems else text


class DiscordChannel:
    """Sends alerts to one Discord webhook, one attempt per :meth:`send`."""

    name = "discord"

    def __init__(self, url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        target = parse_webhook_url(url, service="Discord webhook")
        target = target.copy_set_param("wait", "true")
        self._http = HTTPDelivery(target, service="Discord", timeout_s=timeout_s, transport=transport)

    def send(self, alert: Alert, *, patience: float = 1.0) -> float | None:
        """Post ``alert``; None when the bucket has room, else the seconds until it refills.

        Raises :class:`~wsgimon.alerts.model.Retry` (429 with Discord's wait, 5xx, timeout, no
        connection), :class:`~wsgimon.alerts.model.Permanent` (400: Discord's reason) or
        :class:`~wsgimon.alerts.model.Gone` (401, 403, 404: the webhook is deleted).
        """
        response = self._http.post(build_discord_payload(alert), patience)
        self._http.raise_for_outcome(
            response, gone=frozenset({401, 403, 404}), retry_after=_retry_after, explain=_explain
        )
        if response.headers.get("X-RateLimit-Remaining", "").strip() == "0":
            return parse_seconds(response.headers.get("X-RateLimit-Reset-After"))
        return None

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<DiscordChannel to {self._http.host}>"
