"""A store written by the release before issues (schema 7) opens and is upgraded in place, history kept
(its rows of one writer each folded into the shared rows of today's journal design).

The fixtures were written by that release: ``store-v7.sqlite3`` (a Flask app with release
``v7-old``: 20 requests to /ok, 4 ValueErrors on /boom/<int:n>) and the same in PostgreSQL,
dumped with ``pg_dump --inserts`` into ``store-v7.postgres.sql``.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests import postgres
from tests.helpers import call, get_json
from tests.issues_app import create_app
from wsgimon import MonitorMiddleware
from wsgimon.stores.sql import SCHEMA_VERSION

postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url

FIXTURES = Path(__file__).parent / "fixtures"


def upgraded_and_kept(storage: str) -> MonitorMiddleware:
    """What the old store knew is still answered, and issues work on top of it."""
    _, monitor = create_app(storage=storage, release="v8-new")
    stats = get_json(monitor, "/monitoring/stats?window=all")
    assert stats["requests"] == 24 and stats["errors"] == 4
    errors = get_json(monitor, "/monitoring/errors?window=all")["errors"]
    assert [(e["type"], e["endpoint"], e["count"]) for e in errors] == [("ValueError", "/boom/<int:n>", 4)]
    old = next(r for r in get_json(monitor, "/monitoring/releases")["releases"] if r["release"] == "v7-old")
    assert old["requests"] == 24
    for path in ("/orders/x", "/refunds/y", "/ok"):
        call(monitor, path)
    (issue,) = get_json(monitor, "/monitoring/issues")["issues"]
    assert issue["count"] == 2 and len(issue["endpoints"]) == 2
    assert get_json(monitor, "/monitoring/stats?window=all")["requests"] == 27
    releases: list[dict[str, Any]] = get_json(monitor, "/monitoring/releases")["releases"]
    assert [r["release"] for r in releases] == ["v8-new", "v7-old"]
    return monitor


def test_a_schema_7_sqlite_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURES / "store-v7.sqlite3", path)
    path.chmod(0o600)
    monitor = upgraded_and_kept(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM buckets WHERE writer != ''").fetchone()[0] > 0
    # The old store's rows, one per writer, are folded into the shared rows; nothing counted twice.
    monitor.store.maintain(time.time())
    assert get_json(monitor, "/monitoring/stats?window=all")["requests"] == 27
    monitor.close()
    with sqlite3.connect(path) as conn:
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
        assert conn.execute("SELECT count(*) FROM issues").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM buckets WHERE writer != ''").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM journal").fetchone() == (0,)


def test_a_schema_7_postgresql_store_is_upgraded_in_place(
    postgres_url: str, postgres_server: postgres.PostgresServer
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.psql((FIXTURES / "store-v7.postgres.sql").read_text(), database)
    assert postgres_server.psql("SELECT value FROM wsgimon.meta WHERE key = 'schema_version'", database).strip() == "7"
    monitor = upgraded_and_kept(postgres_url)
    monitor.close()
    version = postgres_server.psql("SELECT value FROM wsgimon.meta WHERE key = 'schema_version'", database)
    assert version.strip() == str(SCHEMA_VERSION)
    assert postgres_server.psql("SELECT count(*) FROM wsgimon.issues", database).strip() == "1"
