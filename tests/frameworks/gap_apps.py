"""Framework apps for what the route template alone does not name: Bottle generators that fail before
their first chunk and WSGI-style mounts, Falcon sinks and static routes, Pyramid traversal.

Each ``create_*`` function makes a fresh app (the tests wrap and close them one by one).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GEN_BOOM = "generator boom: failed before its first chunk"
ITER_BOOM = "iterator boom: the returned iterator failed at once"
CHILD_BOOM = "child boom: the mounted app failed"
TRAVERSAL_BOOM = "traversal boom: the view failed"


# --- Bottle ---------------------------------------------------------------------------------


def _failing_chunks() -> Iterator[bytes]:
    raise ValueError(ITER_BOOM)
    yield b"never"  # pragma: no cover


def create_bottle_app(*, own_500_handler: bool = False) -> Any:
    import bottle

    app = bottle.Bottle()

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/gen/<n:int>")
    def gen(n: int) -> Iterator[bytes]:
        if n >= 0:
            raise RuntimeError(GEN_BOOM)
        yield b"chunk"  # pragma: no cover

    @app.get("/iter")
    def returns_iterator() -> Iterator[bytes]:
        return _failing_chunks()

    @app.get("/late")
    def late() -> Iterator[bytes]:
        yield b"first"
        raise ValueError("after the first chunk")

    @app.get("/view")
    def view() -> str:
        raise LookupError("a plain view's exception")

    @app.get("/abort")
    def aborts() -> str:
        bottle.abort(500, "no exception behind this one")
        return "never"  # pragma: no cover

    if own_500_handler:

        @app.error(500)
        def failed(error: Any) -> str:
            return f"ours: {type(error.exception).__name__}"

    return app


def create_bottle_child() -> Any:
    import bottle

    child = bottle.Bottle()

    @child.get("/")
    def home() -> str:
        return "child home"

    @child.get("/items/<item_id:int>")
    def item(item_id: int) -> str:
        if item_id == 0:
            bottle.abort(404, "no such item")
        return f"item {item_id}"

    @child.get("/boom")
    def boom() -> str:
        raise ValueError(CHILD_BOOM)

    return child


def plain_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"plain {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]


def create_bottle_mounting_app() -> Any:
    """Mounts the three ways Bottle has: a Bottle app Bottle's way (``/shop/``), a Bottle app
    WSGI-style (no trailing slash: ``/api``, and one nested in it), a plain WSGI callable."""
    import bottle

    app = bottle.Bottle()

    @app.get("/")
    def index() -> str:
        return "index"

    with warnings.catch_warnings():
        # A prefix without its trailing slash: Bottle mounts the child WSGI-style, and says so.
        warnings.simplefilter("ignore", DeprecationWarning)
        inner = create_bottle_child()
        middle = create_bottle_child()
        middle.mount("/inner", inner)
        app.mount("/api", middle)
    app.mount("/shop/", create_bottle_child())
    app.mount("/raw/", plain_wsgi)
    return app


# --- Falcon ---------------------------------------------------------------------------------


class _Item:
    def on_get(self, req: Any, resp: Any, item_id: int) -> None:
        resp.text = f"item {item_id}"


def _proxy(req: Any, resp: Any, **params: Any) -> None:
    resp.text = f"proxied {req.path}"


def _project_files(req: Any, resp: Any, project: str) -> None:
    resp.text = f"files of {project}"


class _Gate:
    """A ``process_request`` middleware that answers 401 before routing when told to."""

    def process_request(self, req: Any, resp: Any) -> None:
        import falcon

        if req.get_header("X-Deny"):
            resp.status = falcon.HTTP_401
            resp.text = "denied"
            resp.complete = True


def create_falcon_app(static_dir: Path) -> Any:
    import falcon

    app = falcon.App(middleware=[_Gate()])
    app.add_route("/items/{item_id:int}", _Item())
    app.add_sink(_proxy, "/proxy")
    app.add_sink(_project_files, r"/projects/(?P<project>[a-z0-9-]+)/files")
    app.add_static_route("/static", str(static_dir))
    return app


# --- Pyramid --------------------------------------------------------------------------------


class Root:
    def __init__(self, request: Any) -> None:
        self.request = request

    def __getitem__(self, key: str) -> Any:
        if key == "users":
            return Users()
        raise KeyError(key)


class Users:
    def __getitem__(self, key: str) -> Any:
        if key.isdigit():
            return User(key)
        raise KeyError(key)


class User:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


def create_pyramid_app(*, tween: bool = True, routes: bool = True) -> Any:
    """Routes and traversal in one app: ``/r/{x}`` is a route, the rest is found by traversal
    (``routes=False``: traversal only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
        from pyramid.config import Configurator
        from pyramid.httpexceptions import HTTPNotFound
        from pyramid.response import Response

    def text(body: str) -> Any:
        def view(context: Any, request: Any) -> Response:
            return Response(body, content_type="text/plain")

        return view

    def user(context: User, request: Any) -> Response:
        if context.user_id == "0":
            raise HTTPNotFound("no such user")
        return Response(f"user {context.user_id}", content_type="text/plain")

    def boom(context: User, request: Any) -> Response:
        raise ValueError(TRAVERSAL_BOOM)

    def failed(exc: Exception, request: Any) -> Response:
        return Response("something went wrong", status=500, content_type="text/plain")

    def routed(request: Any) -> Response:
        return Response(f"routed {request.matchdict['x']}", content_type="text/plain")

    with Configurator(root_factory=Root) as config:
        if tween:
            config.include("wsgimon.wsgi.integrations.pyramid")
        if routes:
            config.add_route("routed", "/r/{x}")
            config.add_view(routed, route_name="routed")
        config.add_view(text("root"), context=Root)
        config.add_view(text("users"), context=Users)
        config.add_view(user, context=User)
        config.add_view(text("edit"), context=User, name="edit")
        config.add_view(boom, context=User, name="boom")
        config.add_view(text("info"), name="info")  # for any context
        config.add_exception_view(failed, context=ValueError)
        return config.make_wsgi_app()
