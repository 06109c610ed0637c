"""PEP 3333 behaviour of the middleware around a matrix of tiny apps, validated on both sides."""

from __future__ import annotations

import gc
import io
from typing import Any

import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json, validated
from wsgimon import MonitorMiddleware


def last_request(monitor: MonitorMiddleware) -> dict[str, Any]:
    rows = get_json(monitor, "/monitoring/requests?limit=1")["requests"]
    assert rows, "no request was recorded"
    return rows[0]  # type: ignore[no-any-return]


def test_list_body_is_returned_unchanged_and_recorded() -> None:
    app, monitor = validated(wsgi_apps.list_app)
    result = call(app, "/hello")
    assert (result.status, result.body) == ("200 OK", b"hello")
    row = last_request(monitor)
    assert row["status"] == 200 and row["response_bytes"] == 5 and row["path"] == "/hello"
    assert row["ttfb_ms"] is not None and row["ttfb_ms"] <= row["duration_ms"]


def test_generator_that_starts_the_response_late() -> None:
    app, monitor = validated(wsgi_apps.late_start_app)
    result = call(app, "/late")
    assert (result.status, result.body) == ("201 Created", b"first second")
    row = last_request(monitor)
    assert row["status"] == 201 and row["response_bytes"] == len(b"first second")


def test_exception_before_start_response_is_recorded_and_reraised_unchanged() -> None:
    app, monitor = validated(wsgi_apps.raising_app)
    result = call(app, "/raise")
    assert isinstance(result.error, ValueError) and str(result.error) == "raised before start_response"
    row = last_request(monitor)
    assert row["status"] == 500 and row["error_type"] == "ValueError"
    errors = get_json(monitor, "/monitoring/errors")["errors"]
    assert errors[0]["message"] == "raised before start_response"
    assert "raising_app" in errors[0]["traceback"]


def test_exception_while_streaming_is_recorded() -> None:
    app, monitor = validated(wsgi_apps.raising_body_app)
    result = call(app, "/stream")
    assert isinstance(result.error, RuntimeError)
    row = last_request(monitor)
    # Bytes were already sent: the status stays, but the request counts as an error.
    assert row["status"] == 200 and row["error_type"] == "RuntimeError"
    assert get_json(monitor, "/monitoring/stats")["errors"] == 1


def test_exc_info_is_passed_through() -> None:
    app, monitor = validated(wsgi_apps.exc_info_app)
    result = call(app, "/exc")
    assert (result.status, result.body) == ("500 Internal Server Error", b"handled")
    assert last_request(monitor)["status"] == 500
    # The exception the app reported through exc_info is recorded with what it was.
    (error,) = get_json(monitor, "/monitoring/errors")["errors"]
    assert (error["type"], error["message"]) == ("KeyError", "'lookup failed'")
    assert 'raise KeyError("lookup failed")' in error["traceback"]


def test_environ_contract_names_the_endpoint_and_hands_over_the_exception() -> None:
    def app(environ: dict, start_response: Any) -> list[bytes]:  # type: ignore[type-arg]
        environ["wsgimon.endpoint"] = "/orders/{order_id}"
        try:
            raise LookupError("no such order")
        except LookupError as exc:
            environ["wsgimon.exception"] = exc
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"failed"]

    _, monitor = validated(app)
    for n in range(3):
        call(monitor, f"/orders/{n}")
    (row,) = get_json(monitor, "/monitoring/endpoints")["endpoints"]
    assert (row["endpoint"], row["requests"], row["errors"]) == ("/orders/{order_id}", 3, 3)
    (error,) = get_json(monitor, "/monitoring/errors")["errors"]
    assert (error["type"], error["endpoint"], error["count"]) == ("LookupError", "/orders/{order_id}", 3)


def test_close_is_called_exactly_once() -> None:
    inner, bodies = wsgi_apps.make_close_counting_app()
    app, monitor = validated(inner)
    for _ in range(3):
        assert call(app, "/c").body == b"abc"
    assert [body.closed for body in bodies] == [1, 1, 1]
    assert get_json(monitor, "/monitoring/stats")["requests"] == 3


def test_close_is_forwarded_when_the_client_goes_away_mid_body() -> None:
    inner, bodies = wsgi_apps.make_close_counting_app()
    monitor = MonitorMiddleware(inner)
    body = monitor(call_environ(), lambda status, headers, exc_info=None: None)
    iterator = iter(body)
    next(iterator)
    body.close()  # type: ignore[attr-defined]
    assert bodies[0].closed == 1
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1


def test_a_body_closed_without_being_iterated_is_closed_and_recorded() -> None:
    inner, bodies = wsgi_apps.make_close_counting_app()
    monitor = MonitorMiddleware(inner)
    body = monitor(call_environ(), lambda status, headers, exc_info=None: None)
    body.close()  # type: ignore[attr-defined]
    assert bodies[0].closed == 1
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1


def test_a_body_the_server_drops_without_close_is_still_closed_and_recorded() -> None:
    inner, bodies = wsgi_apps.make_close_counting_app()
    monitor = MonitorMiddleware(inner)
    body = monitor(call_environ(), lambda status, headers, exc_info=None: None)
    del body  # a server that breaks PEP 3333: garbage collection closes the body
    gc.collect()
    assert bodies[0].closed == 1
    assert get_json(monitor, "/monitoring/stats")["requests"] == 1


def test_write_callable_still_works() -> None:
    app, _ = validated(wsgi_apps.write_app)
    assert call(app, "/w").body == b"written returned"


def test_body_is_not_consumed_before_the_server_iterates() -> None:
    produced: list[int] = []

    def streaming(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(3):
            produced.append(i)
            yield b"x"

    monitor = MonitorMiddleware(streaming)
    body = monitor(call_environ(), lambda status, headers, exc_info=None: None)
    assert produced == []
    iterator = iter(body)
    next(iterator)
    assert produced == [0]
    body.close()  # type: ignore[attr-defined]


def test_file_wrapper_responses_stay_recognisable_and_are_timed() -> None:
    class ServerFileWrapper:
        def __init__(self, filelike: Any, block_size: int = 8192) -> None:
            self.filelike = filelike
            self.closed = 0

        def __iter__(self) -> Any:
            return iter(lambda: self.filelike.read(4), b"")

        def close(self) -> None:
            self.closed += 1

    def file_app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file body!!"))

    monitor = MonitorMiddleware(file_app)
    environ = call_environ(**{"wsgi.file_wrapper": ServerFileWrapper})
    body = monitor(environ, lambda status, headers, exc_info=None: None)
    assert isinstance(body, ServerFileWrapper), "the server's own wrapper must come back (sendfile)"
    assert b"".join(body) == b"file body!!"
    body.close()
    assert body.closed == 1
    row = last_request(monitor)
    assert row["status"] == 200 and row["response_bytes"] == 11


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_process_exits_are_not_application_errors(exc_type: type[BaseException]) -> None:
    def exiting(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        raise exc_type(0)

    monitor = MonitorMiddleware(exiting)
    with pytest.raises(exc_type):
        monitor(call_environ(), lambda status, headers, exc_info=None: None)
    assert get_json(monitor, "/monitoring/stats")["error_types"] == {}


def call_environ(**extra: Any) -> dict[str, Any]:
    from tests.helpers import make_environ

    return make_environ("/x", **extra)
