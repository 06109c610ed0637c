"""What an alert is, and what a channel may answer when it tries to deliver one.

Rules decide *that* something is worth telling; the dispatcher decides *when*
and retries; a channel only turns one :class:`Alert` into one delivery
(a Discord message, a JSON POST, an e-mail) and says how that went by
returning or raising one of the delivery errors below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Alert",
    "DeliveryError",
    "Gone",
    "Permanent",
    "Retry",
    "UnknownOutcome",
    "SEVERITIES",
    "STATES",
]

#: How loud: a page wakes someone, a ticket can wait for the morning.
SEVERITIES = ("critical", "warning", "info")
STATES = ("firing", "resolved")


@dataclass(frozen=True)
class Alert:
    """One message to deliver. Every text in it is already free of secrets (scrubbed when recorded)."""

    key: str  # what it is about: "incident|12" for an incident's messages
    rule: str  # exception, error_rate, latency_p95, health, slo_page, slo_ticket, test, ...
    severity: str  # one of SEVERITIES
    state: str  # one of STATES
    title: str  # one line: "ValueError in GET /boom"
    summary: str  # a sentence or two
    opened_at: float  # when the condition started (epoch seconds)
    endpoint: str | None = None
    method: str | None = None
    error_type: str | None = None
    message: str | None = None  # the exception's message
    traceback: str | None = None
    count: int | None = None  # occurrences this alert is about
    first_seen: float | None = None
    last_seen: float | None = None
    fields: tuple[tuple[str, str], ...] = field(default=())  # further facts: ("error rate", "7.5 %")
    dashboard_url: str | None = None
    kind: str = "firing"  # of an incident's messages: firing, update, repeat, resolved (or test)
    incident: int | None = None
    thread: str | None = None  # the same for every message of one incident (e-mail threads on it)
    thread_title: str | None = None  # what the incident's first message was about
    items: tuple[str, ...] = ()  # what is in the incident, a line each


class DeliveryError(Exception):
    """A delivery that did not happen; the message is safe to log and show (no URL, no secret)."""


class Retry(DeliveryError):
    """Try again later: rate limited (``after_s`` given by the service), a 5xx, a timeout, no connection."""

    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class UnknownOutcome(Retry):
    """The request went out and no answer came in time: it may have been delivered. Tried once more,
    with more patience, never blindly again."""


class Permanent(DeliveryError):
    """This message will never be accepted (a 400: too long, malformed); drop it, keep the channel."""


class Gone(DeliveryError):
    """The channel itself is dead (webhook deleted: 404, 401, 403): stop using it and say so in health."""
