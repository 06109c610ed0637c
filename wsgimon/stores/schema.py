"""The tables of the SQL stores, declared once and written out in each database's dialect.

A column's kind (``int``, ``real``, ``text``, ``blob``, ``id``) becomes SQLite's or PostgreSQL's
type; a ``?`` after the kind allows NULL. The aggregate's columns (what one bucket holds) are one
list that the bucket tables, the release tables and the statements all use, and so are the
request columns of the request log and of the slow requests.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ADDED_COLUMNS",
    "AGGREGATE_COLUMNS",
    "DEPENDENCY_USE_COLUMNS",
    "REQUEST_COLUMNS",
    "SPENT_COLUMNS",
    "added_column",
    "ddl",
    "names",
    "placeholders",
]

Dialect = Literal["sqlite", "postgresql"]
Column = tuple[str, str]  # (name, kind [? for NULL] [= default])

#: what one aggregate (a bucket) holds, in the order the statements read and write it
AGGREGATE_COLUMNS: tuple[Column, ...] = (
    ("count", "int"),
    ("errors", "int"),
    ("client_errors", "int"),
    ("total_ms", "real"),
    ("min_ms", "real?"),
    ("max_ms", "real"),
    ("sketch", "blob"),
    ("status_codes", "text"),
    ("error_types", "text"),
    ("last_seen", "real"),
    ("histogram", "text='{}'"),
    ("spent", "text=''"),  # time in queries and outbound calls (stats/spent.py), '' for none
)
#: one line of a request log
REQUEST_COLUMNS: tuple[Column, ...] = (
    ("time", "real"),
    ("method", "text"),
    ("path", "text"),
    ("endpoint", "text"),
    ("status", "int"),
    ("duration_ms", "real"),
    ("ttfb_ms", "real?"),
    ("error_type", "text?"),
    ("response_bytes", "int?"),
)
#: one dependency's use (stats/dependencies.Use), in the order Use.to_values gives it
DEPENDENCY_USE_COLUMNS: tuple[Column, ...] = (
    ("count", "int"),
    ("errors", "int"),
    ("total_ms", "real"),
    ("max_ms", "real"),
    ("sketch", "blob"),
    ("repeated", "int"),
    ("last_seen", "real"),
)
#: what one request spent in queries and outbound calls (NULL: not captured)
SPENT_COLUMNS: tuple[Column, ...] = (
    ("db_queries", "int?"),
    ("db_ms", "real?"),
    ("http_calls", "int?"),
    ("http_ms", "real?"),
)

# name, columns, primary key (None: an id column leads), no row id (SQLite), indexes (name, columns[, where])
_TABLES: tuple[tuple[str, tuple[Column, ...], str | None, bool, tuple[tuple[str, str, str], ...]], ...] = (
    ("meta", (("key", "text"), ("value", "text")), "key", False, ()),
    (
        "buckets",
        (
            ("resolution", "int"),
            ("endpoint", "text"),
            ("method", "text"),
            ("start", "int"),
            *AGGREGATE_COLUMNS,
            ("writer", "text"),
        ),
        "resolution, endpoint, method, start, writer",
        True,
        (
            ("buckets_by_time", "resolution, start", ""),
            # what maintenance looks for: rows not yet folded into the shared row (few, in a long history)
            ("buckets_unshared", "resolution, start", "writer != ''"),
        ),
    ),
    ("requests", (("id", "id"), *REQUEST_COLUMNS, ("sampled", "int=0"), *SPENT_COLUMNS), None, False, ()),
    (
        "slow_requests",
        (("id", "id"), *REQUEST_COLUMNS, ("profile", "text"), *SPENT_COLUMNS, ("queries", "text='[]'")),
        None,
        False,
        (("slow_requests_by_endpoint", "endpoint, method, duration_ms", ""),),
    ),
    (
        "error_samples",
        (
            ("type", "text"),
            ("endpoint", "text"),
            ("method", "text"),
            ("count", "int"),
            ("first_seen", "real"),
            ("last_seen", "real"),
            ("message", "text"),
            ("traceback", "text?"),
        ),
        "type, endpoint, method",
        False,
        (),
    ),
    (
        "processes",
        (
            ("host", "text"),
            ("pid", "int"),
            ("started", "real"),
            ("last_flush", "real"),
            ("requests", "int"),
            ("stopped", "real?"),
            ("in_flight", "int=0"),
            ("oldest_in_flight", "real?"),
            ("oldest_request", "text?"),
            ("release", "text?"),
            ("capacity", "int?"),
            ("lost", "int=0"),
        ),
        "host, pid, started",
        False,
        (),
    ),
    (
        "releases",
        (("release", "text"), ("first_seen", "real"), ("last_seen", "real")),
        "release",
        False,
        (),
    ),
    (
        "release_buckets",
        (("release", "text"), ("start", "int"), ("endpoint", "text"), ("method", "text"), *AGGREGATE_COLUMNS),
        "release, start, endpoint, method",
        True,
        (),
    ),
    (
        "dependencies",
        (
            ("id", "text"),
            ("kind", "text"),
            ("text", "text"),
            ("frame", "text?"),
            ("first_seen", "real"),
            ("last_seen", "real"),
        ),
        "id",
        False,
        (("dependencies_by_last_seen", "last_seen", ""),),
    ),
    (
        "dependency_uses",
        (
            ("resolution", "int"),
            ("start", "int"),
            ("id", "text"),
            ("endpoint", "text"),
            ("method", "text"),
            ("release", "text"),
            *DEPENDENCY_USE_COLUMNS,
        ),
        "resolution, start, id, endpoint, method, release",
        True,
        (),
    ),
    (
        "checkin_monitors",
        (
            ("name", "text"),
            ("every_s", "real?"),
            ("cron", "text?"),
            ("timezone", "text"),
            ("grace_s", "real"),
            ("created", "real"),
            ("declared", "int"),  # 1: declared (in the configuration), 0: by a ping's schedule
        ),
        "name",
        False,
        (),
    ),
    (
        "checkin_runs",
        (
            ("id", "id"),
            ("name", "text"),
            ("started", "real?"),
            ("ended", "real?"),
            ("ok", "int?"),
            ("exit_code", "int?"),
            ("error", "text?"),
            ("log", "text?"),
        ),
        None,
        False,
        (("checkin_runs_by_name", "name, id", ""),),
    ),
    ("counters", (("name", "text"), ("value", "int")), "name", False, ()),
    # What flushes appended and the maintainer has not folded yet (stores/batch_codec.py).
    (
        "journal",
        (
            ("id", "id"),
            ("writer", "text"),
            ("release", "text?"),
            ("started", "real"),
            ("written", "real"),
            ("payload", "blob"),
        ),
        None,
        False,
        (),
    ),
    # Roles one process of the deployment holds at a time (the maintainer), until a moment.
    ("leases", (("name", "text"), ("holder", "text"), ("until", "real")), "name", False, ()),
    ("endpoint_names", (("name", "text"), ("admitted", "real")), "name", False, ()),
    (
        "alert_state",
        (("key", "text"), ("firing", "int=0"), ("until", "real=0"), ("suppressed", "int=0"), ("changed", "real")),
        "key",
        False,
        (),
    ),
    (
        "report_runs",
        (("key", "text"), ("state", "text"), ("updated", "real"), ("detail", "text")),
        "key",
        False,
        (),
    ),
    (
        "alerts",
        (
            ("id", "id"),
            ("key", "text"),
            ("rule", "text"),
            ("severity", "text"),
            ("state", "text"),
            ("title", "text"),
            ("summary", "text"),
            ("opened_at", "real"),
            ("sent_at", "real"),
            ("suppressed", "int"),
            ("deliveries", "text"),
        ),
        None,
        False,
        (),
    ),
)

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "int": "INTEGER",
        "real": "REAL",
        "text": "TEXT",
        "blob": "BLOB",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgresql": {
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "text": "TEXT",
        "blob": "BYTEA",
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    },
}


def _column(name: str, kind: str, dialect: Dialect) -> str:
    kind, _, default = kind.partition("=")
    nullable = kind.endswith("?")
    sql = f"{name} {_TYPES[dialect][kind.rstrip('?')]}"
    if kind != "id":
        sql += "" if nullable else " NOT NULL"
        sql += f" DEFAULT {default}" if default else ""
    return sql


def ddl(dialect: Dialect) -> list[str]:
    """Every CREATE TABLE and CREATE INDEX, each safe to run on a store that has it already."""
    statements = []
    for name, columns, key, no_row_id, indexes in _TABLES:
        parts = [_column(column, kind, dialect) for column, kind in columns]
        if key is not None:
            parts.append(f"PRIMARY KEY ({key})")
        suffix = " WITHOUT ROWID" if no_row_id and dialect == "sqlite" else ""
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} (\n    " + ",\n    ".join(parts) + f"\n){suffix}")
        for index, on, where in indexes:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index} ON {name} ({on})" + (f" WHERE {where}" if where else "")
            )
    return statements


#: Columns added since their table was first created: (table, column, kind), for older stores.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("buckets", "histogram", "text='{}'"),  # schema 5
    ("requests", "sampled", "int=0"),  # 6
    ("processes", "in_flight", "int=0"),  # 6
    ("processes", "oldest_in_flight", "real?"),  # 6
    ("processes", "oldest_request", "text?"),  # 6
    ("processes", "release", "text?"),  # 7
    ("buckets", "spent", "text=''"),  # 9
    ("release_buckets", "spent", "text=''"),  # 9
    *(("requests", name, kind) for name, kind in SPENT_COLUMNS),  # 9
    *(("slow_requests", name, kind) for name, kind in SPENT_COLUMNS),  # 9
    ("slow_requests", "queries", "text='[]'"),  # 9
    ("processes", "capacity", "int?"),  # 9
    ("processes", "lost", "int=0"),  # 9
)


def added_column(column: str, kind: str, dialect: Dialect) -> str:
    """The column as ``ALTER TABLE … ADD COLUMN`` takes it."""
    return _column(column, kind, dialect)


def placeholders(count: int) -> str:
    """``?, ?, ?``: one per value."""
    return ", ".join("?" * count)


def names(columns: tuple[Column, ...]) -> str:
    """``count, errors, …``: the columns as a statement lists them."""
    return ", ".join(name for name, _kind in columns)
