"""Where aggregated statistics live, chosen by the ``storage`` URL.

``memory://`` keeps one process's statistics in memory. ``sqlite:///relative.sqlite3``
and ``sqlite:////absolute/path.sqlite3`` (the SQLAlchemy convention) share one file
between every process on the host. ``postgresql://user:password@host:port/db``
(``?schema=name``, default ``wsgimon``) shares one database between every host.
"""

from __future__ import annotations

from ..secret_text import without_passwords
from .contract import Store, StoreUnavailable
from .memory import MemoryStore
from .records import Batch, ErrorSample, ProcessRow, RequestEntry

__all__ = [
    "Batch",
    "ErrorSample",
    "MemoryStore",
    "ProcessRow",
    "RequestEntry",
    "Store",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str, *, recent_requests: int, minute_retention_s: float, retention_s: float) -> Store:
    """Open the store named by ``url``; an unsupported or unusable one is a configuration error."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStore(recent_requests=recent_requests)
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ValueError(f"storage {url!r}: use sqlite:///relative/file.sqlite3 or sqlite:////absolute/path")
        from .sqlite import SQLiteStore

        return SQLiteStore(
            rest[1:],
            recent_requests=recent_requests,
            minute_retention_s=minute_retention_s,
            retention_s=retention_s,
        )
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(
            url,
            recent_requests=recent_requests,
            minute_retention_s=minute_retention_s,
            retention_s=retention_s,
        )
    raise ValueError(
        f"storage {without_passwords(url)!r}: unsupported scheme {scheme!r} (supported: memory://, sqlite:///, postgresql://)"
    )
