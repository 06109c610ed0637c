"""An incident's message: what one :class:`~.incidents.Notice` says, as the :class:`~.model.Alert` channels send.

One message lists everything in the incident, a line each: what fires (the issues with their
endpoints, error rates, latency, SLO, health), what was resolved, what is silenced or held back
by something louder. The first message of an incident is "firing", then "update" (what changed,
in words: new, resolved, escalated to page, downgraded to ticket), "repeat" while it stays open,
and one "resolved" with how long it lasted and when each part was last seen.
"""

from __future__ import annotations

from typing import Any

from .incidents import Notice
from .model import Alert
from .state import FIRING, RESOLVED, Condition
from .text import duration_words

__all__ = ["render"]

_RANK = {"critical": 3, "warning": 2, "info": 1}
_MAX_ITEMS = 25
_MARK = {FIRING: "\N{LARGE RED CIRCLE}", RESOLVED: "\N{WHITE HEAVY CHECK MARK}"}


def _clock(epoch: float | None) -> str:
    from .text import iso_utc

    text = iso_utc(epoch)
    return "?" if text is None else text.replace("T", " ").replace("Z", " UTC")


def _line(condition: Condition, notice: Notice) -> str:
    facts = condition.facts
    if condition.key in notice.silenced:
        state = "\N{SPEAKER WITH CANCELLATION STROKE} silenced"
    elif condition.key in notice.inhibited:
        state = "\N{DOWNWARDS ARROW WITH CORNER LEFTWARDS} inhibited"
    elif condition.event:
        state = "\N{LARGE ORANGE CIRCLE} event"
    else:
        state = f"{_MARK.get(condition.status, '')} {condition.status}".strip()
    text = f"{state} · {condition.title}"
    if condition.status == FIRING or condition.event:
        text += f": {condition.summary}"
    if facts.get("last_seen"):
        text += f" (last seen {_clock(facts['last_seen'])})"
    return text


def _main(members: list[Condition], notice: Notice) -> Condition | None:
    """What the message is mostly about: the loudest firing condition that is not muted."""
    candidates = [c for c in members if c.status == FIRING and c.key not in notice.silenced | notice.inhibited]
    found = candidates or members
    return found[0] if found else None


def render(notice: Notice, dashboard_url: str | None, now: float) -> Alert:
    incident = notice.incident
    members = notice.members
    main = _main(members, notice)
    firing = [c for c in members if c.status == FIRING and not c.event]
    loud = [c for c in firing if c.key not in notice.silenced | notice.inhibited]
    muted = notice.silenced | notice.inhibited
    about = main.title if main is not None else "no condition"
    told = [c for c in members if c.status == FIRING and c.key not in muted]
    more = len(told) - 1 if main is not None and main in told else len(told)
    also = f" (and {more} more)" if more > 0 else ""
    severity = max((c.severity for c in (loud or firing or members)), key=lambda s: _RANK.get(s, 0), default="warning")
    if notice.kind == "resolved":
        lasted = duration_words(now - incident.opened)
        title = f"Incident #{incident.id} resolved after {lasted}: {about}"
        told = [c for c in members if not c.event]
        last_seen = [c.facts["last_seen"] for c in told if c.facts.get("last_seen")]
        summary = (
            f"Everything in incident #{incident.id} is clear: it lasted {lasted} "
            f"({_clock(incident.opened)} to {_clock(now)})."
        )
        if last_seen:
            summary += f" Last failure seen {_clock(max(last_seen))}."
    elif notice.kind == "update":
        title = f"Incident #{incident.id} update: {notice.changes[0]}" + (
            f" (+{len(notice.changes) - 1})" if len(notice.changes) > 1 else ""
        )
        summary = "Since the last message: " + "; ".join(notice.changes) + "."
    elif notice.kind == "repeat":
        title = f"Incident #{incident.id} still open: {about}{also}"
        summary = f"Open since {_clock(incident.opened)} ({duration_words(now - incident.opened)})."
    else:
        title = f"Incident #{incident.id}: {about}{also}"
        events = [c for c in members if c.event and c.status == FIRING]
        said = [f"{len(loud)} problem(s) firing"] if loud else []
        said += [f"{len(events)} event(s) to know of"] if events else []
        summary = f"{' and '.join(said) or 'Nothing firing'} since {_clock(incident.opened)}."
    items = tuple(_line(c, notice) for c in members[:_MAX_ITEMS])
    if len(members) > _MAX_ITEMS:
        items += (f"… and {len(members) - _MAX_ITEMS} more",)
    facts: dict[str, Any] = main.facts if main is not None else {}
    fields: list[tuple[str, str]] = [("incident", f"#{incident.id}"), ("opened", _clock(incident.opened))]
    if facts.get("endpoints"):
        names = list(facts["endpoints"])
        fields.append(("endpoints", ", ".join(names[:10]) + (f" +{len(names) - 10}" if len(names) > 10 else "")))
    fields += [(str(name), str(value)) for name, value in facts.get("fields", [])]
    resolved = notice.kind == "resolved"
    return Alert(
        key=f"incident|{incident.id}",
        rule=main.rule if main is not None else "incident",
        severity=severity,
        state="resolved" if resolved else "firing",
        title=title,
        summary=summary,
        opened_at=incident.opened,
        endpoint=facts.get("endpoint"),
        method=facts.get("method"),
        error_type=facts.get("error_type"),
        message=None if resolved else facts.get("message"),
        traceback=None if resolved else facts.get("traceback"),
        count=facts.get("count"),
        first_seen=facts.get("first_seen"),
        last_seen=facts.get("last_seen"),
        fields=tuple(fields),
        dashboard_url=dashboard_url,
        kind=notice.kind,
        incident=incident.id,
        thread=f"incident-{incident.id}-{int(incident.opened)}",
        thread_title=f"Incident #{incident.id}: {incident.title or about}",
        items=items,
    )
