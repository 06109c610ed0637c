"""SQLAlchemy's queries, through its public engine events: no patching.

Listening on the ``Engine`` class covers every engine, made before or after. The events run
on the thread that runs the query, so the request is found as for any hook
(:mod:`wsgimon.wsgi.time_spent`); a query outside a request costs one empty-list test.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from ..time_spent import for_queries

__all__ = ["install"]

_installed = False


def install() -> bool:
    """Listen to every engine's queries; False when SQLAlchemy is not imported (nothing to hook yet)."""
    global _installed
    if _installed:
        return True
    import sys

    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)
    event.listen(Engine, "handle_error", _failed)
    _installed = True
    return True


def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    spent = for_queries()
    if spent is not None:
        spent.query_started(statement, perf_counter())


def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    spent = for_queries()
    if spent is not None:
        spent.query_ended(perf_counter())


def _failed(context: Any) -> None:
    spent = for_queries()
    if spent is not None:
        spent.query_ended(perf_counter(), failed=True)
