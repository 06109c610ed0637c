"""A JSON webhook channel (Slack-compatible), and the HTTP delivery it shares with Discord.

Usage::

    channel = WebhookChannel("https://hooks.slack.com/services/T000/B000/XXXX")
    channel.send(alert)  # one attempt; raises Retry, Permanent or Gone
    channel.close()

The body carries ``text`` (one line of Slack mrkdwn), ``blocks`` (Slack's layout,
ignored by other receivers) and ``wsgimon``: every field of the alert with times
in ISO 8601 UTC, for any receiver that wants structure rather than prose.

A webhook URL is a credential (Slack's and Discord's carry their token in the path),
so it never reaches a log record, an exception message or a repr: the module keeps
httpx's request log (which prints each full URL at INFO) at WARNING, a filter on that
logger masks every registered URL should someone turn it back on, and delivery errors
are raised outside the ``except`` block so they chain no httpx exception (whose
request holds the URL).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from .model import Alert, Gone, Permanent, Retry

__all__ = ["WebhookChannel", "build_webhook_payload"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_REASON = 300
_MAX_WAIT_S = 24 * 3600.0
_USER_AGENT = "wsgimon"

# Secrets (URL paths and queries) of open channels, masked in any record of the httpx logger.
_secrets_lock = threading.Lock()
_secrets: dict[str, int] = {}


class _MaskSecrets(logging.Filter):
    """Masks registered webhook URLs in httpx's own records, in case its level is lowered again."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(_secrets)
        if not secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:
            return True
        if any(secret in text for secret in secrets):
            record.msg, record.args = mask(text, secrets), None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)
logging.getLogger("httpx").addFilter(_MaskSecrets())


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, longest first (a token is part of its path)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def fit(text: str, limit: int, *, keep: str = "head") -> str:
    """Cut ``text`` to ``limit`` UTF-16 code units with an ellipsis, never splitting a character.

    UTF-16 units are what JavaScript counts, and never fewer than code points, so a text
    that fits here fits a limit counted either way. ``keep="tail"`` keeps the end instead
    (the end of a traceback is the part that matters).
    """
    if limit <= 0:
        return ""
    if len(text) <= limit // 2 or utf16_len(text) <= limit:
        return text
    budget = limit - 1
    chars = reversed(text) if keep == "tail" else iter(text)
    used = taken = 0
    for char in chars:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            break
        taken += 1
    return "…" + text[len(text) - taken :] if keep == "tail" else text[:taken] + "…"


def utf16_len(text: str) -> int:
    """The length JavaScript (and so Discord) sees: characters beyond the BMP count twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None for a missing or impossible time."""
    if epoch is None or not math.isfinite(epoch):
        return None
    try:
        moment = datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def safe_link(url: str | None) -> str | None:
    """The dashboard URL when it is a plain http(s) link a chat service will accept, else None."""
    if not url or len(url) > 2048 or any(char.isspace() for char in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def parse_webhook_url(url: str, *, service: str) -> httpx.URL:
    """Check a webhook URL at construction; errors name ``service`` ("Discord webhook"), never the URL.

    https only, or http to this machine (a local relay or a test stand-in), a host, and no
    ``user:password@`` (httpx would carry it into its log lines).
    """
    problem = None
    if not isinstance(url, str) or not url:
        problem = "is empty"
    elif url != url.strip() or any(char.isspace() or ord(char) < 0x20 for char in url):
        problem = "contains white space or control characters"
    else:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            problem = "cannot be parsed"
        else:
            if parts.scheme not in ("https", "http"):
                problem = "must start with https://"
            elif not host:
                problem = "has no host"
            elif parts.scheme == "http" and host not in _LOCAL_HOSTS:
                problem = "must use https:// (http:// is accepted for 127.0.0.1 and localhost only)"
            elif parts.username is not None or parts.password is not None:
                problem = "must not contain user:password@"
    if problem is None:
        try:
            return httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            problem = "cannot be parsed"
    raise ValueError(f"the {service} URL {problem} (the URL is not shown: it may hold a secret token)")


def parse_seconds(value: object) -> float | None:
    """Seconds to wait from a JSON number or header (``1.5``, or an HTTP date), bounded; None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - datetime.now(timezone.utc).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_WAIT_S)


class HTTPDelivery:
    """One POST per call on a client of its own, with every failure turned into a delivery error.

    Shared by the webhook and Discord channels: the client has the channel's timeouts, no
    redirects (a redirected webhook is a misconfigured one, and a ``Location`` may hold a
    token), and the URL is held here only.
    """

    def __init__(
        self,
        url: httpx.URL,
        *,
        service: str,
        timeout_s: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"the {service} timeout_s must be a positive number of seconds")
        self.service = service
        self.host = url.host if url.port is None else f"{url.host}:{url.port}"
        self.timeout_s = float(timeout_s)
        self._url = url
        raw = url.raw_path.decode("ascii", "replace")
        self._secrets = tuple({raw, raw.split("?", 1)[0], str(url)} | {s for s in raw.split("/") if len(s) >= 16})
        with _secrets_lock:
            for secret in self._secrets:
                _secrets[secret] = _secrets.get(secret, 0) + 1
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT},
        )
        self._closed = False

    def scrub(self, text: str) -> str:
        """``text`` bounded and free of this channel's URL, path and token."""
        return fit(mask(text, self._secrets), _MAX_REASON)

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        """POST ``payload`` as JSON once; raise :class:`Retry` for a timeout or a connection failure."""
        if self._closed:
            raise Gone(f"the {self.service} channel is closed")
        # Lone surrogates (from undecodable input) would make the encoder raise: replace them.
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8", "replace")
        failure: Retry | None = None
        try:
            response = self._client.post(self._url, content=body, headers={"Content-Type": "application/json"})
        except httpx.TimeoutException as exc:
            failure = Retry(f"{self.service} at {self.host} did not answer within {self.timeout_s:g} s ({_kind(exc)})")
        except httpx.RequestError as exc:  # connection, protocol, decoding: all before a usable answer
            detail = self.scrub(str(exc)) or "no detail"
            failure = Retry(f"cannot reach {self.service} at {self.host}: {_kind(exc)}: {detail}")
        if failure is not None:
            raise failure  # outside the except block: the httpx error (and its URL) is not chained
        return response

    def raise_for_outcome(
        self,
        response: httpx.Response,
        *,
        gone: frozenset[int],
        retry_after: Callable[[httpx.Response], float | None] | None = None,
        explain: Callable[[httpx.Response], str] | None = None,
    ) -> None:
        """Map a non-2xx answer to a delivery error; return for a 2xx.

        429 and 5xx (and 408) are :class:`Retry` with the service's wait when it gives one;
        ``gone`` statuses and redirects are :class:`Gone` (the URL is dead or wrong);
        any other 4xx is :class:`Permanent` with the service's own explanation, bounded.
        """
        status = response.status_code
        if 200 <= status < 300:
            return
        label = self.scrub(f"{self.service} answered {status} {fit(response.reason_phrase, 60)}".rstrip())
        if status == 429 or status == 408 or status >= 500:
            wait = retry_after(response) if retry_after is not None else None
            if wait is None:
                wait = parse_seconds(response.headers.get("Retry-After"))
            if status == 429:
                label = f"{self.service} rate limit (429)"
            raise Retry(f"{label}: retry after {wait:g} s" if wait is not None else label, wait)
        if status in gone:
            raise Gone(f"{label}: the webhook is deleted or its token is wrong; stop using it")
        if 300 <= status < 400:
            raise Gone(f"{label} (a redirect): configure the final webhook URL")
        detail = self.scrub(explain(response) if explain is not None else _body_text(response))
        raise Permanent(f"{label}: {detail}" if detail else label)

    def close(self) -> None:
        """Close the client and stop masking this channel's secrets."""
        if self._closed:
            return
        self._closed = True
        self._client.close()
        with _secrets_lock:
            for secret in self._secrets:
                left = _secrets.get(secret, 1) - 1
                if left > 0:
                    _secrets[secret] = left
                else:
                    _secrets.pop(secret, None)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _body_text(response: httpx.Response) -> str:
    """The answer's own words: a JSON ``message``/``error`` or the start of the text, on one line."""
    try:
        text = response.text[:2000]
    except Exception:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return " ".join(str(data[key]).split())
    return " ".join(text.split())


# Slack's mrkdwn: &, < and > are the only characters that must be escaped (they make links and mentions).
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_FENCE = re.compile(r"`(?=``)")


def fence_safe(text: str) -> str:
    """``text`` that cannot close a ``` fence it is put in (a zero-width space breaks each run of three)."""
    return _FENCE.sub("`\u200b", text.strip("\n"))


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
    if alert.suppressed:
        facts.append(("Suppressed (cooldown)", f"{alert.suppressed:,}"))
    for name, epoch in (("First seen", alert.first_seen), ("Last seen", alert.last_seen)):
        when = iso_utc(epoch)
        if when:
            facts.append((name, when.replace("T", " ")))
    facts.extend(alert.fields)
    return facts


def build_webhook_payload(alert: Alert) -> dict[str, Any]:
    """The JSON body: Slack's ``text`` and ``blocks``, and the whole alert under ``wsgimon``.

    Slack's limits are kept (header 150, section text 3000, 10 fields of 2000, 50 blocks) and
    every text is escaped for mrkdwn, so an error message cannot post a link or a mention.
    """
    label = _label(alert)
    emoji = ":white_check_mark:" if alert.state == "resolved" else _SLACK_EMOJI.get(alert.severity, ":bell:")
    line = " ".join(f"{alert.title} — {alert.summary}".split() if alert.summary else alert.title.split())
    text = f"{emoji} *{label}* {_slack(line, 500)}"

    body = _slack(alert.summary, 1500)
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
        "suppressed": alert.suppressed,
        "first_seen": iso_utc(alert.first_seen),
        "last_seen": iso_utc(alert.last_seen),
        "fields": [{"name": name, "value": value} for name, value in alert.fields],
        "dashboard_url": alert.dashboard_url,
    }


class WebhookChannel:
    """POSTs each alert as JSON to one URL (Slack's incoming webhooks, or any receiver of JSON)."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        target = parse_webhook_url(url, service="webhook")
        self._http = HTTPDelivery(target, service="webhook", timeout_s=timeout_s, transport=transport)

    def send(self, alert: Alert) -> float | None:
        """One delivery attempt; None when accepted (a plain webhook says nothing about rate limits)."""
        response = self._http.post(build_webhook_payload(alert))
        self._http.raise_for_outcome(response, gone=frozenset({401, 403, 404, 410}))
        return None

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<WebhookChannel to {self._http.host}>"
