"""A Bottle app: ``gunicorn tests.frameworks.bottle_app:application``."""

from __future__ import annotations

from collections.abc import Iterator

import bottle

from tests.frameworks.common import BOOM, chunks
from wsgimon import MonitorMiddleware

app = bottle.Bottle()
api = bottle.Bottle()


@app.get("/")
def index() -> str:
    return "index"


@app.get("/hello")
def hello() -> str:
    return "hello"


@api.get("/items/<item_id:int>")
def item(item_id: int) -> str:
    if item_id == 0:
        bottle.abort(404, "no such item")
    return f"item {item_id}"


@app.get("/users/<name>")
def user(name: str) -> str:
    return f"user {name}"


@app.get("/boom")
def boom() -> str:
    raise ValueError(BOOM)


@app.get("/stream")
def stream() -> Iterator[bytes]:
    bottle.response.content_type = "text/plain"
    return chunks()


app.mount("/api/", api)
application = MonitorMiddleware(app)
