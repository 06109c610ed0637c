"""A database connection as the shared SQL uses it: sqlite3's own, or PostgreSQL's behind an adapter."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from .contract import Deadlines

__all__ = ["Cursor", "SQLAccess", "Session"]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session(Protocol):
    """A connection as the shared code uses it: sqlite3's, or PostgreSQL's behind an adapter."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...


class SQLAccess(Deadlines):
    """How every part of the SQL store reaches its database; a back end provides the connections."""

    @abstractmethod
    def _writing(self, wait: bool = True) -> contextlib.AbstractContextManager[Session]:
        """This process's write connection, held alone, waiting no longer than the thread's time limit
        (without ``wait``, StoreUnavailable at once while another thread of the process holds it);
        a database error inside becomes StoreUnavailable (and the connection is reopened next time)."""

    @abstractmethod
    def _begin(self, session: Session) -> None:
        """Start a write transaction that no other process's write transaction overlaps."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read on the read connection, within the thread's time limit."""

    def _fresh(self) -> None:  # noqa: B027 - the SQL store folds its journal here
        """Before a read or a decision that depends on the statistics: what is pending, folded."""

    def _look(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read of what no fold writes (processes, leases, meta, claims): nothing folded first."""
        return self._query(sql, params)

    def _begin_append(self, session: Session) -> None:
        """A transaction that only appends (PostgreSQL needs no deployment-wide lock for it)."""
        self._begin(session)

    @contextlib.contextmanager
    def _transaction(self, appends_only: bool = False) -> Iterator[Session]:
        """A write transaction, committed at the end of the block, rolled back if it raises."""
        with self._writing() as session:
            if appends_only:
                self._begin_append(session)
            else:
                self._begin(session)
            try:
                yield session
                session.execute("COMMIT")
            except BaseException:
                if session.in_transaction:
                    session.execute("ROLLBACK")
                raise
