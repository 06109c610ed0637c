"""Django's queries, through its public database instrumentation (``connection.execute_wrappers``).

Django's connections are per thread and made lazily, so the wrapper is added to each one
when Django says it connected (``connection_created``) and to those already open on the
installing thread; it stays for the connection's life and, outside a request, costs a look-up
that finds nothing (about 0.2 µs; nothing while no middleware captures).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from ..time_spent import for_queries

__all__ = ["install"]

_DISPATCH_UID = "wsgimon.wsgi.integrations.django_db"
_installed = False


def install() -> bool:
    """Time every Django query; False when Django's database layer is not imported."""
    global _installed
    if _installed:
        return True
    import sys

    if "django.db" not in sys.modules:
        return False
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_connected, weak=False, dispatch_uid=_DISPATCH_UID)
    try:
        for connection in connections.all(initialized_only=True):
            _wrap(connection)
    except Exception:
        pass  # settings not configured yet: connection_created covers what comes
    _installed = True
    return True


def _connected(sender: Any, connection: Any, **kwargs: Any) -> None:
    _wrap(connection)


def _wrap(connection: Any) -> None:
    wrappers = connection.execute_wrappers
    if _timed not in wrappers:
        # First, not last: ``connection.execute_wrapper()`` pops the last one when its block ends.
        wrappers.insert(0, _timed)


def _timed(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    spent = for_queries()
    if spent is None:
        return execute(sql, params, many, context)
    started = perf_counter()
    try:
        result = execute(sql, params, many, context)
    except BaseException:
        spent.query(sql, perf_counter() - started, failed=True)
        raise
    spent.query(sql, perf_counter() - started)
    return result
