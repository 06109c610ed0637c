"""An issue's lifecycle: open, resolved, ignored (for a while or a number of times), regressed.

Every store decides status changes with these functions inside its write, so the one
process whose write changed an issue learns it (and tells, once per deployment).

- ``open``: seen, nobody has said anything about it yet.
- ``resolved``: somebody said it is fixed, at ``resolved_at``; optionally ``in_release``
  (the release that ships the fix), so occurrences from the older releases still
  running during a rolling deploy do not count against it.
- ``regressed``: seen again after it was resolved (after ``resolved_at``, and from the
  fixing release or a newer one when one was named).
- ``ignored``: not alerted on; until a time, or until it has happened ``count`` more times,
  or for good. When that passes it is ``open`` again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .time_windows import parse_duration

__all__ = [
    "IGNORED",
    "OPEN",
    "REGRESSED",
    "RESOLVED",
    "SETTABLE",
    "STATUSES",
    "IssueChange",
    "IssueState",
    "Lifecycle",
    "after_occurrences",
    "apply_change",
    "effective",
    "future_instant",
    "parse_change",
]

OPEN, RESOLVED, IGNORED, REGRESSED = "open", "resolved", "ignored", "regressed"
STATUSES = (OPEN, RESOLVED, IGNORED, REGRESSED)
#: what a user may set; ``regressed`` is only ever decided by the store
SETTABLE = (OPEN, RESOLVED, IGNORED)


@dataclass(frozen=True)
class IssueChange:
    """A user's change of an issue's status."""

    status: str  # one of SETTABLE
    ignored_until: float | None = None
    ignored_for_count: int | None = None  # ignored until it happens this many more times
    in_release: str | None = None  # resolved in this release (the one that ships the fix)


class Lifecycle(Protocol):
    """What the lifecycle reads and writes of an issue (a stored row, or the part of it read back)."""

    status: str
    count: int
    status_changed: float
    resolved_at: float | None
    resolved_in: str | None
    ignored_until: float | None
    ignored_until_count: int | None


@dataclass
class IssueState:
    """The part of a stored issue its lifecycle reads and writes."""

    status: str = OPEN
    count: int = 0
    status_changed: float = 0.0
    resolved_at: float | None = None
    resolved_in: str | None = None
    ignored_until: float | None = None
    ignored_until_count: int | None = None


def effective(state: Lifecycle, now: float) -> str:
    """The status as of ``now``: an ignore whose time has passed is open again."""
    if state.status == IGNORED and state.ignored_until is not None and now >= state.ignored_until:
        return OPEN
    return state.status


def after_occurrences(
    state: Lifecycle,
    count: int,
    last_seen: float,
    release: str | None,
    release_started: Callable[[str], float | None],
    now: float,
) -> bool:
    """Add ``count`` occurrences (the latest at ``last_seen``, from ``release``) to ``state``;
    True when they made a resolved issue regress."""
    state.count += count
    status = effective(state, now)
    if status == OPEN and state.status == IGNORED:
        state.status, state.status_changed = OPEN, now
        state.ignored_until = state.ignored_until_count = None
    if state.status == IGNORED and state.ignored_until_count is not None and state.count >= state.ignored_until_count:
        state.status, state.status_changed = OPEN, now
        state.ignored_until = state.ignored_until_count = None
    if state.status != RESOLVED or state.resolved_at is None or last_seen <= state.resolved_at:
        return False
    if state.resolved_in is not None and release is not None and release != state.resolved_in:
        fixed = release_started(state.resolved_in)
        started = release_started(release)
        if fixed is None or started is None or started < fixed:
            return False  # an older release, still running: the fix is not in it
    state.status, state.status_changed = REGRESSED, now
    return True


def apply_change(state: Lifecycle, change: IssueChange, now: float) -> None:
    """A user's change: what it clears and what it sets."""
    state.status, state.status_changed = change.status, now
    state.resolved_at = now if change.status == RESOLVED else None
    state.resolved_in = change.in_release if change.status == RESOLVED else None
    ignoring = change.status == IGNORED
    state.ignored_until = change.ignored_until if ignoring else None
    count = change.ignored_for_count
    state.ignored_until_count = state.count + count if ignoring and count is not None else None


def parse_change(
    status: object, in_release: object, for_: object, until: object, count: object, now: float
) -> IssueChange:
    """A change as the API and the command line take it, checked; a ValueError says what is wrong."""
    if not isinstance(status, str) or status not in SETTABLE:
        raise ValueError(f"status must be one of {', '.join(SETTABLE)}, got {status!r}")
    if status != RESOLVED and in_release is not None:
        raise ValueError("in_release goes with status resolved")
    if status != IGNORED and (for_ is not None or until is not None or count is not None):
        raise ValueError("for, until and count go with status ignored")
    if in_release is not None and (not isinstance(in_release, str) or not 0 < len(in_release) <= 64):
        raise ValueError("in_release must be a release name of 1 to 64 characters")
    ignored_until = None
    if for_ is not None:
        if not isinstance(for_, str):
            raise ValueError("for must be a duration such as 30m, 12h or 7d")
        try:
            ignored_until = now + parse_duration(for_, "for")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if until is not None:
        if ignored_until is not None:
            raise ValueError("give for or until, not both")
        ignored_until = future_instant(until, now, "until")
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # JSON has numbers; 3.0 is 3
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 10**9):
        raise ValueError("count must be a whole number of occurrences from 1 to 1000000000")
    return IssueChange(status, ignored_until, count, in_release)


def future_instant(value: object, now: float, name: str) -> float:
    """An ISO 8601 time with its zone, after ``now``, as epoch seconds."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 time with its zone, such as 2026-12-31T09:00:00Z")
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time such as 2026-12-31T09:00:00Z, got {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must say its zone (Z or +01:00)")
    instant = moment.timestamp()
    if instant <= now:
        raise ValueError(f"{name} must be in the future")
    return instant
