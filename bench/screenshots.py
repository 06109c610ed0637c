"""Pictures of the dashboard for docs/, from a real server and headless Chromium.

``python -m bench.screenshots`` serves a small shop app wrapped in MonitorMiddleware on
127.0.0.1, sends it some traffic (two requests slow enough for the sampler to sample them),
opens the dashboard and writes:

- ``docs/dashboard-slow.png``: the Slow requests panel with the slowest request's flame graph open.
- ``docs/dashboard-releases.png``: the charts with two deploy markers and the Releases panel naming
  the newer release's regression (two releases seeded into one SQLite store, the newer one served).

``--dark`` draws the dark theme, ``--out DIR`` writes elsewhere. Chromium comes from ``$CHROMIUM``,
``chromium`` or ``chromium-browser``; Playwright from the ``dev`` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from flask import Flask

from wsgimon import MonitorMiddleware

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1280, 3000  # tall: the panel is in view without scrolling under the sticky header


def run_query(sql: str) -> list[int]:
    """The database: where most of a monthly report's time goes."""
    time.sleep(0.9)
    return list(range(2000))


def load_orders(month: str) -> list[int]:
    return run_query(f"SELECT * FROM orders WHERE month = '{month}'")


def format_row(order: int) -> str:
    return f"<tr><td>{order}</td><td>{order * 1.19:.2f}</td></tr>"


def render_table(orders: list[int]) -> str:
    """Busy on the CPU for a while: several lines and a callee on the samples."""
    rows: list[str] = []
    deadline = time.perf_counter() + 0.4
    while time.perf_counter() < deadline:
        rows.extend(format_row(order) for order in orders[:50])
    return f"<table>{len(rows)} rows</table>"


def monthly_report(month: str) -> str:
    return render_table(load_orders(month))


def write_csv() -> str:
    time.sleep(0.6)
    return "id,total\n"


def create_app() -> tuple[Flask, MonitorMiddleware]:
    app = Flask("shop")

    @app.route("/products/<int:product_id>")
    def product(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    @app.route("/search")
    def search() -> dict[str, list[int]]:
        return {"results": [1, 2, 3]}

    @app.route("/reports/monthly")
    def report() -> str:
        from flask import request

        return monthly_report(request.args.get("month", "2025-05"))

    @app.route("/export.csv")
    def export() -> str:
        return write_csv()

    app.logger.disabled = True
    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://", slow_request_ms=300, slow_sample_interval_ms=20)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def record_traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(40):
            client.get(f"/products/{n}")
        for term in ("lamp", "desk", "chair"):
            client.get("/search", params={"q": term})
        client.get("/reports/monthly", params={"month": "2025-05", "api_key": "k-93f1c0ffee"})
        client.get("/reports/monthly", params={"month": "2025-04"})
        client.get("/export.csv")


@contextmanager
def served(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll from outside: the page's CSP forbids the eval that Playwright's wait_for_function uses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{expression} still false after {timeout} s")
        time.sleep(0.05)


def open_slowest_profile(page: Any) -> None:
    wait_for(page, "document.querySelectorAll('#slow tbody tr.clickable').length > 0")
    page.click("#slow tbody tr.clickable")
    wait_for(page, "document.querySelectorAll('#slow-profile .flame-box').length > 0")
    page.mouse.move(0, 0)


def screenshot(
    url: str,
    target: Path,
    prepare: Callable[[Any], None],
    selector: str | None = None,
    dark: bool = False,
    height: int = HEIGHT,
) -> None:
    """Open the dashboard at ``url``, run ``prepare`` on the page, save ``selector`` (or the whole page)."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("screenshots: Chromium not found (install Debian's chromium or set CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        )
        try:
            page = browser.new_page(
                viewport={"width": WIDTH, "height": height}, color_scheme="dark" if dark else "light"
            )
            page.goto(url)
            wait_for(page, "Number(document.body.dataset.refreshes || 0) >= 1")
            prepare(page)
            if selector:
                page.locator(selector).screenshot(path=str(target), animations="disabled")
            elif height != HEIGHT:
                page.screenshot(path=str(target), animations="disabled")
            else:
                page.screenshot(path=str(target), full_page=True, animations="disabled")
        finally:
            browser.close()


def releases_app(directory: str) -> tuple[Flask, MonitorMiddleware]:
    """v1 then v2 in one store, v2 nine times slower on /search; the app runs v2."""
    from tests.seeding import batch_of
    from wsgimon.stores.records import ProcessRow

    now = time.time()
    app = Flask("shop")
    monitor = MonitorMiddleware(app.wsgi_app, storage=f"sqlite:///{directory}/releases.sqlite3", release="v2")
    app.wsgi_app = monitor  # type: ignore[method-assign]
    v1 = ProcessRow("web-1", 101, now - 3000, now - 1500, 0, release="v1")
    v2 = ProcessRow("web-1", 102, now - 1400, now, 0, release="v2")
    monitor.store.write(batch_of([(now - 2900 + i, "/search", "GET", 200, 10.0) for i in range(300)]), v1)
    monitor.store.write(batch_of([(now - 1300 + i, "/search", "GET", 200, 90.0) for i in range(250)]), v2)
    return app, monitor


def show_releases(page: Any) -> None:
    wait_for(page, "document.querySelectorAll('svg g.deploy').length >= 2")
    wait_for(page, "document.querySelectorAll('#releases tbody tr').length === 2")


def main() -> None:
    parser = argparse.ArgumentParser(description="pictures of the dashboard for docs/")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="directory to write to (default docs/)")
    parser.add_argument("--dark", action="store_true", help="the dark theme")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app, monitor = create_app()
    try:
        with served(app) as url:
            record_traffic(url)
            target = args.out / "dashboard-slow.png"
            screenshot(url + "/monitoring/", target, open_slowest_profile, "#slow-panel", dark=args.dark)
            print(f"wrote {target}")
    finally:
        monitor.close()
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        app, monitor = releases_app(directory)
        try:
            with served(app) as url:
                target = args.out / "dashboard-releases.png"
                screenshot(url + "/monitoring/", target, show_releases, dark=args.dark, height=1100)
                print(f"wrote {target}")
        finally:
            monitor.close()


if __name__ == "__main__":
    main()
