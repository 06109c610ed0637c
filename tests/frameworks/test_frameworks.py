"""Django, Bottle, Falcon and Pyramid, each behind the one line, under a real gunicorn with two workers.

Each app serves the same routes (see ``common.py``); the monitoring API must
name every request by its route template, file a route's own 404 under that
route, keep the exception each framework turned into a 500 with its message and
traceback, and time a streamed body to its end. A few in-process tests then pin
down what each integration does at its edges.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.frameworks.common import BOOM, STREAM_PAUSE
from tests.helpers import call, get_json
from tests.servers import gunicorn_server, wait_until
from wsgimon import MonitorMiddleware


@dataclass(frozen=True)
class Framework:
    module: str
    minversion: str
    item: str
    user: str

    @property
    def spec(self) -> str:
        return f"tests.frameworks.{self.module}_app:application"


FRAMEWORKS = {
    "django": Framework("django", "5.0", item="/api/items/<int:item_id>", user="/users/<slug:name>"),
    "bottle": Framework("bottle", "0.13", item="/api/items/<item_id:int>", user="/users/<name>"),
    "falcon": Framework("falcon", "4.0", item="/api/items/{item_id:int}", user="/users/{name}"),
    "pyramid": Framework("pyramid", "2.0", item=r"/api/items/{item_id:\d+}", user="/users/{name}"),
}

# (path, times, status); the names below are the same in every framework but for items and users.
PLAN = [
    ("/", 1, 200),
    ("/hello", 3, 200),
    ("/api/items/1", 1, 200),
    ("/api/items/2", 1, 200),
    ("/api/items/3", 1, 200),
    ("/api/items/0", 2, 404),
    ("/users/alice", 1, 200),
    ("/users/bob", 1, 200),
    ("/users/carol-jones", 1, 200),
    ("/boom", 2, 500),
    ("/stream", 1, 200),
    ("/no/such/page/1", 1, 404),
    ("/no/such/page/2", 1, 404),
]


def expected_endpoints(fw: Framework) -> dict[str, dict[str, int]]:
    return {
        "/": {"200": 1},
        "/hello": {"200": 3},
        fw.item: {"200": 3, "404": 2},
        fw.user: {"200": 3},
        "/boom": {"500": 2},
        "/stream": {"200": 1},
        "<unmatched>": {"404": 2},
    }


def framework(name: str) -> Framework:
    """The framework's case, or a skip when it is not installed in a version the integration supports."""
    fw = FRAMEWORKS[name]
    pytest.importorskip(fw.module)
    installed = tuple(int(part) for part in version(fw.module).split(".")[:2] if part.isdigit())
    if installed < tuple(int(part) for part in fw.minversion.split(".")):
        pytest.skip(f"{fw.module} {version(fw.module)} is older than {fw.minversion}")
    return fw


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def send_plan(url: str) -> None:
    jobs = [(path, status) for path, times, status in PLAN for _ in range(times)]
    random.shuffle(jobs)

    def send(job: tuple[str, int]) -> None:
        path, status = job
        # A fresh connection each time spreads the requests over both workers.
        assert httpx.get(url + path, timeout=10).status_code == status, path

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, jobs))


def endpoint_view(url: str) -> dict[str, dict[str, int]]:
    rows = httpx.get(url + "/monitoring/endpoints?window=all", timeout=10).json()["endpoints"]
    assert {row["method"] for row in rows} <= {"GET"}
    return {row["endpoint"]: row["status_codes"] for row in rows}


def every_view_is(url: str, expected: dict[str, dict[str, int]], attempts: int = 6) -> bool:
    """Whichever worker answers (a fresh connection each time), it sees exactly ``expected``."""
    return all(endpoint_view(url) == expected for _ in range(attempts))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_routes_errors_and_streams_under_gunicorn(name: str, tmp_path: Path) -> None:
    fw = framework(name)
    env = {"WSGIMON_STORAGE": f"sqlite:///{tmp_path}/s.sqlite3", "WSGIMON_FLUSH_INTERVAL": "0.5"}
    with gunicorn_server(fw.spec, "-w", "2", env=env) as (url, _process):
        send_plan(url)
        expected = expected_endpoints(fw)
        # One endpoint per route, named by its template, with exact counts from both workers.
        wait_until(lambda: every_view_is(url, expected), 20)

        errors = httpx.get(url + "/monitoring/errors?window=all", timeout=10).json()["errors"]
        assert sorted((e["type"], e["endpoint"], e["count"]) for e in errors) == sorted(
            [("ValueError", "/boom", 2), ("404 Not Found", fw.item, 2), ("404 Not Found", "<unmatched>", 2)]
        )
        (boom,) = (e for e in errors if e["type"] == "ValueError")
        assert boom["message"] == BOOM
        assert "raise ValueError(BOOM)" in boom["traceback"]
        assert boom["traceback"].rstrip().endswith(f"ValueError: {BOOM}")

        (streamed,) = httpx.get(url + "/monitoring/requests?endpoint=/stream", timeout=10).json()["requests"]
        assert streamed["response_bytes"] == len(b"chunk-0\n") * 3
        # Timed to the body's end: both pauses come after the first chunk.
        assert streamed["duration_ms"] >= 2 * STREAM_PAUSE * 1000
        assert streamed["duration_ms"] - streamed["ttfb_ms"] >= 2 * STREAM_PAUSE * 1000 - 1


@pytest.fixture
def monitors() -> Iterator[list[MonitorMiddleware]]:
    made: list[MonitorMiddleware] = []
    yield made
    for monitor in made:
        monitor.close()


def wrap(monitors: list[MonitorMiddleware], app: Any, **options: Any) -> MonitorMiddleware:
    monitor = MonitorMiddleware(app, **options)
    monitors.append(monitor)
    return monitor


def wsgi_path(path: str) -> str:
    """PATH_INFO as a server hands it over: the URL's bytes as latin-1."""
    return path.encode().decode("latin-1")


def names(monitor: MonitorMiddleware) -> dict[tuple[str, str], dict[str, int]]:
    rows = get_json(monitor, "/monitoring/endpoints?window=all")["endpoints"]
    return {(row["endpoint"], row["method"]): row["status_codes"] for row in rows}


def error_types(monitor: MonitorMiddleware) -> dict[tuple[str, str], int]:
    rows = get_json(monitor, "/monitoring/errors?window=all")["errors"]
    return {(row["type"], row["endpoint"]): row["count"] for row in rows}


def test_django_names_by_path_info_and_follows_append_slash(monitors: list[MonitorMiddleware]) -> None:
    framework("django")
    from tests.frameworks import django_app

    monitor = wrap(monitors, django_app.handler)
    assert monitor.integration is not None and monitor.integration.name == "django"
    # Mounted under a prefix: the server strips SCRIPT_NAME, Django resolves PATH_INFO, and so does the matcher.
    assert call(monitor, "/hello", SCRIPT_NAME="/mounted").status == "200 OK"
    assert call(monitor, "/docs").status == "301 Moved Permanently"  # CommonMiddleware's APPEND_SLASH
    assert call(monitor, wsgi_path("/users/café")).status == "404 Not Found"  # not a slug
    assert names(monitor) == {
        ("/hello", "GET"): {"200": 1},
        ("/docs/", "GET"): {"301": 1},
        ("<unmatched>", "GET"): {"404": 1},
    }


def test_django_receiver_stays_while_any_monitor_is_open(monitors: list[MonitorMiddleware]) -> None:
    framework("django")
    from django.core.signals import got_request_exception

    from tests.frameworks import django_app

    first, second = wrap(monitors, django_app.handler), wrap(monitors, django_app.handler)
    first.close()
    call(second, "/boom")
    assert error_types(second) == {("ValueError", "/boom"): 1}
    second.close()
    django_app.application.close()
    assert not got_request_exception.has_listeners()


def test_bottle_method_not_allowed_is_unmatched_and_endpoint_callable_wins(monitors: list[MonitorMiddleware]) -> None:
    framework("bottle")
    from tests.frameworks import bottle_app

    def endpoint(environ: dict[str, Any]) -> str | None:
        return "/custom" if environ["PATH_INFO"] == "/" else None

    monitor = wrap(monitors, bottle_app.app, endpoint=endpoint)
    assert call(monitor, "/hello", method="POST").status == "405 Method Not Allowed"
    call(monitor, "/")
    call(monitor, wsgi_path("/users/zoë"))
    assert names(monitor) == {
        ("<unmatched>", "POST"): {"405": 1},
        ("/custom", "GET"): {"200": 1},
        ("/users/<name>", "GET"): {"200": 1},
    }


def test_falcon_keeps_the_apps_own_exception_handler(monitors: list[MonitorMiddleware]) -> None:
    framework("falcon")
    import falcon

    from tests.frameworks import falcon_app
    from wsgimon.wsgi.integrations.falcon import hand_over

    app = falcon_app.create_app()

    def handle(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
        if isinstance(ex, ValueError):
            hand_over(req, ex)
        resp.status = falcon.HTTP_503
        resp.text = "ours"

    app.add_error_handler(Exception, handle)
    monitor = wrap(monitors, app)
    result = call(monitor, "/boom")
    assert (result.status, result.body) == ("503 Service Unavailable", b"ours")
    assert error_types(monitor) == {("ValueError", "/boom"): 1}


def test_falcon_wrapping_the_same_app_again_reuses_its_hooks(monitors: list[MonitorMiddleware]) -> None:
    framework("falcon")
    from falcon.inspect import inspect_middleware

    from tests.frameworks import falcon_app

    app = falcon_app.create_app()
    first = wrap(monitors, app)
    first.close()
    second = wrap(monitors, app)
    assert [m.name for m in inspect_middleware(app).middleware_classes] == ["MonitorHooks"]
    call(second, "/boom")
    call(second, "/api/items/7")
    assert error_types(second) == {("ValueError", "/boom"): 1}
    assert ("/api/items/{item_id:int}", "GET") in names(second)


def test_falcon_hooks_added_by_hand() -> None:
    framework("falcon")
    import falcon

    from wsgimon.wsgi.integrations.falcon import MonitorHooks

    hooks = MonitorHooks()
    inner = falcon.App(middleware=[hooks])
    inner.add_error_handler(Exception, hooks.handle_exception)
    inner.add_route("/boom/{n:int}", _Boom())

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        return inner(environ, start_response)

    monitor = MonitorMiddleware(outer)
    try:
        assert monitor.integration is None
        assert call(monitor, "/boom/3").status == "500 Internal Server Error"
        assert error_types(monitor) == {("ValueError", "/boom/{n:int}"): 1}
    finally:
        monitor.close()


class _Boom:
    def on_get(self, req: Any, resp: Any, n: int) -> None:
        raise ValueError(f"boom {n}")


def test_pyramid_without_the_tween_names_routes_off_thread(monitors: list[MonitorMiddleware]) -> None:
    framework("pyramid")
    from tests.frameworks import pyramid_app

    monitor = wrap(monitors, pyramid_app.create_app(tween=False))
    call(monitor, "/api/items/4")
    call(monitor, "/users/dee")
    call(monitor, "/boom")
    assert isinstance(call(monitor, "/crash").error, KeyError)
    assert names(monitor) == {
        (r"/api/items/{item_id:\d+}", "GET"): {"200": 1},
        ("/users/{name}", "GET"): {"200": 1},
        ("/boom", "GET"): {"500": 1},
        ("/crash", "GET"): {"500": 1},
    }
    # The exception view's ValueError is only seen through the tween; the unhandled KeyError always.
    assert error_types(monitor) == {("500 Internal Server Error", "/boom"): 1, ("KeyError", "/crash"): 1}


def test_pyramid_tween_hands_over_only_exceptions_behind_a_5xx(monitors: list[MonitorMiddleware]) -> None:
    framework("pyramid")
    from tests.frameworks import pyramid_app

    monitor = wrap(monitors, pyramid_app.create_app())
    call(monitor, "/boom")
    call(monitor, "/api/items/0")
    assert isinstance(call(monitor, "/crash").error, KeyError)
    assert error_types(monitor) == {
        ("ValueError", "/boom"): 1,
        ("404 Not Found", r"/api/items/{item_id:\d+}"): 1,
        ("KeyError", "/crash"): 1,
    }
