"""A Falcon app: ``gunicorn tests.frameworks.falcon_app:application``."""

from __future__ import annotations

from typing import Any

import falcon

from tests.frameworks.common import BOOM, chunks
from wsgimon import MonitorMiddleware


class Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = self.text
        resp.content_type = falcon.MEDIA_TEXT


class Item:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: int) -> None:
        if item_id == 0:
            raise falcon.HTTPNotFound(description="no such item")
        resp.text = f"item {item_id}"


class User:
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.text = f"user {name}"


class Boom:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise ValueError(BOOM)


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = chunks()


def create_app(**options: Any) -> falcon.App:
    app = falcon.App(**options)
    app.add_route("/", Text("index"))
    app.add_route("/hello", Text("hello"))
    app.add_route("/api/items/{item_id:int}", Item())
    app.add_route("/users/{name}", User())
    app.add_route("/boom", Boom())
    app.add_route("/stream", Stream())
    return app


app = create_app()
application = MonitorMiddleware(app)
