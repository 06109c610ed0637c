"""A Flask app with a slow function and a request that holds, served by gunicorn in the slow-request tests."""

from __future__ import annotations

import time

from flask import Flask, request

from wsgimon import MonitorMiddleware


def slow_query() -> None:
    """Where the time goes: what the profile must point at."""
    time.sleep(1.2)


app = Flask("slow_app")


@app.route("/report")
def report() -> str:
    slow_query()
    return "done"


@app.route("/hold")
def hold() -> str:
    time.sleep(min(10.0, float(request.args.get("s", "1"))))
    return "held"


app.wsgi_app = MonitorMiddleware(app.wsgi_app)  # type: ignore[method-assign]
