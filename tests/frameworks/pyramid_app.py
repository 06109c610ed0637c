"""A Pyramid app: ``gunicorn tests.frameworks.pyramid_app:application``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

with warnings.catch_warnings():
    # WebOb 1.8 imports the cgi module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from pyramid.config import Configurator
    from pyramid.httpexceptions import HTTPNotFound
    from pyramid.response import Response

from tests.frameworks.common import BOOM, chunks
from wsgimon import MonitorMiddleware


def text(body: str) -> Callable[[Any], Response]:
    def view(request: Any) -> Response:
        return Response(body, content_type="text/plain")

    return view


def item(request: Any) -> Response:
    item_id = int(request.matchdict["item_id"])
    if item_id == 0:
        raise HTTPNotFound("no such item")
    return Response(f"item {item_id}", content_type="text/plain")


def user(request: Any) -> Response:
    return Response(f"user {request.matchdict['name']}", content_type="text/plain")


def boom(request: Any) -> Response:
    raise ValueError(BOOM)


def crash(request: Any) -> Response:
    raise KeyError("no exception view for this one")


def stream(request: Any) -> Response:
    return Response(app_iter=chunks(), content_type="text/plain")


def failed(exc: Exception, request: Any) -> Response:
    return Response("something went wrong", status=500, content_type="text/plain")


def items(config: Configurator) -> None:
    config.add_route("item", r"/items/{item_id:\d+}")
    config.add_view(item, route_name="item")


def create_app(*, tween: bool = True) -> Any:
    with Configurator() as config:
        config.add_route("index", "/")
        config.add_view(text("index"), route_name="index")
        config.add_route("hello", "/hello")
        config.add_view(text("hello"), route_name="hello")
        config.include(items, route_prefix="/api")
        config.add_route("user", "/users/{name}")
        config.add_view(user, route_name="user")
        config.add_route("boom", "/boom")
        config.add_view(boom, route_name="boom")
        config.add_route("crash", "/crash")
        config.add_view(crash, route_name="crash")
        config.add_route("stream", "/stream")
        config.add_view(stream, route_name="stream")
        config.add_exception_view(failed, context=ValueError)
        if tween:
            config.include("wsgimon.wsgi.integrations.pyramid")
        return config.make_wsgi_app()


app = create_app()
application = MonitorMiddleware(app)
