"""What the route template alone does not name, against each framework's real behaviour.

- Bottle: a generator view that raises before its first chunk (Bottle answers 500 and passes no
  ``exc_info``) is recorded with its type and traceback, through Bottle's error handler for 500;
  a Bottle app mounted WSGI-style keeps its prefix.
- Falcon: sinks and static routes are named by their prefix, not one endpoint per path.
- Pyramid: requests that traversal (not a route) brings to a view are named by that view.

Apps in ``tests/frameworks/gap_apps.py``, served in-process through ``tests.helpers.call``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.frameworks import gap_apps
from tests.frameworks.gap_apps import CHILD_BOOM, GEN_BOOM, ITER_BOOM, TRAVERSAL_BOOM
from tests.frameworks.test_frameworks import framework
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware


@pytest.fixture
def monitors() -> Iterator[list[MonitorMiddleware]]:
    made: list[MonitorMiddleware] = []
    yield made
    for monitor in made:
        monitor.close()


def wrap(monitors: list[MonitorMiddleware], app: Any, **options: Any) -> MonitorMiddleware:
    monitor = MonitorMiddleware(app, storage="memory://", **options)
    monitors.append(monitor)
    return monitor


def names(monitor: MonitorMiddleware) -> dict[str, dict[str, int]]:
    rows = get_json(monitor, "/monitoring/endpoints?window=all")["endpoints"]
    return {row["endpoint"]: row["status_codes"] for row in rows}


def errors(monitor: MonitorMiddleware) -> dict[tuple[str, str], dict[str, Any]]:
    rows = get_json(monitor, "/monitoring/errors?window=all")["errors"]
    return {(row["type"], row["endpoint"]): row for row in rows}


# --- Bottle: generators failing before their first chunk -------------------------------------


def test_bottle_generator_failing_before_its_first_chunk_is_recorded_with_type_and_traceback(
    monitors: list[MonitorMiddleware],
) -> None:
    framework("bottle")
    monitor = wrap(monitors, gap_apps.create_bottle_app())
    for n in (1, 2):
        assert call(monitor, f"/gen/{n}").status == "500 Internal Server Error"
    assert call(monitor, "/iter").status == "500 Internal Server Error"
    assert names(monitor) == {"/gen/<n:int>": {"500": 2}, "/iter": {"500": 1}}

    found = errors(monitor)
    assert set(found) == {("RuntimeError", "/gen/<n:int>"), ("ValueError", "/iter")}
    gen = found["RuntimeError", "/gen/<n:int>"]
    assert gen["count"] == 2 and gen["message"] == GEN_BOOM
    assert "raise RuntimeError(GEN_BOOM)" in gen["traceback"]
    assert gen["traceback"].rstrip().endswith(f"RuntimeError: {GEN_BOOM}")
    returned = found["ValueError", "/iter"]
    assert "raise ValueError(ITER_BOOM)" in returned["traceback"] and returned["message"] == ITER_BOOM

    # One issue per cause, blamed on the app's own frame.
    issues = {row["type"]: row for row in get_json(monitor, "/monitoring/issues")["issues"]}
    assert set(issues) == {"RuntimeError", "ValueError"}
    assert issues["RuntimeError"]["count"] == 2
    assert issues["RuntimeError"]["culprit"] == "tests.frameworks.gap_apps in gen"
    assert [e["endpoint"] for e in issues["RuntimeError"]["endpoints"]] == ["/gen/<n:int>"]


def test_bottle_other_500s_are_recorded_once_and_as_before(monitors: list[MonitorMiddleware]) -> None:
    framework("bottle")
    monitor = wrap(monitors, gap_apps.create_bottle_app())
    call(monitor, "/view")  # reaches start_response as exc_info, not through the handler again
    call(monitor, "/abort")  # a 500 with no exception behind it: a response
    late = call(monitor, "/late")  # after the first chunk: the server sees it raised
    assert isinstance(late.error, ValueError) and late.body == b"first"
    call(monitor, "/ok")
    assert {key: row["count"] for key, row in errors(monitor).items()} == {
        ("LookupError", "/view"): 1,
        ("500 Internal Server Error", "/abort"): 1,
        ("ValueError", "/late"): 1,
    }
    assert names(monitor)["/ok"] == {"200": 1}


def test_bottle_answers_exactly_as_without_wsgimon(monitors: list[MonitorMiddleware]) -> None:
    """Transparent: Bottle's own error page, or the app's own 500 handler, answers as it did."""
    framework("bottle")
    for own in (False, True):
        bare = gap_apps.create_bottle_app(own_500_handler=own)
        wrapped = gap_apps.create_bottle_app(own_500_handler=own)
        monitor = wrap(monitors, wrapped)
        for path in ("/gen/1", "/iter", "/view", "/abort", "/ok"):
            expected, got = call(bare, path), call(monitor, path)
            assert (got.status, got.headers, got.body) == (expected.status, expected.headers, expected.body), path
        if own:
            assert call(monitor, "/gen/3").body == b"ours: RuntimeError"


def test_bottle_error_handler_is_shared_by_monitors_and_put_back_by_the_last(monitors: list[MonitorMiddleware]) -> None:
    framework("bottle")
    from wsgimon.wsgi.integrations.bottle import ErrorHandler

    plain, own = gap_apps.create_bottle_app(), gap_apps.create_bottle_app(own_500_handler=True)
    theirs = own.error_handler[500]
    for app, before in ((plain, None), (own, theirs)):
        first, second = MonitorMiddleware(app, storage="memory://"), MonitorMiddleware(app, storage="memory://")
        handler = app.error_handler[500]
        assert isinstance(handler, ErrorHandler) and handler.previous is before
        first.close()
        assert app.error_handler[500] is handler
        call(second, "/gen/1")
        assert ("RuntimeError", "/gen/<n:int>") in errors(second)
        second.close()
        second.close()
        assert app.error_handler.get(500) is before


def test_bottle_500_handler_added_after_wrapping_may_hand_over(monitors: list[MonitorMiddleware]) -> None:
    framework("bottle")
    from wsgimon.wsgi.integrations.bottle import hand_over

    app = gap_apps.create_bottle_app()
    monitor = wrap(monitors, app)

    @app.error(500)
    def failed(error: Any) -> str:
        hand_over(error)
        return "later"

    assert call(monitor, "/gen/1").body == b"later"
    call(monitor, "/view")
    # Handed over once each: the view's exception also reached start_response as exc_info.
    assert {key: row["count"] for key, row in errors(monitor).items()} == {
        ("RuntimeError", "/gen/<n:int>"): 1,
        ("LookupError", "/view"): 1,
    }


# --- Bottle: mounts ----------------------------------------------------------------------------


def test_bottle_mounts_keep_their_prefix(monitors: list[MonitorMiddleware]) -> None:
    framework("bottle")
    monitor = wrap(monitors, gap_apps.create_bottle_mounting_app())
    plan = [
        ("/api/items/1", "200 OK"),
        ("/api/items/2", "200 OK"),
        ("/api/items/0", "404 Not Found"),  # the child's route's own 404
        ("/api/", "200 OK"),
        ("/api", "200 OK"),
        ("/api/inner/items/5", "200 OK"),  # a WSGI-style mount inside one
        ("/api/boom", "500 Internal Server Error"),
        ("/api/no/such/page", "404 Not Found"),  # no route of the child
        ("/shop/items/3", "200 OK"),  # mounted Bottle's way
        ("/raw/a/b", "200 OK"),
        ("/raw/c", "200 OK"),
        ("/", "200 OK"),
    ]
    for path, status in plan:
        assert call(monitor, path).status == status, path
    assert call(monitor, "/raw/x/y").body == b"plain /raw /x/y"  # the mounted app saw what Bottle hands it
    assert names(monitor) == {
        "/api/items/<item_id:int>": {"200": 2, "404": 1},
        "/api/": {"200": 2},
        "/api/inner/items/<item_id:int>": {"200": 1},
        "/api/boom": {"500": 1},
        "<unmatched>": {"404": 1},
        "/shop/items/<item_id:int>": {"200": 1},
        "/raw/<:re:.*>": {"200": 3},
        "/": {"200": 1},
    }
    boom = errors(monitor)["ValueError", "/api/boom"]
    assert boom["message"] == CHILD_BOOM and "raise ValueError(CHILD_BOOM)" in boom["traceback"]


# --- Falcon: sinks and static routes -------------------------------------------------------------


def test_falcon_sinks_and_static_routes_are_named_by_their_prefix(
    monitors: list[MonitorMiddleware], tmp_path: Path
) -> None:
    framework("falcon")
    for n in range(5):
        (tmp_path / f"file-{n}.txt").write_text(f"file {n}")
    monitor = wrap(monitors, gap_apps.create_falcon_app(tmp_path))
    for n in range(5):
        result = call(monitor, f"/static/file-{n}.txt")
        assert (result.status, result.body) == ("200 OK", f"file {n}".encode())
    assert call(monitor, "/static/missing.txt").status == "404 Not Found"  # the static route's own 404
    for path in ("/proxy/a", "/proxy/b/c", "/proxy", "/projects/alpha/files/1", "/projects/beta/files/x/y"):
        assert call(monitor, path).status == "200 OK", path
    assert call(monitor, "/items/7").status == "200 OK"
    assert call(monitor, "/items/8", HTTP_X_DENY="1").status == "401 Unauthorized"  # answered before routing
    assert call(monitor, "/nothing/here").status == "404 Not Found"
    assert names(monitor) == {
        "/static/*": {"200": 5, "404": 1},
        "/proxy*": {"200": 3},
        "/projects/(?P<project>[a-z0-9-]+)/files*": {"200": 2},
        "/items/{item_id:int}": {"200": 1, "401": 1},
        "<unmatched>": {"404": 1},
    }


def test_falcon_sinks_added_later_and_the_catch_all_sink(monitors: list[MonitorMiddleware], tmp_path: Path) -> None:
    framework("falcon")
    app = gap_apps.create_falcon_app(tmp_path)
    monitor = wrap(monitors, app)
    assert call(monitor, "/elsewhere/1").status == "404 Not Found"
    names(monitor)  # one fold: the matcher has seen the app as it was
    app.add_sink(lambda req, resp: setattr(resp, "text", "caught"))  # prefix "/": everything
    assert call(monitor, "/elsewhere/2").body == b"caught"
    assert call(monitor, "/elsewhere/3").body == b"caught"
    assert names(monitor) == {"<unmatched>": {"404": 1}, "/*": {"200": 2}}


# --- Pyramid: traversal ------------------------------------------------------------------------


def test_pyramid_traversal_requests_are_named_by_their_view(monitors: list[MonitorMiddleware]) -> None:
    framework("pyramid")
    monitor = wrap(monitors, gap_apps.create_pyramid_app())
    plan = [
        ("/", "200 OK"),
        ("/users", "200 OK"),
        *((f"/users/{n}", "200 OK") for n in range(1, 6)),  # ids in the path: one endpoint
        ("/users/0", "404 Not Found"),  # the view's own 404
        ("/users/1/edit", "200 OK"),
        ("/users/2/edit", "200 OK"),
        ("/users/3/boom", "500 Internal Server Error"),
        ("/users/3/info", "200 OK"),  # a view registered for any context
        ("/info", "200 OK"),
        ("/users/1/no-such-view", "404 Not Found"),  # traversal found no view: nothing to name it by
        ("/not/there", "404 Not Found"),
        ("/r/5", "200 OK"),  # a route
    ]
    for path, status in plan:
        assert call(monitor, path).status == status, path
    assert names(monitor) == {
        "<traversal:Root>": {"200": 1},
        "<traversal:Users>": {"200": 1},
        "<traversal:User>": {"200": 5, "404": 1},
        "<traversal:User/edit>": {"200": 2},
        "<traversal:User/boom>": {"500": 1},
        "<traversal:User/info>": {"200": 1},
        "<traversal:Root/info>": {"200": 1},
        "<unmatched>": {"404": 2},
        "/r/{x}": {"200": 1},
    }
    boom = errors(monitor)["ValueError", "<traversal:User/boom>"]
    assert boom["message"] == TRAVERSAL_BOOM and "raise ValueError(TRAVERSAL_BOOM)" in boom["traceback"]


def test_pyramid_traversal_without_the_include_line_is_unmatched(monitors: list[MonitorMiddleware]) -> None:
    framework("pyramid")
    monitor = wrap(monitors, gap_apps.create_pyramid_app(tween=False))
    for path in ("/users/1", "/users/2/edit", "/r/1"):
        assert call(monitor, path).status == "200 OK"
    assert names(monitor) == {"<unmatched>": {"200": 2}, "/r/{x}": {"200": 1}}


def test_pyramid_traversal_only_app(monitors: list[MonitorMiddleware]) -> None:
    framework("pyramid")
    with_include = wrap(monitors, gap_apps.create_pyramid_app(routes=False))
    without = wrap(monitors, gap_apps.create_pyramid_app(tween=False, routes=False))
    for monitor in (with_include, without):
        for path in ("/users/1", "/users/2", "/users/2/edit"):
            assert call(monitor, path).status == "200 OK"
        assert call(monitor, "/users/x").status == "404 Not Found"
    assert names(with_include) == {
        "<traversal:User>": {"200": 2},
        "<traversal:User/edit>": {"200": 1},
        "<unmatched>": {"404": 1},
    }
    assert names(without) == {"/users/<int>": {"200": 2}, "/users/<int>/edit": {"200": 1}, "<unmatched>": {"404": 1}}


def test_pyramid_deriver_leaves_route_and_exception_views_as_they_are() -> None:
    """Only the views traversal can reach are wrapped: a routed request costs what it did."""
    framework("pyramid")
    from wsgimon.wsgi.integrations.pyramid import view_deriver

    def view(context: Any, request: Any) -> None:
        return None

    def info(exception_only: bool = False, **options: Any) -> Any:
        return SimpleNamespace(exception_only=exception_only, options={"context": None, "name": "", **options})

    assert view_deriver(view, info(route_name="routed")) is view
    assert view_deriver(view, info(route_name="routed", context=gap_apps.User)) is view
    assert view_deriver(view, info(exception_only=True)) is view
    assert view_deriver(view, info(context=ValueError)) is view
    assert view_deriver(view, info(context=gap_apps.User, name="edit")) is not view
