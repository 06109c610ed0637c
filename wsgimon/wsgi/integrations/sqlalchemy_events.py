"""SQLAlchemy's queries, through its public dialect events: no patching.

The dialect events ``do_execute``, ``do_executemany`` and ``do_execute_no_params`` let a listener
run the cursor's ``execute`` itself; the listener times the dialect's own call around it. They are
chosen over ``before_cursor_execute``/``after_cursor_execute`` for cost: any connection event
takes every query of every engine off SQLAlchemy's fast path (about 4.5 µs a query here, measured
in bench/RESULTS.md), a dialect event is one call. Listening on the ``Engine`` class covers every
engine, made before or after. The events run on the thread that runs the query, so the request
is found as for any hook (:mod:`wsgimon.wsgi.time_spent`); outside a request the listener hands
the query back to the dialect at once.
"""

from __future__ import annotations

import sys
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
    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "do_execute", _execute)
    event.listen(Engine, "do_executemany", _executemany)
    event.listen(Engine, "do_execute_no_params", _execute_no_params)
    _installed = True
    return True


# Three listeners written out, not one made per call name: a shared one (arguments packed, the
# dialect's method looked up by name) measured about 4,000 instructions more per query.


def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    spent = for_queries()
    if spent is None:
        return False  # the dialect runs it, as without wsgimon
    started = perf_counter()
    try:
        context.dialect.do_execute(cursor, statement, parameters, context)
    except BaseException:
        spent.query(statement, perf_counter() - started, True)
        raise
    spent.query(statement, perf_counter() - started)
    return True


def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    spent = for_queries()
    if spent is None:
        return False
    started = perf_counter()
    try:
        context.dialect.do_executemany(cursor, statement, parameters, context)
    except BaseException:
        spent.query(statement, perf_counter() - started, True)
        raise
    spent.query(statement, perf_counter() - started)
    return True


def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    spent = for_queries()
    if spent is None:
        return False
    started = perf_counter()
    try:
        context.dialect.do_execute_no_params(cursor, statement, context)
    except BaseException:
        spent.query(statement, perf_counter() - started, True)
        raise
    spent.query(statement, perf_counter() - started)
    return True
