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
#: what drivers call the statement when it is passed by name (psycopg: query, sqlite3: sql, PEP 249: operation)
_NAMES = ("query", "sql", "operation", "sql_script")


def instrument_dbapi(connection: C) -> C:
    """The connection, its queries timed per request; use what it returns in its place."""
    if isinstance(connection, _Connection):
        return connection
    proxy: Any = _Connection(connection)
    return proxy  # type: ignore[no-any-return]


def _timed(run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``run(*args, **kwargs)``, timed when a request of a capturing middleware runs on this thread."""
    spent = for_queries()
    if spent is None:
        return run(*args, **kwargs)
    statement = args[0] if args else None
    if type(statement) is not str:
        statement = _statement(args, kwargs)
    started = perf_counter()
    try:
        result = run(*args, **kwargs)
    except BaseException:
        spent.query(statement, perf_counter() - started, True)
        raise
    spent.query(statement, perf_counter() - started)
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
    """Everything not defined here goes to the driver's object. The methods a query runs through
    are defined on the classes (a missed lookup before ``__getattr__`` costs about a microsecond)."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wrapped, name, value)

    def __repr__(self) -> str:
        return f"<timed {self._wrapped!r}>"


class _Cursor(_Proxy):
    """A cursor whose ``execute`` gives itself back (sqlite3, psycopg) gives this proxy back."""

    __slots__ = ()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self._wrapped
        result = _timed(wrapped.execute, args, kwargs)
        return self if result is wrapped else result

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self._wrapped
        result = _timed(wrapped.executemany, args, kwargs)
        return self if result is wrapped else result

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self._wrapped
        result = _timed(wrapped.executescript, args, kwargs)
        return self if result is wrapped else result

    def fetchone(self) -> Any:
        return self._wrapped.fetchone()

    def fetchall(self) -> Any:
        return self._wrapped.fetchall()

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapped.fetchmany(*args, **kwargs)

    def close(self) -> Any:
        return self._wrapped.close()

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
    """Its cursors are proxies, and so are those its ``execute`` shortcuts (sqlite3) give."""

    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._wrapped.cursor(*args, **kwargs))

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return _cursor_of(self, _timed(self._wrapped.execute, args, kwargs))

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return _cursor_of(self, _timed(self._wrapped.executemany, args, kwargs))

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        return _cursor_of(self, _timed(self._wrapped.executescript, args, kwargs))

    def commit(self) -> Any:
        return self._wrapped.commit()

    def rollback(self) -> Any:
        return self._wrapped.rollback()

    def close(self) -> Any:
        return self._wrapped.close()

    def __enter__(self) -> _Connection:
        self._wrapped.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._wrapped.__exit__(*exc)


def _cursor_of(connection: _Connection, result: Any) -> Any:
    """A connection's ``execute`` shortcut gives a new cursor: timed in turn."""
    if result is connection._wrapped:
        return connection
    if result is not None and hasattr(result, "fetchone"):
        return _Cursor(result)
    return result
