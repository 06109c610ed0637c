"""A private PostgreSQL server for the benchmarks (the tests' own), when Debian's binaries are installed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

ENV = "WSGIMON_BENCH_POSTGRES"  # the URL the in-process workers' PostgreSQL variant uses


@contextlib.contextmanager
def server() -> Iterator[PostgresServer | None]:
    """Yields the server (its URL also in ``WSGIMON_BENCH_POSTGRES``), or None without PostgreSQL or psycopg."""
    try:
        import psycopg  # noqa: F401

        from tests.postgres import PostgresServer, find_bindir
    except ImportError:
        yield None
        return
    if find_bindir() is None:
        yield None
        return
    with PostgresServer() as pg:
        os.environ[ENV] = fresh_database(pg)
        try:
            yield pg
        finally:
            os.environ.pop(ENV, None)


def fresh_database(pg: PostgresServer) -> str:
    """The URL of a new, empty database of ``pg``."""
    return pg.url_for(pg.create_database())
