"""The dashboard at scale in headless Chromium: 500 endpoints and a 1,000-row request log.

Every auto-refresh re-renders the whole page, so that render is what must stay
fast: the page reports its own render time (``data-render-ms``), read after
each of several refreshes; a sort click is timed from outside, to the moment
the table shows the new order. Durations belong here, measured with goals, not
in the test suite (``tests/test_dashboard_browser.py`` checks the same page for
correctness only).
"""

from __future__ import annotations

import logging
import shutil
import statistics
import threading
import time
from typing import Any

from flask import Flask

from wsgimon import MonitorMiddleware
from wsgimon.stats.aggregate import Aggregate
from wsgimon.stores.records import Batch, ProcessRow, RequestEntry

RENDER_GOAL_MS = 200.0
SORT_GOAL_MS = 1000.0


def _history() -> Batch:
    now = time.time()
    batch = Batch()
    for i in range(5000):
        wall, endpoint = now - (i % 50), f"/api/e{i % 500}/<int:id>"
        status, duration = (200 if i % 7 else 500), 5.0 + i % 40
        agg = batch.minutes.setdefault(int(wall // 60), {}).setdefault((endpoint, "GET"), Aggregate())
        agg.add(duration, status, status >= 500, False, "ValueError" if status >= 500 else None, wall)
        batch.requests.append(RequestEntry(wall, "GET", endpoint, endpoint, status, duration, None, None, 10))
    return batch


def _wait(page: Any, expression: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{expression} still false after {timeout} s")
        time.sleep(0.01)


def measure(refreshes: int = 10) -> dict[str, list[float]] | None:
    """Render ms per refresh and sort-click ms, or None without Chromium and Playwright."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Flask("dashboard-bench")
    monitor = MonitorMiddleware(app.wsgi_app, storage="memory://", recent_requests=1000, max_endpoints=600)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    monitor.store.write(_history(), ProcessRow("bench", 1, time.time(), time.time(), 5000))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    renders: list[float] = []
    sorts: list[float] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{server.port}/monitoring/")
            refreshed = "Number(document.body.dataset.refreshes || 0)"
            _wait(page, f"{refreshed} >= 1")
            for _ in range(refreshes):
                count = int(page.evaluate(refreshed))
                page.click("#refresh-now")
                _wait(page, f"{refreshed} >= {count + 1}")
                renders.append(float(page.evaluate("document.body.dataset.renderMs")))
            for key in ("p95", "avg", "requests", "errors"):
                started = time.perf_counter()
                page.click(f"#endpoints th[data-key={key}]")
                _wait(page, f"document.querySelector('#endpoints th[data-key={key}]').className.includes('sorted')")
                sorts.append((time.perf_counter() - started) * 1000)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"render_ms": renders, "sort_ms": sorts}


def render(results: dict[str, list[float]] | None) -> str:
    if results is None:
        return "Not measured: Chromium or Playwright is not installed."
    render_ms, sort_ms = statistics.median(results["render_ms"]), statistics.median(results["sort_ms"])
    return "\n".join(
        [
            "| | median | min–max | goal | |",
            "|---|---:|---:|---:|---|",
            f"| re-render on refresh (500 endpoints, 1,000 log rows), ms | {render_ms:.0f} "
            f"| {min(results['render_ms']):.0f}–{max(results['render_ms']):.0f} | ≤ {RENDER_GOAL_MS:g} "
            f"| {'met' if render_ms <= RENDER_GOAL_MS else '**not met**'} |",
            f"| sort click to new order shown, ms | {sort_ms:.0f} | {min(results['sort_ms']):.0f}"
            f"–{max(results['sort_ms']):.0f} | ≤ {SORT_GOAL_MS:g} "
            f"| {'met' if sort_ms <= SORT_GOAL_MS else '**not met**'} |",
        ]
    )
