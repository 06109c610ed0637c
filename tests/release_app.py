"""An app whose behaviour depends on its release, served by gunicorn in the release tests.

``APP_SLOWNESS_MS`` makes ``/items/<id>`` that much slower and ``APP_BREAKS=1`` makes
``/checkout`` raise a ``KeyError``: what a bad deploy looks like from outside.
"""

from __future__ import annotations

import os
import time

from flask import Flask

from wsgimon import MonitorMiddleware

app = Flask("release_app")
SLOWNESS_S = float(os.environ.get("APP_SLOWNESS_MS", "0")) / 1000


@app.route("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    time.sleep(0.001 + SLOWNESS_S)
    return {"id": item_id}


@app.route("/checkout")
def checkout() -> str:
    if os.environ.get("APP_BREAKS") == "1":
        raise KeyError("cart")
    return "paid"


app.wsgi_app = MonitorMiddleware(app.wsgi_app)  # type: ignore[method-assign]
