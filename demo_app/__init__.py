"""A small Flask app that shows wsgimon off: ``python -m demo_app`` or ``gunicorn demo_app:app``.

``demo_app.app`` (what gunicorn serves) is made on first use with wsgimon's defaults and the
``WSGIMON_*`` variables; ``python -m demo_app`` makes its own, with a release, SLOs, check-ins and
an alert channel (see ``__main__``).
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time

from flask import Flask, abort, render_template

from wsgimon import MonitorMiddleware, instrument_dbapi

__all__ = ["ITEMS_DELAY_MS", "app", "create_app", "monitor"]

#: Flask config key: how much slower ``/items/<id>`` answers (the demo's release regressed it)
ITEMS_DELAY_MS = "DEMO_ITEMS_DELAY_MS"


def _shop_database() -> sqlite3.Connection:
    """A small in-memory shop whose queries wsgimon times (instrument_dbapi: any DB-API connection)."""
    db: sqlite3.Connection = instrument_dbapi(sqlite3.connect(":memory:", check_same_thread=False))
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL)")
    db.executemany("INSERT INTO customers VALUES (?, ?)", [(n, f"customer {n}") for n in range(1, 21)])
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(n, n % 20 + 1, n * 1.5) for n in range(1, 41)])
    return db


def create_app(**monitor_options: object) -> tuple[Flask, MonitorMiddleware]:
    flask_app = Flask(__name__)
    shop = _shop_database()
    shop_lock = threading.Lock()  # one sqlite3 connection, many server threads

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
        delay_ms = flask_app.config.get(ITEMS_DELAY_MS, 0)
        if delay_ms:
            time.sleep(random.lognormvariate(math.log(delay_ms / 1000), 0.3))
        return {"id": item_id, "name": f"item {item_id}"}

    @flask_app.route("/orders")
    def orders() -> dict[str, list[dict[str, object]]]:
        """An N+1 on purpose: one query for the orders, then one per order for its customer."""
        with shop_lock:
            rows = shop.execute("SELECT id, customer_id, total FROM orders ORDER BY id DESC LIMIT 10").fetchall()
            listed = []
            for order_id, customer_id, total in rows:
                (name,) = shop.execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()
                listed.append({"id": order_id, "customer": name, "total": total})
        return {"orders": listed}

    monitor = MonitorMiddleware(flask_app.wsgi_app, **monitor_options)
    flask_app.wsgi_app = monitor  # type: ignore[method-assign]
    return flask_app, monitor


_making = threading.Lock()


def __getattr__(name: str) -> object:
    """``app`` and ``monitor``, made on first use: importing the package (as ``python -m demo_app``
    does before it makes its own) opens no store."""
    if name in ("app", "monitor"):
        with _making:
            if "app" not in globals():
                made_app, made_monitor = create_app()
                globals().update(app=made_app, monitor=made_monitor)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
