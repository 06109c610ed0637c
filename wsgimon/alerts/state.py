"""The deployment's alerting state as the store keeps it: conditions, incidents, silences.

Plain records, read and written by the stores and changed only by
:func:`wsgimon.alerts.incidents.decide` inside one write transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "EVENT_PREFIX",
    "FIRING",
    "KEEP_RESOLVED_S",
    "OPEN",
    "PENDING",
    "RESOLVED",
    "AlertingState",
    "Condition",
    "Incident",
    "Silence",
    "Verdict",
]

PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
#: the key of every event starts so ("event|new_issue|v43|46d06e6162f3")
EVENT_PREFIX = "event|"
OPEN = "open"
#: resolved conditions and incidents are kept this long (shown in /alerts), then forgotten
KEEP_RESOLVED_S = 86400.0


@dataclass(frozen=True)
class Verdict:
    """One rule's reading of one thing now."""

    key: str  # "error_rate|GET|/checkout", "issue|46d06e6162f3", "slo|availability", ...
    rule: str
    true: bool
    severity: str
    title: str  # what it is, firing or not: "Error rate of GET /checkout above 5.0 %"
    summary: str  # the numbers now
    facts: dict[str, Any] = field(default_factory=dict)  # endpoint, method, issue, last_seen, fields
    event: bool = False  # told once, never resolves
    clear_since: float | None = None  # when it stopped being true, if the rule knows (an issue's last_seen)


@dataclass
class Condition:
    """A rule about one thing, as the deployment knows it."""

    key: str
    rule: str
    severity: str
    status: str  # pending, firing, resolved
    title: str
    summary: str
    facts: dict[str, Any]
    true_since: float
    changed: float
    clear_since: float | None = None
    incident: int | None = None
    event: bool = False
    told: bool = False  # an event included in a message
    peak_severity: str = "info"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Condition:
        return cls(**data)


@dataclass
class Incident:
    id: int
    group: str
    status: str  # open, resolved
    opened: float
    resolved: float | None = None
    first_sent: float | None = None
    last_sent: float | None = None
    messages: int = 0
    #: what the last message said: condition key -> "severity" or "resolved"
    told: dict[str, str] = field(default_factory=dict)
    #: what its first message was about: every later message is a reply to it
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        return cls(**data)


@dataclass(frozen=True)
class Silence:
    """Mutes what matches every given field, from ``starts`` to ``ends``."""

    id: int
    starts: float
    ends: float
    reason: str
    rule: str | None = None
    endpoint: str | None = None
    issue: str | None = None
    severity: str | None = None
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts <= now < self.ends

    def matchers(self) -> list[str]:
        """What it matches on, in words: ``["rule error_rate", "endpoint GET /checkout"]``."""
        fields = (("rule", self.rule), ("endpoint", self.endpoint), ("issue", self.issue), ("severity", self.severity))
        return [f"{name} {value}" for name, value in fields if value]

    def matches(self, condition: Condition) -> bool:
        facts = condition.facts
        return (
            (self.rule is None or condition.rule == self.rule or condition.rule.startswith(self.rule + "_"))
            and (self.endpoint is None or facts.get("endpoint") == self.endpoint)
            and (self.issue is None or facts.get("issue") == self.issue)
            and (self.severity is None or condition.severity == self.severity)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Silence:
        return cls(**data)


@dataclass
class AlertingState:
    """The deployment's alerting state, as one store transaction reads and writes it."""

    conditions: dict[str, Condition] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    next_incident: int = 1
    evaluated_at: float = 0.0
    #: keys of what this transaction changed, for the store to write back
    changed_conditions: set[str] = field(default_factory=set)
    changed_incidents: set[int] = field(default_factory=set)
