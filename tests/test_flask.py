"""Flask: exceptions Flask handles itself are classified, with message and traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from flask import Flask

from demo_app import create_app
from tests.helpers import call, get_json
from tests.servers import werkzeug_server
from wsgimon import MonitorMiddleware


@pytest.fixture(autouse=True)
def quiet_flask_errors(caplog: pytest.LogCaptureFixture) -> None:
    # Flask logs the demo's deliberate exceptions; they are not wsgimon's.
    logging.getLogger("demo_app").setLevel(logging.CRITICAL)


def test_test_error_yields_value_error_with_message_and_traceback() -> None:
    app, _ = create_app()
    with werkzeug_server(app) as url:
        response = httpx.get(url + "/test/error")
        assert response.status_code == 500
        errors = httpx.get(url + "/monitoring/errors").json()["errors"]
        stats = httpx.get(url + "/monitoring/stats").json()
    (error,) = errors
    assert error["type"] == "ValueError"
    assert error["endpoint"] == "/test/error" and error["count"] == 1
    assert error["message"] == "demo failure: something went wrong in /test/error"
    assert "raise ValueError" in error["traceback"] and error["traceback"].rstrip().endswith(error["message"])
    assert stats["error_types"] == {"ValueError": 1} and stats["errors"] == 1


def test_http_errors_without_exception_are_typed_by_status() -> None:
    app, monitor = create_app()
    call(monitor, "/test/server-error")
    call(monitor, "/test/notfound")
    stats = get_json(monitor, "/monitoring/stats")
    assert stats["error_types"] == {"500 Internal Server Error": 1, "404 Not Found": 1}
    assert stats["errors"] == 1 and stats["client_errors"] == 1


def test_propagated_exceptions_are_recorded_once() -> None:
    flask_app = Flask("propagating")
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True

    @flask_app.route("/boom")
    def boom() -> str:
        raise KeyError("missing")

    monitor = MonitorMiddleware(flask_app.wsgi_app)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]
    result = call(monitor, "/boom")
    assert isinstance(result.error, KeyError)
    (error,) = get_json(monitor, "/monitoring/errors")["errors"]
    assert (error["type"], error["count"], error["endpoint"]) == ("KeyError", 1, "/boom")


def test_routes_added_after_wrapping_are_named() -> None:
    flask_app = Flask("late")
    monitor = MonitorMiddleware(flask_app.wsgi_app)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]

    @flask_app.route("/later/<int:n>")
    def later(n: int) -> str:
        return str(n)

    call(monitor, "/later/6")
    call(monitor, "/sooner/6")
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert {row["endpoint"] for row in rows} == {"<unmatched>", "/later/<int:n>"}


def test_importing_wsgimon_does_not_need_flask_for_plain_apps() -> None:
    monitor = MonitorMiddleware(lambda environ, start_response: [])
    assert monitor.integration is None


def test_strict_slash_redirects_are_named_by_their_target() -> None:
    flask_app = Flask("slashes")

    @flask_app.route("/docs/")
    def docs() -> str:
        return "docs"

    monitor = MonitorMiddleware(flask_app.wsgi_app)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]
    assert call(monitor, "/docs").status.startswith("308")  # type: ignore[union-attr]
    call(monitor, "/docs/")
    rows = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert {(row["endpoint"], tuple(row["status_codes"])) for row in rows} == {("/docs/", ("200", "308"))}


def test_method_not_allowed_counts_as_unmatched() -> None:
    app, monitor = create_app()
    assert call(monitor, "/test/normal", method="DELETE").status.startswith("405")  # type: ignore[union-attr]
    (row,) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert (row["endpoint"], row["method"]) == ("<unmatched>", "DELETE")


def test_an_exception_the_apps_own_errorhandler_answers_is_kept_with_its_type() -> None:
    """An IntegrityError turned into a 409 by the app: a client error, with its type, message and traceback."""
    flask_app = Flask("handled")

    class IntegrityError(Exception):
        pass

    @flask_app.errorhandler(IntegrityError)
    def conflict(exc: IntegrityError) -> tuple[str, int]:
        return "conflict", 409

    @flask_app.route("/orders", methods=["POST"])
    def create_order() -> str:
        raise IntegrityError("duplicate key value violates unique constraint orders_pkey")

    monitor = MonitorMiddleware(flask_app.wsgi_app)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]
    for _ in range(3):
        assert call(monitor, "/orders", method="POST").status == "409 CONFLICT"
    stats = get_json(monitor, "/monitoring/stats")
    assert (stats["errors"], stats["client_errors"]) == (0, 3)
    (error,) = get_json(monitor, "/monitoring/errors")["errors"]
    assert (error["type"], error["endpoint"], error["count"]) == ("IntegrityError", "/orders", 3)
    assert "unique constraint" in error["message"] and "raise IntegrityError" in error["traceback"]
    monitor.close()
    assert "handle_user_exception" not in flask_app.__dict__
