"""The e-mail channel: one alert, one multipart/alternative message through :mod:`wsgimon.alerts.smtp`.

Usage::

    channel = EmailChannel(SMTPSettings(host="smtp.example.com", sender="alerts@example.com"),
                           ("ops@example.com",))
    channel.send(alert)  # one attempt; raises Retry, Permanent or Gone

The HTML part has inline styles only (mail clients drop style sheets) and links to nothing
but the dashboard: no image, no font, no tracking URL, so it reads the same offline and
in a client that blocks remote content. The plain-text part says the same for clients
(and pagers) that show no HTML.
"""

from __future__ import annotations

import hashlib
import math
import ssl
from collections.abc import Iterable
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..rendering import templates
from . import smtp
from .model import Alert
from .text import safe_link, without_secrets

__all__ = ["EmailChannel", "build_email", "render_parts", "subject_of"]


_COLOURS = {"critical": "#c0392b", "warning": "#d35400", "info": "#2471a3"}
_RESOLVED = "#1e8449"
_OTHER = "#566573"
_MAX_MESSAGE = 10_000
_MAX_TRACEBACK = 16_000


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]


def _utc(epoch: float | None) -> str | None:
    if epoch is None or not math.isfinite(epoch):
        return None
    try:
        return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return None


def _label(alert: Alert) -> str:
    return "RESOLVED" if alert.state == "resolved" else (_one_line(alert.severity, 20).upper() or "ALERT")


def subject_of(alert: Alert) -> str:
    """``[wsgimon] CRITICAL: ValueError in GET /boom``, on one line and bounded; every message of an
    incident has its first one's subject (``Re:`` after the first), so mail clients keep one thread."""
    if alert.thread_title:
        reply = "" if alert.kind == "firing" else "Re: "
        return f"{reply}[wsgimon] {_one_line(alert.thread_title, 200)}"
    return f"[wsgimon] {_label(alert)}: {_one_line(alert.title, 200) or 'alert'}"


def _facts(alert: Alert) -> list[tuple[str, str, bool]]:
    """(name, value, monospace) rows, in reading order."""
    facts: list[tuple[str, str, bool]] = []
    if alert.endpoint:
        endpoint = f"{alert.method} {alert.endpoint}" if alert.method else alert.endpoint
        facts.append(("Endpoint", _one_line(endpoint, 500), True))
    if alert.error_type:
        facts.append(("Error type", _one_line(alert.error_type, 300), True))
    if alert.count is not None:
        facts.append(("Count", f"{alert.count:,}", False))
    for name, epoch in (("First seen", alert.first_seen), ("Last seen", alert.last_seen)):
        when = _utc(epoch)
        if when:
            facts.append((name, when, False))
    facts.extend((_one_line(name, 200), _one_line(value, 2000), False) for name, value in alert.fields[:50])
    return facts


def render_parts(alert: Alert) -> tuple[str, str]:
    """The plain-text and HTML bodies of ``alert``, without secrets."""
    alert = without_secrets(alert)
    label = _label(alert)
    facts = _facts(alert)
    context = {
        "subject": subject_of(alert),
        "label": label,
        "title": _one_line(alert.title, 500),
        "summary": alert.summary.strip(),
        "items": [_one_line(item, 1000) for item in alert.items],
        "rule": _one_line(alert.rule, 100),
        "key": _one_line(alert.key, 300),
        "message": (alert.message or "").strip("\n")[:_MAX_MESSAGE] or None,
        "traceback": _tail((alert.traceback or "").strip("\n"), _MAX_TRACEBACK) or None,
        "facts": facts,
        "pad": max((len(name) + 1 for name, _, _ in facts), default=0),
        "dashboard_url": safe_link(alert.dashboard_url),
        "colour": _RESOLVED if alert.state == "resolved" else _COLOURS.get(alert.severity, _OTHER),
    }
    text = templates().get_template("alert_email.txt").render(context)
    html = templates().get_template("alert_email.html").render(context)
    return text, html


def build_email(alert: Alert, *, sender: str, recipients: Iterable[str]) -> EmailMessage:
    """The message for ``alert``: text and HTML alternatives, Date, Message-ID and threading by alert key.

    Every mail about one key (firing, again, resolved) references one made-up root id, so
    clients that thread by ``References`` keep them together.
    """
    domain = smtp.parse_address(sender, what="sender (From) address").rpartition("@")[2]
    alert = without_secrets(alert)  # the subject too
    text, html = render_parts(alert)
    message = EmailMessage()
    message["Subject"] = subject_of(alert)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    root_key = alert.thread or alert.key
    root = f"<wsgimon-alert-{hashlib.sha256(root_key.encode('utf-8', 'replace')).hexdigest()[:32]}@{domain}>"
    if alert.thread and alert.kind == "firing":
        message["Message-ID"] = root  # an incident's first message: the one the others answer
    else:
        message["Message-ID"] = make_msgid(domain=domain)
        message["In-Reply-To"] = root
    message["References"] = root
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html")
    return message


class EmailChannel:
    """Mails each alert to fixed recipients; settings and addresses are checked at construction."""

    name = "email"

    def __init__(
        self,
        settings: smtp.SMTPSettings,
        recipients: tuple[str, ...],
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.recipients = smtp.parse_recipients(recipients)
        self._ssl_context = ssl_context  # tests only: a self-signed server; the default verifies

    def send(self, alert: Alert, *, patience: float = 1.0) -> float | None:
        """One SMTP session for ``alert``; None when the server accepted it for every recipient."""
        message = build_email(alert, sender=self.settings.sender, recipients=self.recipients)
        smtp.send(self.settings, message, ssl_context=self._ssl_context)
        return None

    def close(self) -> None:
        """Nothing to release: each send is its own SMTP session."""

    def __repr__(self) -> str:
        return f"<EmailChannel via {self.settings.host}:{self.settings.port} to {len(self.recipients)} recipient(s)>"
