"""Hostile requests: secrets in messages and paths, made-up methods, huge paths. Nothing leaks, nothing grows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request

from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware
from wsgimon.config import DEFAULT_REDACT_KEYS
from wsgimon.recording.naming import MAX_PATH_CHARS

SECRETS = ("hunter2", "tok-9f8e7d6c", "AKIA1234SECRET")


def flask_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask("hostile")
    app.logger.disabled = True

    @app.route("/boom")
    def boom() -> str:
        raise ValueError(f"could not fetch {request.url}")

    @app.route("/fast")
    def fast() -> str:
        return "fast"

    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def test_secrets_of_the_request_are_scrubbed_from_messages_tracebacks_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    app, monitor = flask_app(storage=f"sqlite:///{path}")
    query = f"password={SECRETS[0]}&token={SECRETS[1]}&api_key={SECRETS[2]}&page=2"
    client = app.test_client()
    for _ in range(4):
        with client.get(f"/boom?{query}"):
            pass
    monitor.flush()
    errors = get_json(monitor, "/monitoring/errors")["errors"]
    (error,) = errors
    text = json.dumps(errors) + json.dumps(get_json(monitor, "/monitoring/requests"))
    assert not [secret for secret in SECRETS if secret in text]
    assert "page=2" in error["message"] and "[REDACTED]" in error["message"]
    assert "raise ValueError" in error["traceback"]
    monitor.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert not [secret for secret in SECRETS if secret.encode() in stored]


def test_a_query_hidden_in_the_path_is_redacted_too() -> None:
    _, monitor = flask_app(storage="memory://")
    # The client sent /fast%3Fpassword=hunter2; the server hands over PATH_INFO decoded.
    call(monitor, "/fast?password=hunter2")
    (row,) = get_json(monitor, "/monitoring/requests")["requests"]
    assert "hunter2" not in row["path"] and row["path"] == "/fast%3Fpassword=[REDACTED]"


def test_default_redacted_keys_include_the_usual_short_names() -> None:
    assert {"pwd", "pass", "jwt", "sig", "credential"} <= set(DEFAULT_REDACT_KEYS)


def test_made_up_methods_fold_into_one_method_and_stay_bounded(tmp_path: Path) -> None:
    _, monitor = flask_app(storage=f"sqlite:///{tmp_path}/store.sqlite3")
    for n in range(3000):
        call(monitor, f"/scan/{n}", method=f"QQ{n}")
        call(monitor, "/fast", method=f"ZZ{n}")
    call(monitor, "/fast")
    rows = get_json(monitor, "/monitoring/endpoints?window=all")["endpoints"]
    # A made-up method on a real route is a 405: no route matched it either.
    assert {(row["endpoint"], row["method"]) for row in rows} == {("<unmatched>", "OTHER"), ("/fast", "GET")}
    assert sum(row["requests"] for row in rows) == 6001
    assert {row["method"] for row in get_json(monitor, "/monitoring/requests?limit=1000")["requests"]} <= {
        "OTHER",
        "GET",
    }
    monitor.close()


def test_methods_of_the_apps_own_routes_are_kept() -> None:
    app = Flask("webdav")

    @app.route("/files", methods=["PROPFIND"])
    def files() -> str:
        return "listing"

    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://")
    call(monitor, "/files", method="PROPFIND")
    (row,) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert (row["endpoint"], row["method"]) == ("/files", "PROPFIND")


def test_huge_paths_are_cut_everywhere_they_are_kept() -> None:
    from wsgimon.recording import fold

    _, monitor = flask_app(storage="memory://", recent_requests=1000)
    cached_before = fold._decode_short.cache_info().currsize
    for n in range(300):
        call(monitor, f"/{n}/" + "x" * 64_000, query="q=" + "y" * 64_000)
        if n % 100 == 99:
            monitor.flush()
    answer = call(monitor, "/monitoring/requests", query="limit=1000")
    rows = json.loads(answer.body)["requests"]
    assert len(rows) == 300
    assert max(len(row["path"]) for row in rows) <= 2 * MAX_PATH_CHARS + 1
    assert all(row["path"].endswith("…") for row in rows)
    assert len(answer.body) < 300 * (2 * MAX_PATH_CHARS + 400)
    assert fold._decode_short.cache_info().currsize <= cached_before + 1, "long paths are not cached"


def spa_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    """A single-page app: every unknown path answers 200 with the page."""
    app = Flask("spa")

    @app.errorhandler(404)
    def page(_: Exception) -> tuple[str, int]:
        return "<html>app</html>", 200

    @app.route("/api/orders/<int:order_id>")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def test_junk_paths_never_push_a_real_route_into_other() -> None:
    _, monitor = spa_app(storage="memory://", max_endpoints=20)
    for n in range(600):
        assert call(monitor, f"/junk/{n}-x{n}").status == "200 OK"
    call(monitor, "/api/orders/7")
    names = {row["endpoint"]: row["requests"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert names == {"<unmatched>": 600, "/api/orders/<int:order_id>": 1}


def test_one_off_paths_of_a_plain_app_fill_half_the_path_budget_at_most() -> None:
    from tests import wsgi_apps

    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="memory://", max_endpoints=100)
    for n in range(1000):
        call(monitor, f"/scan-{n}")
    for _ in range(2):
        call(monitor, "/real/page")
    names = {row["endpoint"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert "/real/page" in names and "<other>" not in names
    assert len(names - {"<unmatched>", "/real/page"}) == 10  # half of a fifth of the cap


def test_raw_paths_cannot_spell_a_template_or_a_reserved_name() -> None:
    from tests import wsgi_apps

    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="memory://")
    for path in ("/items/<int:id>", "/<other>", "/<unmatched>", "*"):
        for _ in range(2):
            call(monitor, path, method="GET")
    call(monitor, "*", method="*")
    names = {row["endpoint"] for row in get_json(monitor, "/monitoring/endpoints")["endpoints"]}
    assert names == {"/items/%3Cint:id%3E", "/%3Cother%3E", "/%3Cunmatched%3E", "<unmatched>"}
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["requests"] == 9 and stats["endpoints_overflowed"] == 0


def test_long_random_segments_are_ids_not_names() -> None:
    from tests import wsgi_apps

    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="memory://")
    for token in ("q8Zk2LxP0vR7mN4sT1wY9bC3", "A1b2C3d4E5f6G7h8I9j0KkLl"):
        call(monitor, f"/password-reset/{token}")
    (row,) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert (row["endpoint"], row["requests"]) == ("/password-reset/<token>", 2)


@pytest.mark.slow
def test_the_endpoint_cap_holds_across_workers(tmp_path: Path) -> None:
    import httpx

    from tests.servers import gunicorn_server, wait_until

    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_MAX_ENDPOINTS": "50",
    }
    with gunicorn_server("tests.cap_app:application", "-w", "2", env=env) as (url, _):
        with httpx.Client() as client:
            for n in range(300):
                client.get(f"{url}/route-{n}", headers={"Connection": "close"})
        wait_until(lambda: httpx.get(url + "/monitoring/stats?window=all").json()["requests"] == 300, 20)
        names = {row["endpoint"] for row in httpx.get(url + "/monitoring/endpoints?window=all").json()["endpoints"]}
    # New names are admitted by the store, which counts every worker's.
    assert len(names - {"<other>"}) == 50 and "<other>" in names
