"""Django's ORM on SQLite: each request's queries counted, N+1s flagged with their view, no literal kept.

Django is configured once per process, and ``tests.frameworks.django_app`` configures it without a
database, so the app runs in a child process (:func:`serve_and_report`) that prints what the
monitoring API answered; the test reads it here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "secret-4711"
IDS = [906933001 + n for n in range(12)]

#: the child's routes (ROOT_URLCONF is this module)
urlpatterns: list[Any] = []


def serve_and_report(directory: str) -> None:
    """In the child: a Django project with a model on a SQLite file, its requests, and the API's answers."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="wsgimon-tests-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{directory}/app.sqlite3"}},
        USE_TZ=True,
    )
    django.setup()

    from django.db import connection, models
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    from tests.helpers import call, get_json
    from wsgimon import MonitorMiddleware
    from wsgimon.internal_errors import internal_error_count

    class Item(models.Model):  # type: ignore[misc]  # Django has no stubs here
        name = models.CharField(max_length=50)
        tag = models.CharField(max_length=50)

        class Meta:
            app_label = "shop"

    with connection.schema_editor() as editor:
        editor.create_model(Item)
    Item.objects.bulk_create([Item(id=i, name=f"item {i}", tag=SECRET) for i in IDS])

    def one_query(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(Item.objects.filter(tag=SECRET).count()))

    def each_by_orm(request: HttpRequest) -> HttpResponse:
        return HttpResponse(",".join(Item.objects.get(pk=i).name for i in IDS))

    def each_inline(request: HttpRequest) -> HttpResponse:
        names = []
        with connection.cursor() as cursor:
            for i in IDS:
                cursor.execute(f"SELECT name FROM shop_item WHERE id = {i} AND tag = '{SECRET}'")
                names.append(cursor.fetchone()[0])
        return HttpResponse(",".join(names))

    def plain(request: HttpRequest) -> HttpResponse:
        return HttpResponse("nothing waited on")

    urlpatterns[:] = [
        path("one", one_query),
        path("orm", each_by_orm),
        path("inline", each_inline),
        path("plain", plain),
    ]
    from django.core.wsgi import get_wsgi_application

    monitor = MonitorMiddleware(get_wsgi_application(), storage=f"sqlite:///{directory}/store/wsgimon.sqlite3")
    statuses = [call(monitor, p).status for p in ("/one", "/orm", "/inline", "/plain")]
    answers = {
        "statuses": statuses,
        "requests": get_json(monitor, "/monitoring/requests?limit=1000"),
        "queries": get_json(monitor, "/monitoring/queries"),
        "endpoints": get_json(monitor, "/monitoring/endpoints"),
        "stats": get_json(monitor, "/monitoring/stats"),
        "slow": get_json(monitor, "/monitoring/slow"),
    }
    monitor.close()
    answers["internal_errors"] = internal_error_count()
    print(json.dumps(answers))


def leaks(text: str) -> list[str]:
    found = [SECRET] if SECRET in text else []
    return found + [str(i) for i in IDS if re.search(rf"(?<![0-9.]){i}(?![0-9])", text)]


def test_django_orm_queries_are_counted_and_n_plus_ones_flagged(tmp_path: Path) -> None:
    pytest.importorskip("django")
    (tmp_path / "store").mkdir()
    program = f"from tests.test_time_spent_django import serve_and_report; serve_and_report({str(tmp_path)!r})"
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["statuses"] == ["200 OK"] * 4
    assert answers["internal_errors"] == 0, done.stderr

    logged = {row["endpoint"]: row for row in answers["requests"]["requests"]}
    assert logged["/one"]["db_queries"] == 1 and logged["/one"]["db_ms"] > 0
    assert logged["/orm"]["db_queries"] == 12 and logged["/orm"]["db_ms"] > 0
    assert logged["/inline"]["db_queries"] == 12
    assert logged["/plain"]["db_queries"] == 0

    queries = {row["statement"]: row for row in answers["queries"]["queries"]}
    (orm,) = [row for statement, row in queries.items() if statement.endswith('WHERE "shop_item"."id" = ? LIMIT ?')]
    inline = queries["SELECT name FROM shop_item WHERE id = ? AND tag = ?"]
    (single,) = [row for statement, row in queries.items() if "COUNT(*)" in statement]
    assert len(queries) == 3, list(queries)
    assert (orm["count"], inline["count"], single["count"]) == (12, 12, 1)
    assert (orm["n_plus_one"], inline["n_plus_one"], single["n_plus_one"]) == (1, 1, 0)
    # The ORM ran inside a generator expression: named with the view it is in.
    assert orm["frame"] is not None and "each_by_orm.<genexpr>" in orm["frame"]
    assert inline["frame"] is not None and "each_inline" in inline["frame"]
    assert orm["endpoints"] == [{"endpoint": "/orm", "method": "GET", "count": 12}]

    endpoints = {row["endpoint"]: row for row in answers["endpoints"]["endpoints"]}
    assert endpoints["/orm"]["time_spent"]["db_queries"]["avg"] == 12

    answered = json.dumps({key: value for key, value in answers.items() if key != "statuses"})
    assert not leaks(answered)
    import sqlite3

    with sqlite3.connect(tmp_path / "store" / "wsgimon.sqlite3") as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        stored = {table: conn.execute(f'SELECT * FROM "{table}"').fetchall() for table in tables}
    assert stored["dependencies"]
    assert not leaks(repr(stored))
    file_bytes = b"".join(p.read_bytes() for p in (tmp_path / "store").iterdir())
    assert not leaks(file_bytes.decode("latin-1"))
