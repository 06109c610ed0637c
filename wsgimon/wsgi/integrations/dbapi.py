"""Any DB-API 2.0 connection (sqlite3, psycopg, pymysql, …): ``wsgimon.instrument_dbapi(connection)``.

Drivers have no common hook and C types cannot be patched, so the connection is wrapped: a
proxy whose cursors time ``execute``, ``executemany`` and ``executescript`` (and the
connection's own ``execute`` shortcuts, as sqlite3 has, whose cursors are wrapped in turn), and
pass everything else through.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from ..time_spent import for_queries

__all__ = ["instrument_dbapi"]

C = TypeVar("C")
_TIMED = ("execute", "executemany", "executescript")
#: what drivers call the statement when it is passed by name (psycopg: query, sqlite3: sql, PEP 249: operation)
_NAMES = ("query", "sql", "operation", "sql_script")


def instrument_dbapi(connection: C) -> C:
    """The connection, its queries timed per request; use what it returns in its place."""
    if isinstance(connection, _Connection):
        return connection
    proxy: Any = _Connection(connection)
    return proxy  # type: ignore[no-any-return]


def _timed(run: Callable[..., Any], proxy: _Proxy) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        spent = for_queries()
        if spent is None:
            return _returned(proxy, run(*args, **kwargs))
        started = perf_counter()
        try:
            result = run(*args, **kwargs)
        except BaseException:
            spent.query(_statement(args, kwargs), perf_counter() - started, True)
            raise
        spent.query(_statement(args, kwargs), perf_counter() - started)
        return _returned(proxy, result)

    return timed


def _returned(proxy: _Proxy, result: Any) -> Any:
    """What a timed method gave, timed too: a cursor's ``execute`` gives the cursor (sqlite3, psycopg),
    a connection's ``execute`` shortcut a new cursor; the next ``execute`` on either is timed too."""
    wrapped = proxy._wrapped
    if result is wrapped:
        return proxy
    if isinstance(proxy, _Connection) and result is not None and hasattr(result, "fetchone"):
        return _Cursor(result)
    return result


def _statement(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The statement as the driver was given it (first argument, or by the name drivers give it)."""
    statement = args[0] if args else next((kwargs[name] for name in _NAMES if name in kwargs), None)
    if isinstance(statement, str):
        return statement
    if isinstance(statement, (bytes, bytearray)):
        return bytes(statement).decode("utf-8", "replace")
    return "<statement>"


class _Proxy:
    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._wrapped, name)
        if name in _TIMED and callable(found):
            return _timed(found, self)
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wrapped, name, value)

    def __repr__(self) -> str:
        return f"<timed {self._wrapped!r}>"


class _Cursor(_Proxy):
    __slots__ = ()

    def __iter__(self) -> Any:
        return iter(self._wrapped)

    def __next__(self) -> Any:
        return next(self._wrapped)

    def __enter__(self) -> _Cursor:
        self._wrapped.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._wrapped.__exit__(*exc)


class _Connection(_Proxy):
    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._wrapped.cursor(*args, **kwargs))

    def __enter__(self) -> _Connection:
        self._wrapped.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._wrapped.__exit__(*exc)
