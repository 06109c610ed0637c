"""The dashboard's Check-ins panel in a real headless Chromium, against a middleware on a SQLite store whose
monitors were made by real pings: through the API (as curl sends them from cron) and ``wsgimon.checkin``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wsgimon
from tests.servers import werkzeug_server
from tests.test_dashboard_browser import Page
from wsgimon import MonitorMiddleware

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

SCREENSHOT = Path("/tmp/dash-checkins.png")
MARKUP = "<img src=x onerror=window.__pwned=1>"
#: state -> the badge's class
BADGES = {
    "up": "ok",
    "late": "warning",
    "down": "fail",
    "failed": "fail",
    "running_too_long": "fail",
    "new": "unknown",
}


GRACE = {
    "nightly-backup": "1h",
    "invoices": "5m",
    "import-feed": "1s",
    "weekly-digest": "1h",
    "cache-warm": "1h",
    "cleanup": "1s",
}


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, MonitorMiddleware]]:
    monitor = MonitorMiddleware(hello, storage=f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        with werkzeug_server(monitor) as url:
            yield url, monitor
    finally:
        monitor.close()


def ping(url: str, path: str, query: str = "", body: bytes = b"") -> dict[str, Any]:
    answer = httpx.post(f"{url}/monitoring/checkins/{path}?{query}", content=body)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def make_monitors(url: str, monitor: MonitorMiddleware) -> None:
    """One monitor per state: through the API's pings, and wsgimon.checkin around real (tiny) jobs."""
    ping(url, "nightly-backup", "every=1d&grace=1h&duration_s=42", b"backup done: 1,204 files")
    ping(url, "invoices", "every=1h&grace=5m", b"sent 3 invoices")
    ping(url, "invoices/fail", "exit_code=3", b"SMTP refused: " + MARKUP.encode())
    ping(url, "import-feed/start", "every=1d&grace=1s")  # started, will not end within its grace
    ping(url, "weekly-digest/start", "every=7d&grace=1h")  # started, never ended yet: new
    with wsgimon.checkin("cache-warm", storage=monitor.store, every="1s", grace="1h"):
        pass  # ran once: due again in a second, then late for an hour
    with wsgimon.checkin("cleanup", storage=monitor.store, every="1s", grace="1s"):
        pass  # due again in a second, down after another
    time.sleep(2.2)


def test_checkins_panel_shows_each_monitor_with_its_state(browser: Any, served: tuple[str, MonitorMiddleware]) -> None:
    url, monitor = served
    make_monitors(url, monitor)
    listed = {c["name"]: c for c in httpx.get(url + "/monitoring/checkins").json()["checkins"]}
    states = {name: c["state"] for name, c in listed.items()}
    assert states == {
        "nightly-backup": "up",
        "invoices": "failed",
        "import-feed": "running_too_long",
        "weekly-digest": "new",
        "cache-warm": "late",
        "cleanup": "down",
    }

    page = Page(browser, url + "/monitoring/")
    try:
        page.page.set_viewport_size({"width": 1280, "height": 900})
        page.wait_refreshes(1)
        rows = page.page.eval_on_selector_all(
            "#checkins tbody tr.clickable",
            """rows => rows.map(r => ({
                name: r.querySelector('.checkin-name').textContent,
                state: r.dataset.state,
                badge: r.querySelector('.badge').textContent,
                badgeClass: r.querySelector('.badge').className,
                detail: r.querySelector('.checkin-detail')?.textContent || '',
                cells: [...r.cells].map(c => c.textContent),
                dots: [...r.querySelectorAll('.run-dot')].map(d => d.className.replace('run-dot ', '')),
            }))""",
        )
        shown = {row["name"]: row for row in rows}
        assert set(shown) == set(states)
        for name, state in states.items():
            row = shown[name]
            assert row["state"] == state and row["badge"] == state.replace("_", " "), name
            assert row["badgeClass"].split()[-1] == BADGES[state], name
            if state == "running_too_long":  # "started 2.9s ago …": as of each answer
                assert row["detail"].startswith("started ") and row["detail"].endswith("and not ended (grace 1s)")
            else:
                assert row["detail"] == listed[name]["detail"], name
            assert row["cells"][2] == listed[name]["describe"] + " · grace " + GRACE[name], name
        # The ones that need a look first, then late, new and up.
        assert [row["state"] for row in rows][-1] == "up" and rows[0]["state"] in ("down", "failed", "running_too_long")
        backup, invoices = shown["nightly-backup"], shown["invoices"]
        assert backup["dots"] == ["ok"] and backup["cells"][4] == "42 s" and backup["cells"][7] == "1 ok"
        assert backup["cells"][3].endswith("ago") and backup["cells"][5].startswith("in ")
        assert invoices["dots"] == ["ok", "fail"] and invoices["cells"][7] == "1 ok · 1 failed"
        assert invoices["detail"] == "last run failed: exit code 3"
        assert shown["weekly-digest"]["dots"] == ["running"] and shown["weekly-digest"]["cells"][3].endswith("ago")
        assert "6 jobs · 3 need a look" in page.page.inner_text("#checkin-count")
        page.page.locator("#checkins-panel").screenshot(path=str(SCREENSHOT))

        # A row opens its runs with their output: the job's text, shown as text.
        page.page.click("#checkins tr[data-checkin='invoices']")
        page.wait_for("document.querySelectorAll('#checkins tr.checkin-runs .checkin-run').length === 2")
        logs = page.texts("#checkins tr.checkin-runs pre")
        assert logs == ["SMTP refused: " + MARKUP, "sent 3 invoices"]
        assert "exit code 3" in page.page.inner_text("#checkins tr.checkin-runs")
        assert page.page.locator("#checkins img").count() == 0 and page.page.evaluate("window.__pwned") is None
        page.page.locator("#checkins-panel").screenshot(path=str(SCREENSHOT.with_name("dash-checkins-open.png")))
        page.refresh_until("document.querySelectorAll('#checkins tr.checkin-runs pre').length === 2")  # stays open
        page.page.click("#checkins tr[data-checkin='invoices']")
        page.wait_for("document.querySelector('#checkins tr.checkin-runs') === null")

        # The window: runs that ended in it (all of them ended seconds ago, so in every window).
        page.page.click("#windows button[data-window='5m']")
        page.wait_for("document.querySelector('#checkin-count').textContent.endsWith('runs in window 5m')")
        page.page.screenshot(path=str(SCREENSHOT.with_name("dash-checkins-page.png")), full_page=True)
        assert not page.console, page.console
        assert all(request.startswith(url + "/") for request in page.requests), page.requests
    finally:
        page.close()


def test_what_comes_from_outside_is_shown_as_text(browser: Any, served: tuple[str, MonitorMiddleware]) -> None:
    """Names are restricted, but a state's detail, a run's error and output are not: the answer is changed in
    flight to carry markup and bidi controls, which the page shows and never obeys."""
    url, _monitor = served
    ping(url, "nightly-backup", "every=1d&grace=1h")

    def with_markup(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        for item in body["checkins"]:
            item["detail"] = "expected " + MARKUP + " \u202eevil"
            item["describe"] = "every " + MARKUP
            for run in item["recent_runs"]:
                run["error"] = MARKUP
                if "log" in run:
                    run["log"] = "<script>window.__pwned=1</script>" + MARKUP
        route.fulfill(response=answer, json=body)

    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        page.page.route("**/monitoring/checkins?*", with_markup)
        page.refresh_until(
            "document.querySelector('#checkins .checkin-detail')?.textContent.startsWith('expected <img')"
        )
        assert page.texts("#checkins .checkin-detail") == ["expected " + MARKUP + " \\u202eevil"]
        assert page.column("checkins", 2) == ["every " + MARKUP + " · grace 1h"]
        dot = page.page.get_attribute("#checkins .run-dot", "title") or ""
        assert dot.startswith("ok · ended ") and dot.endswith(MARKUP)
        page.page.click("#checkins tr[data-checkin='nightly-backup']")
        page.wait_for("document.querySelector('#checkins tr.checkin-runs pre') !== null")
        assert page.texts("#checkins tr.checkin-runs pre") == ["<script>window.__pwned=1</script>" + MARKUP]
        assert page.page.locator("#checkins img, #checkins script").count() == 0
        assert page.page.evaluate("window.__pwned") is None and not page.dialogs and not page.console
    finally:
        page.close()


def test_without_a_monitor_the_panel_says_how_to_add_one(browser: Any, served: tuple[str, MonitorMiddleware]) -> None:
    url, _monitor = served
    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert page.page.locator("#checkins-wrap").is_hidden()
        hint = page.page.inner_text("#checkin-notes")
        assert "POST /monitoring/checkins/<name>?every=1d&grace=1h" in hint and "wsgimon.checkin(" in hint
        assert page.page.inner_text("#checkin-count") == ""
        # An API that fails: said in the panel, the rest of the page works.
        page.page.route("**/monitoring/checkins?*", lambda route: route.fulfill(status=503, json={"error": "busy"}))
        page.refresh_until("document.querySelector('#checkin-notes').textContent.includes('unavailable')")
        assert page.page.inner_text("#checkin-notes") == "Check-ins are unavailable: busy"
        assert not page.page.locator("#message").is_visible()
        assert all("status of 503" in line for line in page.console), page.console  # the browser's own line
    finally:
        page.close()
