"""A small Flask app that shows wsgimon off: ``python -m demo_app`` or ``gunicorn demo_app:app``."""

from __future__ import annotations

import random
import time

from flask import Flask, abort, render_template

from wsgimon import MonitorMiddleware

__all__ = ["app", "create_app", "monitor"]


def create_app(**monitor_options: object) -> tuple[Flask, MonitorMiddleware]:
    flask_app = Flask(__name__)

    @flask_app.route("/")
    def index() -> str:
        return render_template("index.html", prefix=monitor.config.prefix)

    @flask_app.route("/test/normal")
    def normal() -> dict[str, str]:
        return {"status": "ok"}

    @flask_app.route("/test/slow")
    def slow() -> dict[str, float]:
        seconds = random.uniform(1.0, 3.0)
        time.sleep(seconds)
        return {"slept_s": round(seconds, 3)}

    @flask_app.route("/test/error")
    def error() -> str:
        raise ValueError("demo failure: something went wrong in /test/error")

    @flask_app.route("/test/notfound")
    def notfound() -> str:
        abort(404)

    @flask_app.route("/test/server-error")
    def server_error() -> tuple[dict[str, str], int]:
        return {"status": "failed on purpose"}, 500

    @flask_app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int | str]:
        return {"id": item_id, "name": f"item {item_id}"}

    monitor = MonitorMiddleware(flask_app.wsgi_app, **monitor_options)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]
    return flask_app, monitor


app, monitor = create_app()
