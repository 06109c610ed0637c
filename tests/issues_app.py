"""An app whose failures exercise grouping by cause: one helper behind three routes, two KeyErrors in one view,
chained errors, a bare 503. For gunicorn: ``tests.issues_app:wsgi()``, configured from ``WSGIMON_*`` variables."""

from __future__ import annotations

from typing import Any

from flask import Flask

from wsgimon import MonitorMiddleware


def parse_amount(raw: str) -> int:
    return int(raw)


def create_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask(__name__)
    app.logger.disabled = True

    @app.route("/orders/<raw>")
    def orders(raw: str) -> str:
        return str(parse_amount(raw))

    @app.route("/refunds/<raw>")
    def refunds(raw: str) -> str:
        return str(parse_amount(raw) * -1)

    @app.route("/invoices/<raw>")
    def invoices(raw: str) -> str:
        return f"invoice {parse_amount(raw)}"

    @app.route("/lookup/<which>")
    def lookup(which: str) -> str:
        prices = {"tea": 3}
        if which == "first":
            return str(prices["coffee"])
        return str(prices["cocoa"])

    @app.route("/chained/<kind>")
    def chained(kind: str) -> str:
        try:
            if kind == "key":
                return str({}["missing"])
            return str([][1])
        except (KeyError, IndexError) as exc:
            raise RuntimeError("the lookup failed") from exc

    @app.route("/unavailable")
    def unavailable() -> tuple[str, int]:
        return "try later", 503

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def wsgi() -> Flask:
    return create_app()[0]
