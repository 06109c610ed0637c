"""The dashboard in a real headless Chromium against a real server with recorded traffic."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask

from tests.helpers import call
from tests.issues_app import create_app as create_issues_app
from tests.seeding import batch_of, process
from tests.servers import ROOT, wait_until, werkzeug_server
from tests.standins.discord import DiscordStandIn
from wsgimon import MonitorMiddleware
from wsgimon.recording.release import RELEASE_VARIABLES

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
XSS_PATH = "/<img src=x onerror=alert(1)>"
XSS_MESSAGE = "<script>window.__pwned = 1</script> bad input"
SPOOFED_PATH = "/%E2%80%AEnimda/resu/eteled"  # a right-to-left override: shows as /delete/user/admin

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")


def make_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask("dashboard-under-test")

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/fail")
    def fail() -> str:
        raise ValueError(XSS_MESSAGE)

    @app.route("/fail/<path:what>")
    def fail_on(what: str) -> str:
        raise ValueError(XSS_MESSAGE)

    app.logger.disabled = True
    options.setdefault("storage", "memory://")
    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def record_traffic(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for n in range(30):
            client.get(f"/items/{n}")
        for _ in range(12):
            client.get("/ok")
        for _ in range(3):
            client.get("/fail")
        client.get(XSS_PATH)
        client.get(SPOOFED_PATH)


class Page:
    """A page with every console message, dialog and request it caused recorded."""

    def __init__(self, browser: Any, url: str, **context_options: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.response = self.page.goto(url)

    def wait_for(self, expression: str, timeout: float = 15.0) -> None:
        """Poll ``expression`` from outside: the page's CSP forbids the eval that wait_for_function uses."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} still false after {timeout} s")
            time.sleep(0.05)

    def wait_refreshes(self, at_least: int) -> None:
        self.wait_for(f"Number(document.body.dataset.refreshes || 0) >= {at_least}")

    def refresh_until(self, expression: str, timeout: float = 15.0) -> None:
        """Refresh now until ``expression`` holds (a click during a refresh in flight is ignored: click again)."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} still false after {timeout} s")
            count = self.refreshes()
            self.page.click("#refresh-now")
            self.wait_refreshes(count + 1)

    def texts(self, selector: str) -> list[str]:
        return list(self.page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)"))

    def refreshes(self) -> int:
        return int(self.page.evaluate("Number(document.body.dataset.refreshes || 0)"))

    def column(self, table: str, index: int) -> list[str]:
        return list(
            self.page.eval_on_selector_all(
                f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}]?.textContent)"
            )
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def served() -> Iterator[str]:
    app, _ = make_app()
    with werkzeug_server(app) as url:
        record_traffic(url)
        yield url


def test_page_loads_clean_and_matches_the_api(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        headers = page.response.headers
        assert (
            "nonce-" in headers["content-security-policy"]
            and "default-src 'none'" in headers["content-security-policy"]
        )
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        stats = httpx.get(served + "/monitoring/stats?window=1h").json()
        cards = dict(
            zip(
                page.page.eval_on_selector_all(".card .label", "els => els.map(e => e.textContent)"),
                page.page.eval_on_selector_all(".card .value", "els => els.map(e => e.textContent)"),
                strict=True,
            )
        )
        assert cards["requests"] == f"{stats['requests']:,}" and stats["requests"] == 47
        rate = stats["error_rate"]
        assert cards["error rate"] == f"{rate * 100:.{2 if rate < 0.1 else 1}f}%"
        assert cards["p95"].startswith(_ms(stats["latency_ms"]["p95"]))
        assert sorted(page.column("endpoints", 0)) == sorted(
            row["endpoint"] for row in httpx.get(served + "/monitoring/endpoints?window=1h").json()["endpoints"]
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert not page.console, page.console
        assert all(urlsplit(url).hostname == "127.0.0.1" for url in page.requests), page.requests
    finally:
        page.close()


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def test_follows_the_system_dark_theme(browser: Any, served: str) -> None:
    backgrounds = {}
    for scheme in ("light", "dark"):
        page = Page(browser, served + "/monitoring/", color_scheme=scheme)
        try:
            page.wait_refreshes(1)
            backgrounds[scheme] = page.page.evaluate("getComputedStyle(document.body).backgroundColor")
        finally:
            page.close()
    assert backgrounds["light"] != backgrounds["dark"]
    assert backgrounds["dark"] == "rgb(20, 23, 27)"


def test_attacker_controlled_values_render_as_text(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert XSS_PATH in page.column("log", 7)
        # Bidi and zero-width characters are shown, not obeyed.
        assert "/\\u202enimda/resu/eteled" in page.column("log", 7)
        page.page.click("#issues tbody tr.clickable")
        assert page.texts("#issues .issue-title") == ["<script>window.__pwned = <num></script> bad input"]
        assert page.texts("#issues .issue-message") == [XSS_MESSAGE]
        assert XSS_MESSAGE in page.page.locator("#issues pre.traceback").inner_text()
        assert page.page.evaluate("window.__pwned") is None
        assert page.page.locator("#log img, #issues script, #endpoints img").count() == 0
        assert not page.dialogs and not page.console
    finally:
        page.close()


def test_sorting_filtering_and_window_switching(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert page.column("endpoints", 0)[0] == "/items/<int:item_id>"  # most requests first
        page.page.click("#endpoints th[data-key=endpoint]")
        names = page.column("endpoints", 0)
        assert names == sorted(names)
        page.page.click("#endpoints th[data-key=endpoint]")
        assert page.column("endpoints", 0) == sorted(names, reverse=True)
        page.page.click("#endpoints th[data-key=errors]")
        assert page.column("endpoints", 0)[0] == "/fail"

        before = page.refreshes()
        page.requests.clear()
        page.page.click("#endpoints tbody tr[data-endpoint='/fail']")
        page.wait_refreshes(before + 1)
        assert page.page.locator("#filter-chip").is_visible()
        assert set(page.column("log", 6)) == {"/fail"}
        assert page.texts("#issues tbody tr.clickable td:nth-child(4)") == ["GET /fail"]
        series = [parse_qs(urlsplit(u).query) for u in page.requests if "/timeseries" in u]
        assert series and series[-1]["endpoint"] == ["/fail"] and series[-1]["method"] == ["GET"]
        requests_card = page.page.locator(".card").first.locator(".value").inner_text()
        assert requests_card == "3"

        before = page.refreshes()
        page.page.click("#filter-clear")
        page.wait_refreshes(before + 1)
        assert len(set(page.column("log", 6))) > 1

        before = page.refreshes()
        page.requests.clear()
        page.page.click("#windows button[data-window='5m']")
        page.wait_refreshes(before + 1)
        assert page.page.locator("#endpoint-count").inner_text().endswith("window 5m")
        windows = {parse_qs(urlsplit(u).query).get("window", [""])[0] for u in page.requests if "/stats" in u}
        assert windows == {"5m"}

        page.page.select_option("#log-status", "5xx")
        page.wait_for("[...document.querySelectorAll('#log tbody tr')].every(r => r.cells[2].textContent === '500')")
        assert set(page.column("log", 2)) == {"500"}
        assert not page.console
    finally:
        page.close()


def test_auto_refresh_pause_and_unreachable_api(browser: Any) -> None:
    app, _ = make_app()
    with werkzeug_server(app) as url:
        record_traffic(url)
        page = Page(browser, url + "/monitoring/")
        try:
            page.wait_refreshes(1)
            page.page.select_option("#refresh", "2")
            page.wait_refreshes(page.refreshes() + 1)
            page.page.click("#log-pause")
            rows_before = page.column("log", 7)
            httpx.get(url + "/ok?after=pause")
            page.wait_refreshes(page.refreshes() + 1)
            assert page.column("log", 7) == rows_before, "a paused log does not change"
            page.page.click("#log-pause")
            page.wait_for("document.querySelector('#log tbody tr').cells[7].textContent === '/ok?after=pause'")
        finally:
            pass
    # The server is gone: the page says so instead of failing silently.
    page.page.click("#refresh-now")
    page.page.wait_for_selector("#message.shown", timeout=10_000)
    assert "unreachable" in page.page.locator("#message").inner_text()
    page.close()


def test_access_denied_is_explained_and_basic_credentials_are_reused(browser: Any) -> None:
    app, _ = make_app(username="ops", password="s3cret-0123456789", allow_remote=False)
    with werkzeug_server(app) as url:
        record_traffic(url)
        allowed = Page(
            browser, url + "/monitoring/", http_credentials={"username": "ops", "password": "s3cret-0123456789"}
        )
        try:
            allowed.wait_refreshes(1)
            assert allowed.page.locator(".card .value").first.inner_text() == "47"
            assert not allowed.console
        finally:
            allowed.close()

    # With a token only, the page (which holds no data) loads, asks for the token and then shows the data.
    app, _ = make_app(token="t0ken-value-of-some-length")
    with werkzeug_server(app) as url:
        record_traffic(url)
        page = Page(browser, url + "/monitoring/")
        try:
            assert page.response.status == 200
            page.wait_for("document.querySelector('#message input[type=password]') !== null")
            assert "WSGIMON_TOKEN" in page.page.locator("#message").inner_text()
            assert page.page.locator(".card .value").count() == 0
            page.page.fill("#message input[type=password]", "t0ken-value-of-some-length")
            page.page.click("#message button")
            page.wait_for("document.querySelectorAll('.card .value').length > 0")
            assert page.page.locator(".card .value").first.inner_text() == "47"
        finally:
            page.close()


def test_renders_500_endpoints_and_a_1000_row_log_and_sorts_them(browser: Any, tmp_path: Path) -> None:
    """Every row renders and sorting is right at scale; how fast is measured in bench/ (dashboard part)."""
    app, monitor = make_app(recent_requests=1000, max_endpoints=600)
    monitor.store.write(big_history(), process())
    with werkzeug_server(app) as url:
        page = Page(browser, url + "/monitoring/")
        try:
            page.wait_refreshes(1)
            assert page.page.locator("#endpoints tbody tr").count() == 500
            assert page.page.locator("#log tbody tr").count() == 1000
            count = page.refreshes()
            page.page.click("#refresh-now")
            page.wait_refreshes(count + 1)
            assert page.page.locator("#endpoints tbody tr").count() == 500
            page.page.click("#endpoints th[data-key=p95]")
            page.wait_for("document.querySelector('#endpoints th[data-key=p95]').classList.contains('sorted-desc')")
            p95_column = page.page.eval_on_selector(
                "#endpoints thead", "head => [...head.querySelectorAll('th')].findIndex(th => th.dataset.key === 'p95')"
            )
            shown = [float(text.split()[0]) for text in page.column("endpoints", int(p95_column))]
            assert len(shown) == 500 and shown == sorted(shown, reverse=True)
            assert not page.console
        finally:
            page.close()


def big_history() -> Any:
    """500 endpoints and 5,000 requests in the last minute (also what the dashboard benchmark renders)."""
    now = time.time()
    return batch_of(
        (now - (i % 50), f"/api/e{i % 500}/<int:id>", "GET", 200 if i % 7 else 500, 5.0 + i % 40) for i in range(5000)
    )


def raw_fail_path(environ: dict[str, Any]) -> str | None:
    """Names failures under /fail/ by their raw path, so attacker-made text reaches alert titles."""
    path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace")
    return path if path.startswith("/fail/") else None


BURN_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
HOSTILE_TITLE = "ValueError in GET /fail" + XSS_PATH + ", GET /fail/\\u202enimda/resu/eteled"
ALWAYS = "daily 00:00-12:00, daily 12:00-00:00"  # a maintenance window that is always on


class Clock:
    """The alert engine's and the recorder's time (their seam), moved forward by the test instead of waited for."""

    def __init__(self, monitor: MonitorMiddleware) -> None:
        assert monitor.alerts is not None
        self.monitor, self.alerts, self.offset = monitor, monitor.alerts, 0.0
        self.alerts.clock = self.now
        monitor.recorder.set_wall_clock(self.now)
        self.alerts.start()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.monitor.flush()  # what happened before the jump keeps its time
        self.offset += seconds
        self.monitor.recorder.set_wall_clock(self.now)

    def settle(self) -> None:
        """The engine evaluates now, what was flushed included, and hands its messages to the channels."""
        self.monitor.flush()
        self.alerts.evaluate(now_please=True)
        assert self.alerts.evaluated_at > 0


def tell_incident(monitor: MonitorMiddleware, url: str, errors: int) -> Clock:
    """Once the ``errors`` failures are recorded (at ``close()``, after the client has its answer) they open an
    incident; 40 s later on the engine's clock, past the 30 s group wait, its first message goes out."""
    wait_until(lambda: httpx.get(url + "/monitoring/stats", params={"window": "1h"}).json()["errors"] == errors)
    clock = Clock(monitor)
    clock.settle()
    clock.advance(40)
    clock.settle()
    return clock


@pytest.fixture
def alerting() -> Iterator[tuple[str, DiscordStandIn]]:
    """A served app alerting through a Discord stand-in, one incident open and told: the failures (two at
    attacker-made paths) and the availability SLO their share of the traffic burns."""
    with DiscordStandIn() as discord:
        app, monitor = make_app(
            discord_webhook_url=discord.webhook_url,
            slo_availability=99.9,
            alert_interval_s=5,
            alert_rules="exception,slo",
            endpoint=raw_fail_path,
        )
        with werkzeug_server(app) as url:
            record_traffic(url)
            with httpx.Client(base_url=url) as client:
                client.get("/fail" + XSS_PATH)
                client.get("/fail" + SPOOFED_PATH)
            tell_incident(monitor, url, errors=5)
            discord.wait_for_requests(1)
            wait_until(
                lambda: [a["deliveries"]["discord"]["status"] for a in alerts_of(url)["alerts"]] == ["delivered"]
            )
            yield url, discord
        monitor.close()  # and its channel's client


def alerts_of(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/monitoring/alerts").json())


def silences_of(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(url + "/monitoring/silences").json()["silences"])


def unescaped(shown: str) -> str:
    """The text the page shows with the right-to-left override it spelled out as \\u202e put back."""
    return shown.replace("\\u202e", "\u202e")


def _budget(left: float) -> str:
    return f"{round(left * 100):,}%" if abs(left) >= 1 else f"{left * 100:.1f}%"


def test_alerts_panel_shows_the_open_incident_its_delivery_and_the_slo(
    browser: Any, alerting: tuple[str, DiscordStandIn]
) -> None:
    url, discord = alerting
    answer = alerts_of(url)
    (incident,) = answer["incidents"]
    conditions = incident["conditions"]
    assert incident["status"] == "open" and incident["messages"] == 1 and len(discord.requests) == 1
    # Two issues (fail() behind /fail, fail_on() behind the two hostile paths) and the SLO page, told in one message.
    assert sorted(c["rule"] for c in conditions) == ["exception", "exception", "slo"]
    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        block = page.page.locator("#incidents .incident")
        assert block.count() == 1 and block.get_attribute("data-incident") == str(incident["id"])
        assert block.locator(".incident-id").inner_text() == f"#{incident['id']}"
        assert unescaped(block.locator(".incident-title").inner_text()) == incident["title"]
        assert re.fullmatch(r"open for \d+ (s|min)", block.locator(".incident-age").inner_text())
        assert block.locator(".incident-messages").inner_text().startswith("1 message sent, the last ")
        shown = [unescaped(title) for title in page.texts("#incidents .condition-title")]
        assert shown == [c["title"] for c in conditions], "in the API's order"
        assert HOSTILE_TITLE in page.texts("#incidents .condition-title")
        assert page.texts("#incidents .cond-status") == ["firing"] * 3
        # The SLO page fires deployment-wide: the per-endpoint conditions it covers are inhibited, marked, not hidden.
        marks = page.page.eval_on_selector_all(
            "#incidents .condition",
            "rows => rows.map(r => [r.dataset.key, [...r.querySelectorAll('.mark')].map(m => m.textContent)])",
        )
        assert dict(marks) == {c["key"]: ["inhibited"] if c["inhibited"] else [] for c in conditions}
        assert [c["endpoint"] for c in conditions if c["inhibited"]] == ["/fail"]
        assert page.page.locator("#incidents .silence-this").count() == 3, "every firing condition can be silenced"
        assert page.texts("#alert-count") == ["1 open incident"]
        assert (
            page.page.locator("#alert-maintenance").is_hidden() and page.page.locator("#resolved-incidents").is_hidden()
        )

        # The header does not say "ok" while an incident is open, even if /health (an older server's) did.
        health = httpx.get(url + "/monitoring/health").json()
        assert health["checks"]["incidents"]["status"] == "degraded" and health["status"] != "ok"
        assert page.page.locator("#health-badge").inner_text() == health["status"]
        page.page.route(
            "**/monitoring/health*",
            lambda route: route.fulfill(json={"status": "ok", "checks": {"store": {"status": "ok", "detail": "ok"}}}),
        )
        page.refresh_until("document.querySelector('#health-badge').title.startsWith('incidents: 1 open incident')")
        assert page.page.locator("#health-badge").inner_text() == "degraded"
        page.page.unroute("**/monitoring/health*")

        # Delivery per channel over the deployment's messages; the message log is there, folded.
        assert page.texts("#alert-channels .chip") == ["discord · 1 delivered"]
        assert page.page.locator("#alerts").is_hidden()
        page.page.click("#alert-log summary")
        assert page.page.locator("#alerts").is_visible()
        assert [unescaped(t) for t in page.texts("#alerts .alert-title")] == [row["title"] for row in answer["alerts"]]
        assert page.texts("#alerts tbody td:nth-child(5)") == ["discord delivered"]
        assert page.texts("#alerts tbody td:nth-child(3)") == ["firing"]
        assert all(re.fullmatch(r"just now|\d+ (s|min) ago", sent) for sent in page.column("alerts", 0))
        # Attacker-made titles are text: nothing ran, no element came from them.
        assert page.page.locator("#alerts-panel img, #alerts-panel script").count() == 0
        assert page.page.evaluate("window.__pwned") is None and not page.dialogs

        (slo,) = answer["slo"]
        card = page.page.locator(".card.slo")
        assert card.locator(".label").inner_text().lower() == "slo · availability"
        assert card.locator(".slo-target").inner_text() == "99.9%" and slo["target"] == 99.9
        assert slo["error_budget_remaining"] < 0 and slo["firing"] == "page"
        assert card.locator(".slo-budget").inner_text() == _budget(slo["error_budget_remaining"])
        assert "over" in (card.locator(".meter").get_attribute("class") or "")  # red: overspent
        burns = dict(zip(BURN_WINDOWS, page.texts(".card.slo .slo-burn"), strict=True))
        assert burns == {w: f"{w} {_ms(slo['burn_rates'][w])}×" for w in BURN_WINDOWS}
        assert card.locator(".slo-firing").inner_text() == "page"
        assert slo["description"] in card.locator(".detail").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.locator("#alerts-panel").screenshot(path=str(ARTIFACTS / "dashboard-alerts.png"))
        assert discord.violations == []
        assert not page.console, page.console
    finally:
        page.close()


def test_a_silence_made_from_a_firing_condition_mutes_it_until_ended_now(
    browser: Any, alerting: tuple[str, DiscordStandIn]
) -> None:
    url, _ = alerting
    (incident,) = alerts_of(url)["incidents"]
    (failing,) = [c for c in incident["conditions"] if c["endpoint"] == "/fail"]
    row = f"#incidents .condition[data-key='{failing['key']}']"
    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert page.texts("#silences li") == ["No silence."]
        # What to match and why are checked before anything is sent.
        page.requests.clear()
        page.page.click("#silence-add")
        assert page.page.locator("#silence-error").inner_text().startswith("Not saved: name what to silence")
        assert page.page.evaluate("document.activeElement.id") == "silence-rule"
        page.page.fill("#silence-endpoint", "/fail")
        page.page.click("#silence-add")
        assert page.page.locator("#silence-error").inner_text() == "Not saved: a reason is needed, say why."
        assert not [u for u in page.requests if u.endswith("/silences")]

        # "Silence" on a condition, from the keyboard: its rule and issue, the reason left to the person.
        page.page.focus(f"{row} .silence-this")
        page.page.keyboard.press("Enter")
        form = page.page.eval_on_selector_all(
            "#silence-form select, #silence-form input", "els => Object.fromEntries(els.map(e => [e.id, e.value]))"
        )
        assert form == {
            "silence-rule": "exception",
            "silence-endpoint": "",
            "silence-issue": failing["issue"],
            "silence-severity": "",
            "silence-for": "1h",
            "silence-reason": "",
        }
        assert page.page.evaluate("document.activeElement.id") == "silence-reason"
        assert page.page.locator("#silence-error").inner_text() == ""
        page.page.keyboard.type("a fix is being deployed")
        page.page.select_option("#silence-for", "30m")
        page.page.focus("#silence-reason")
        with page.page.expect_request(lambda r: r.method == "POST") as sent:
            page.page.keyboard.press("Enter")
        assert sent.value.url == url + "/monitoring/silences"
        assert sent.value.headers["content-type"] == "application/json"
        assert sent.value.post_data_json == {
            "rule": "exception",
            "issue": failing["issue"],
            "for": "30m",
            "reason": "a fix is being deployed",
        }
        page.wait_for("document.querySelectorAll('#silences .silence.active').length === 1")
        (silence,) = silences_of(url)
        assert silence["active"] and silence["reason"] == "a fix is being deployed"
        assert (silence["rule"], silence["issue"], silence["endpoint"]) == ("exception", failing["issue"], None)
        item = page.page.locator("#silences .silence.active")
        assert item.get_attribute("data-silence") == str(silence["id"])
        assert item.locator(".silence-reason").inner_text() == "a fix is being deployed"
        assert item.locator(".silence-match").inner_text() == f"rule exception · issue {failing['issue']}"
        assert re.fullmatch(r"until .+ \(in \d+ min\)", item.locator(".silence-until").inner_text())
        assert "mutes 1 condition now" in item.inner_text()
        assert page.page.locator("#silence-status").inner_text().startswith(f"Silence #{silence['id']} added, until ")
        assert page.page.input_value("#silence-reason") == "" and page.page.input_value("#silence-issue") == ""
        # What it matches is marked silenced at once, still shown.
        page.wait_for(f'document.querySelector("{row} .mark-silenced") !== null')
        assert {c["key"]: c["silenced"] for c in alerts_of(url)["incidents"][0]["conditions"]}[failing["key"]]
        assert page.page.locator("#silences .silence.ended").count() == 0

        with page.page.expect_request(lambda r: r.method == "POST") as ended:
            item.locator("button.silence-end").click()
        assert ended.value.url == f"{url}/monitoring/silences/{silence['id']}"
        assert ended.value.post_data_json == {"expire": True}
        page.wait_for("document.querySelectorAll('#silences .silence.ended').length === 1")
        assert page.page.locator("#silences .silence.active").count() == 0
        assert [s["active"] for s in silences_of(url)] == [False]
        ended_row = page.page.locator("#silences .silence.ended")
        assert ended_row.locator(".silence-until").inner_text().startswith("ended ")
        assert ended_row.locator("button").count() == 0
        assert page.page.evaluate("document.activeElement.dataset.silence") == str(silence["id"]), (
            "the row has the focus"
        )
        page.wait_for(f'document.querySelector("{row} .mark-silenced") === null')
        assert not page.console, page.console
    finally:
        page.close()


def test_a_maintenance_window_is_shown_and_a_refused_silence_says_why(browser: Any) -> None:
    refusal = "refused: the Origin is not this site; send the change from this site's dashboard or a client"

    def refuse(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=403, json={"error": refusal})
        else:
            route.continue_()

    with DiscordStandIn() as discord:
        app, monitor = make_app(
            discord_webhook_url=discord.webhook_url, alert_rules="exception", alert_maintenance=ALWAYS
        )
        with werkzeug_server(app) as url:
            httpx.get(url + "/fail")
            assert alerts_of(url)["maintenance"] is True
            page = Page(browser, url + "/monitoring/")
            try:
                page.wait_refreshes(1)
                assert page.page.locator("#alert-maintenance").inner_text() == "maintenance window"
                assert (
                    "Maintenance window: every condition is silenced" in page.page.locator("#alert-notes").inner_text()
                )
                assert page.texts("#incidents .empty") == ["No open incident."]
                assert page.texts("#alert-channels .chip") == ["discord · nothing sent yet"]

                page.page.route("**/monitoring/silences", refuse)
                page.page.fill("#silence-endpoint", "/fail")
                page.page.fill("#silence-reason", "the database is being moved")
                page.page.click("#silence-add")
                page.wait_for("document.querySelector('#silence-error').textContent !== ''")
                assert page.page.locator("#silence-error").inner_text() == "Not saved: " + refusal
                assert page.page.input_value("#silence-reason") == "the database is being moved", "kept to try again"
                assert silences_of(url) == [] and page.texts("#silences li") == ["No silence."]
                assert discord.requests == []
                assert [line for line in page.console if "403" not in line] == [], page.console
            finally:
                page.close()
        monitor.close()


def test_a_resolved_incident_is_listed_compactly_with_how_long_it_lasted(browser: Any) -> None:
    with DiscordStandIn() as discord:
        app, monitor = make_app(discord_webhook_url=discord.webhook_url, alert_interval_s=5, alert_rules="exception")
        with werkzeug_server(app) as url:
            httpx.get(url + "/fail")
            clock = tell_incident(monitor, url, errors=1)
            discord.wait_for_requests(1)
            clock.advance(400)  # quiet for longer than alert_resolve_after_s (300 s): over
            clock.settle()
            discord.wait_for_requests(2)
            (incident,) = alerts_of(url)["incidents"]
            assert incident["status"] == "resolved" and incident["resolved"] and incident["messages"] == 2
            page = Page(browser, url + "/monitoring/")
            try:
                page.wait_refreshes(1)
                assert page.texts("#incidents .empty") == ["No open incident."]
                assert page.texts("#alert-count") == ["no open incident"]
                assert (
                    page.page.locator("#health-badge").inner_text()
                    == httpx.get(url + "/monitoring/health").json()["status"]
                )
                resolved = page.page.locator("#resolved-list details.incident")
                assert resolved.count() == 1 and resolved.get_attribute("data-incident") == str(incident["id"])
                summary = resolved.locator("summary")
                assert summary.locator(".incident-title").inner_text() == incident["title"] == "ValueError in GET /fail"
                assert re.fullmatch(r"lasted \d+ min", summary.locator(".incident-duration").inner_text())
                assert "2 messages sent" in summary.inner_text()
                assert resolved.locator(".condition").is_hidden(), "compact until opened"
                page.page.select_option("#refresh", "2")
                summary.focus()
                page.page.keyboard.press("Enter")
                assert resolved.locator(".condition .cond-status").inner_text() == "resolved"
                assert resolved.locator(".silence-this").count() == 0, "nothing to silence"
                page.wait_refreshes(page.refreshes() + 1)  # the panel is built again: open and focused as it was
                assert page.page.locator("#resolved-list .condition").is_visible()
                assert page.page.evaluate("document.activeElement.dataset.focus") == f"resolved:{incident['id']}"
                assert not page.console, page.console
            finally:
                page.close()
        monitor.close()


def test_a_stopped_channel_and_its_failed_delivery_show_the_reason(browser: Any) -> None:
    with DiscordStandIn() as discord:
        discord.fail(404)  # the webhook was deleted: the channel stops
        app, monitor = make_app(discord_webhook_url=discord.webhook_url, alert_interval_s=5, alert_rules="exception")
        with werkzeug_server(app) as url:
            httpx.get(url + "/fail")
            tell_incident(monitor, url, errors=1)
            discord.wait_for_requests(1)
            wait_until(lambda: alerts_of(url)["channels"]["discord"]["stopped"])
            wait_until(lambda: alerts_of(url)["alerts"][0]["deliveries"]["discord"]["status"] == "failed")
            page = Page(browser, url + "/monitoring/")
            try:
                page.refresh_until("document.querySelector('#alert-notes .notice.bad') !== null")
                answer = alerts_of(url)
                channel = answer["channels"]["discord"]
                assert "deleted" in channel["stopped"]
                assert channel["stopped"] in page.page.locator("#alert-notes .notice.bad").inner_text()
                assert page.texts("#alert-channels .chip") == ["discord · stopped"]
                if channel["last_error"]:
                    assert page.texts("#alert-channels .channel-error") == ["last error: " + channel["last_error"]]
                assert answer["deliveries"]["discord"]["failed"] == 1
                page.page.click("#alert-log summary")
                chip = page.page.locator("#alerts tbody [data-channel=discord]")
                assert chip.inner_text() == "discord failed"
                delivery = answer["alerts"][0]["deliveries"]["discord"]
                assert chip.get_attribute("title") == f"{delivery['reason']} (attempt {delivery['attempts']})"
                assert not page.console, page.console
            finally:
                page.close()
                monitor.close()


def test_without_a_channel_the_alerts_panel_says_how_to_set_one(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        hint = page.page.locator("#alert-notes").inner_text()
        for variable in ("WSGIMON_DISCORD_WEBHOOK_URL", "WSGIMON_WEBHOOK_URL", "WSGIMON_ALERT_EMAIL_TO"):
            assert variable in hint
        assert not page.page.locator("#alerts").is_visible()
        assert page.page.locator(".card.slo").count() == 0  # no objective configured
        assert alerts_of(served)["configured"] == [] and not page.console
    finally:
        page.close()


def test_the_page_still_works_when_the_alerts_endpoint_fails(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        page.page.route("**/monitoring/alerts*", lambda route: route.fulfill(status=503, json={"error": "store busy"}))
        page.refresh_until("document.querySelector('#alert-notes').textContent.includes('unavailable')")
        assert page.page.locator("#alert-notes").inner_text() == "Alerts are unavailable: store busy"
        assert page.page.locator(".card .value").first.inner_text() == "47"
        assert not page.page.locator("#message").is_visible()
        assert len(page.column("log", 7)) == 47
    finally:
        page.close()


def slow_query() -> str:
    """Where the slow request spends its time: the box its profile must show."""
    time.sleep(0.9)
    return fetch_rows()


def fetch_rows() -> str:
    """A callee on about a quarter of the samples: its box is that much narrower than its caller's."""
    time.sleep(0.3)
    return "done"


@pytest.fixture
def slow_served() -> Iterator[tuple[str, threading.Event]]:
    """A served app with one endpoint slow enough to be sampled and one that waits until released."""
    release = threading.Event()
    app, monitor = make_app(slow_request_ms=200, slow_sample_interval_ms=50)

    @app.route("/report")
    def report() -> str:
        return slow_query()

    @app.route("/wait")
    def wait() -> str:
        release.wait(30)
        return "released"

    with werkzeug_server(app) as url:
        yield url, release
        release.set()
    monitor.close()


def _running(url: str) -> dict[str, Any] | None:
    """/stats' in_flight once the one waiting request is counted."""
    in_flight: dict[str, Any] = httpx.get(url + "/monitoring/stats").json()["in_flight"]
    return in_flight if in_flight["process"] == 1 else None


def _percent(title: str) -> float:
    match = re.search(r"([\d.]+)% of samples", title)
    assert match, title
    return float(match.group(1))


def test_slow_requests_panel_draws_the_profile_and_counts_requests_in_flight(
    browser: Any, slow_served: tuple[str, threading.Event]
) -> None:
    url, release = slow_served
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/report", params={"access_token": "s3cr3t-value"}).text == "done"
    waiting = threading.Thread(target=httpx.get, args=(url + "/wait",), kwargs={"timeout": 30})
    waiting.start()
    try:
        in_flight = wait_until(lambda: _running(url))
        (slow,) = httpx.get(url + "/monitoring/slow").json()["slow"]
        assert slow["app_frame"]["function"] == "slow_query" and "s3cr3t" not in slow["path"]
        page = Page(browser, url + "/monitoring/")
        try:
            page.wait_refreshes(1)
            assert page.column("slow", 4) == ["/report"] and page.column("slow", 5) == [slow["path"]]
            assert page.column("slow", 3) == [_ms(slow["duration_ms"])]
            assert page.column("slow", 6) == [f"slow_query {Path(__file__).name}:{slow['app_frame']['line']}"]
            cards = dict(zip(page.texts(".card .label"), page.page.locator(".card").all(), strict=True))
            running = cards["in flight"]
            assert running.locator(".value").inner_text() == "1"
            where = "all processes" if "deployment" in in_flight else "in this process"
            assert re.fullmatch(rf"oldest \d+\.\d s, {where}", running.locator(".detail").inner_text())
            assert page.page.locator("#slow-profile").is_hidden()

            page.page.click("#slow tbody tr")
            page.wait_for("document.querySelectorAll('#slow-profile .flame-box').length > 0")
            profile = page.page.locator("#slow-profile")
            box = profile.locator(".flame-box", has=page.page.get_by_text("slow_query", exact=True))
            assert box.count() == 1 and "hot" in (box.get_attribute("class") or "")
            assert box.locator(".loc").inner_text().startswith(Path(__file__).name + ":")
            shares = {"slow_query": 0.0, "fetch_rows": 0.0}
            for frame in slow["frames"]:
                if frame["function"] in shares:
                    shares[frame["function"]] += frame["share"]
            assert _percent(box.get_attribute("title") or "") == pytest.approx(shares["slow_query"] * 100, abs=0.1)
            callee = profile.locator(".flame-box", has=page.page.get_by_text("fetch_rows", exact=True))
            assert _percent(callee.get_attribute("title") or "") == pytest.approx(shares["fetch_rows"] * 100, abs=0.1)
            full = profile.locator(".flame-box.root").bounding_box()
            narrow = callee.bounding_box()
            assert full and narrow and narrow["width"] == pytest.approx(full["width"] * shares["fetch_rows"], abs=3)

            callee.click()  # zoom in: the callee spans the graph and keeps the focus
            page.wait_for("document.activeElement.querySelector('.fn')?.textContent === 'fetch_rows'")
            zoomed = profile.locator(".flame-box", has=page.page.get_by_text("fetch_rows", exact=True)).bounding_box()
            assert zoomed and zoomed["width"] == pytest.approx(full["width"], abs=3)

            row = page.page.locator("#slow tbody tr").first
            row.press("Enter")
            page.wait_for("document.querySelector('#slow-profile').hidden")
            assert row.get_attribute("aria-expanded") == "false"
            row.press("Enter")
            page.wait_for("!document.querySelector('#slow-profile').hidden")
            before = page.refreshes()
            page.page.click("#refresh-now")
            page.wait_refreshes(before + 1)
            assert profile.locator(".flame-box", has=page.page.get_by_text("slow_query", exact=True)).count() == 1
            assert not page.console, page.console
        finally:
            page.close()
    finally:
        release.set()
        waiting.join(30)


def test_slow_requests_panel_says_when_nothing_was_sampled(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/")
    try:
        page.wait_refreshes(1)
        (empty,) = page.texts("#slow tbody td.empty")
        assert empty.startswith("no slow requests sampled")
        assert page.page.locator("#slow-profile").is_hidden() and not page.console
    finally:
        page.close()


ITEMS, V1_OK, V2_CHECKOUTS = 240, 7, 3


def release_app(storage: str, release: str, item_ms: float, breaks: bool) -> tuple[Flask, MonitorMiddleware]:
    """One release of a shop: v2's item page is slower and its checkout raises an error v1 never did."""
    app = Flask("release-" + release)

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        time.sleep(item_ms / 1000)
        return {"id": item_id}

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/checkout")
    def checkout() -> str:
        if breaks:
            raise KeyError("cart")
        return "paid"

    app.logger.disabled = True
    monitor = MonitorMiddleware(app.wsgi_app, storage=storage, release=release)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def counts_by_release(url: str) -> dict[str, int]:
    rows = httpx.get(url + "/monitoring/releases").json()["releases"]
    return {row["release"]: row["requests"] for row in rows}


@pytest.fixture
def two_releases(tmp_path: Path) -> Iterator[str]:
    """v1 then v2 in one SQLite store; v2 is served, and is slower on /items/<int:item_id> (240 requests each)."""
    storage = f"sqlite:///{tmp_path}/releases.sqlite3"
    old_app, old = release_app(storage, "v1", 0, breaks=False)
    for n in range(ITEMS):
        assert call(old_app, f"/items/{n}").status == "200 OK"
    for _ in range(V1_OK):
        call(old_app, "/ok")
    old.close()
    new_app, new = release_app(storage, "v2", 25, breaks=True)
    with werkzeug_server(new_app) as url:
        paths = [f"/items/{n}" for n in range(ITEMS)] + ["/checkout"] * V2_CHECKOUTS

        def send(chunk: list[str]) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for path in chunk:
                    client.get(path)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, [paths[i::8] for i in range(8)]))
        wait_until(lambda: counts_by_release(url) == {"v2": ITEMS + V2_CHECKOUTS, "v1": ITEMS + V1_OK})
        yield url
    new.close()


def test_releases_panel_deploy_markers_and_the_release_selector(browser: Any, two_releases: str) -> None:
    url = two_releases
    v2, v1 = httpx.get(url + "/monitoring/releases").json()["releases"]
    (regression,) = v2["regressions"]
    assert regression["endpoint"] == "/items/<int:item_id>" and regression["metric"] == "p95"
    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert page.page.locator("#release-group").is_visible()
        assert page.texts("#release option") == ["all releases", "v2 (this process)", "v1"]
        assert page.texts("#releases tbody .release-name") == ["v2", "v1"]
        assert page.column("releases", 3) == [f"{ITEMS + V2_CHECKOUTS:,}", f"{ITEMS + V1_OK:,}"]
        assert page.column("releases", 5) == [f"{_ms(row['latency_ms']['p95'])} ms" for row in (v2, v1)]
        assert page.column("releases", 6) == ["⚠ 1 regression1 new error type", "oldest kept"]
        assert page.texts("#issues .issue-type") == ["KeyError"]
        assert page.texts("#issues tbody tr.clickable td:nth-child(9)") == ["v2"], "the newest release it was seen in"

        assert page.page.locator("#release-detail .notice.bad").inner_text() == (
            "⚠ v2 made 1 endpoint worse and raised 1 error type not seen before than v1"
        )
        assert page.column("release-regressions", 0) == ["GET /items/<int:item_id>"]
        assert page.column("release-regressions", 1) == ["p95 latency"]
        before, after = _ms(regression["before"]), _ms(regression["after"])
        assert page.column("release-regressions", 2) == [f"{before} ms → {after} ms"]
        assert page.column("release-regressions", 4) == [f"{ITEMS:,} → {ITEMS:,}"]
        assert page.texts("#release-detail .new-errors .chip") == ["KeyError"]

        # Both deploys happened within the hour: a marker on each chart, v2 right of v1.
        for chart in ("chart-requests", "chart-latency"):
            markers = page.page.locator(f"#{chart} g.deploy")
            assert [m.get_attribute("data-release") for m in markers.all()] == ["v1", "v2"]
            marker = page.page.locator(f"#{chart} g.deploy[data-release=v2]")
            assert marker.locator("text").text_content() == "v2"
            assert (marker.locator("title").text_content() or "").startswith("deployed v2 · first seen ")
            xs = [float(m.locator("line").get_attribute("x1") or 0) for m in markers.all()]
            width = float((page.page.locator(f"#{chart}").get_attribute("viewBox") or "").split()[2])
            assert 44 <= xs[0] <= xs[1] <= width

        page.requests.clear()
        page.page.select_option("#release", "v1")
        page.wait_for(f"document.querySelector('.card .value').textContent === '{ITEMS + V1_OK:,}'")
        assert "release v1" in page.page.locator(".card .detail").first.inner_text()
        assert parse_qs(urlsplit(page.page.url).query) == {"release": ["v1"]}
        page.wait_for("document.querySelector('#releases tbody tr.selected')?.dataset.release === 'v1'")
        calls = {urlsplit(u).path.rsplit("/", 1)[-1]: parse_qs(urlsplit(u).query) for u in page.requests}
        for name in ("stats", "endpoints", "issues", "timeseries"):
            assert calls[name]["release"] == ["v1"], name
        assert calls["issues"]["sparkline"] == ["24"] and calls["issues"]["window"] == ["1h"]
        assert page.texts("#issues tbody td.empty") == ["no issues in this window"], "v1 never raised"
        assert calls["timeseries"]["step"] == ["1h"] and "sparkline" not in calls["endpoints"]
        assert page.page.locator("#release-detail .release-name").inner_text() == "v1"
        assert page.column("endpoints", 0) == ["/items/<int:item_id>", "/ok"]

        # The address keeps the choice: a reload shows v1 again; "all releases" takes it out.
        page.page.reload()
        page.wait_for(f"document.querySelector('.card .value')?.textContent === '{ITEMS + V1_OK:,}'")
        page.wait_for("document.querySelector('#release').value === 'v1'")
        page.page.select_option("#release", "")
        total = 2 * ITEMS + V1_OK + V2_CHECKOUTS
        page.wait_for(f"document.querySelector('.card .value').textContent === '{total:,}'")
        assert urlsplit(page.page.url).query == ""
        assert not page.console, page.console
    finally:
        page.close()


def test_without_releases_the_selector_is_hidden_and_the_panel_says_how(
    browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WSGIMON_RELEASE", *RELEASE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    app, monitor = make_app()
    with werkzeug_server(app) as url:
        record_traffic(url)
        page = Page(browser, url + "/monitoring/?release=gone")
        try:
            # A release in the address that the store does not know falls back to all releases.
            page.wait_for("document.querySelector('.card .value')?.textContent === '47'")
            assert urlsplit(page.page.url).query == ""
            assert page.page.locator("#release-notes").inner_text() == (
                "no release known: set WSGIMON_RELEASE or deploy from a platform that sets one"
            )
            assert page.page.locator("#release-group").is_hidden()
            assert page.page.locator("#releases").is_hidden()
            assert not page.page.locator("#message").is_visible()
            assert page.page.locator("g.deploy").count() == 0
            assert [c for c in page.console if "404" not in c] == [], page.console
        finally:
            page.close()
    monitor.close()


def issues_of(url: str) -> list[dict[str, Any]]:
    """What the page reads: the window's issues with their sparklines."""
    answer = httpx.get(url + "/monitoring/issues", params={"window": "1h", "sparkline": 24}).json()
    return list(answer["issues"])


ISSUE_ROWS = "#issues tbody tr.clickable"
AMOUNT_ROUTES = ("/orders/<raw>", "/refunds/<raw>", "/invoices/<raw>")


@pytest.fixture
def issues_served() -> Iterator[str]:
    """tests/issues_app.py served: parse_amount behind three routes (one ValueError issue), a KeyError in /lookup."""
    app, monitor = create_issues_app(storage="memory://")
    with werkzeug_server(app) as url:
        yield url
    monitor.close()


def test_issues_panel_groups_by_cause_marks_app_frames_and_resolves(browser: Any, issues_served: str) -> None:
    url = issues_served
    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_refreshes(1)
        assert page.texts("#issues tbody td.empty") == ["no issues in this window"]
        with httpx.Client(base_url=url) as client:
            for path in ("/orders/x", "/refunds/y", "/invoices/z", "/lookup/first", "/ok"):
                client.get(path)
        page.refresh_until(f"document.querySelectorAll('{ISSUE_ROWS}').length === 2")
        issues = issues_of(url)
        (amount,) = [issue for issue in issues if issue["type"] == "ValueError"]
        (lookup,) = [issue for issue in issues if issue["type"] == "KeyError"]
        assert page.page.eval_on_selector_all(ISSUE_ROWS, "rows => rows.map(r => r.dataset.issue)") == [
            issue["id"] for issue in issues
        ], "in the API's order"

        row = page.page.locator(f"{ISSUE_ROWS}[data-issue='{amount['id']}']")
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == "open" and cells[1] == f"ValueError: {amount['title']}"
        assert cells[2] == "tests.issues_app in parse_amount" == amount["culprit"]
        assert cells[3] == ", ".join(f"GET {route}" for route in sorted(AMOUNT_ROUTES)), "equal counts by name"
        assert cells[4] == "3" and amount["count"] == 3
        assert row.locator("td:nth-child(6) svg.spark path").count() == 1 and sum(amount["sparkline"]) == 3
        assert all(re.fullmatch(r"just now|\d+ s ago", text) for text in cells[6:8]), cells
        assert cells[8] == (amount["releases"][-1]["release"] if amount["releases"] else "–")
        other = page.page.locator(f"{ISSUE_ROWS}[data-issue='{lookup['id']}']").locator("td").all_inner_texts()
        assert other[1].startswith("KeyError: ") and other[3] == "GET /lookup/<which>" and other[4] == "1"

        # The keyboard opens and closes a row; a click opens it too.
        row.focus()
        row.press("Enter")
        page.wait_for("document.querySelector('#issues tr.issue-detail') !== null")
        assert row.get_attribute("aria-expanded") == "true"
        row.press("Enter")
        page.wait_for("document.querySelector('#issues tr.issue-detail') === null")
        row.click()
        detail = page.page.locator("#issues tr.issue-detail")
        assert detail.locator(".issue-message").inner_text() == amount["message"]
        app_frames = {(f["file"], f["line"]) for f in amount["frames"] if f["in_app"]}
        assert {f["function"] for f in amount["frames"] if f["in_app"]} >= {"parse_amount"}
        shown_app = page.texts("#issues .tb-line.app")
        app_file_lines = [line for line in shown_app if line.lstrip().startswith("File ")]
        assert {tuple(re.findall(r'File "(.*)", line (\d+)', line)[0]) for line in app_file_lines} == {
            (file, str(line)) for file, line in app_frames
        }
        assert "return int(raw)" in [line.strip() for line in shown_app], "the source line after an app frame"
        library = page.texts("#issues .tb-line.lib")
        assert any("flask" in line for line in library) and not any("issues_app.py" in line for line in library)
        styles = page.page.eval_on_selector_all(
            "#issues .tb-line.app, #issues .tb-line.lib",
            "els => els.map(e => [e.classList.contains('app'), ...['fontWeight', 'opacity'].map("
            "k => getComputedStyle(e)[k])])",
        )
        assert {(weight, opacity) for app, weight, opacity in styles if app} == {("700", "1")}, "bold"
        assert {opacity for app, _weight, opacity in styles if not app} == {"0.55"}, "dimmed"
        assert detail.locator("button").all_inner_texts() == ["Resolve", "Ignore"]

        with page.page.expect_request(lambda r: r.method == "POST") as sent:
            detail.locator("button[data-action=resolved]").click()
        assert sent.value.url == f"{url}/monitoring/issues/{amount['id']}"
        assert sent.value.post_data_json == {"status": "resolved"}
        assert sent.value.headers["content-type"] == "application/json"
        page.wait_for(
            f"document.querySelector(\"{ISSUE_ROWS}[data-issue='{amount['id']}'] .chip\").textContent === 'resolved'"
        )
        assert {issue["id"]: issue["status"] for issue in issues_of(url)} == {
            amount["id"]: "resolved",
            lookup["id"]: "open",
        }
        assert detail.locator("button").all_inner_texts() == ["Ignore", "Reopen"], "the detail stays open"
        assert page.page.evaluate("document.activeElement.dataset.issue") == amount["id"], "the row keeps the focus"

        page.page.select_option("#issue-status", "open")
        page.wait_for(f"document.querySelectorAll('{ISSUE_ROWS}').length === 1")
        assert page.page.locator(ISSUE_ROWS).get_attribute("data-issue") == lookup["id"]
        page.page.select_option("#issue-status", "regressed")
        assert page.texts("#issues tbody td.empty") == ["no regressed issues in this window"]
        page.page.select_option("#issue-status", "")

        # Filtered by an endpoint: the issues that broke it.
        page.page.click("#endpoints tbody tr[data-endpoint='/lookup/<which>']")
        page.wait_for(f"document.querySelectorAll('{ISSUE_ROWS}').length === 1")
        assert page.page.locator(ISSUE_ROWS).get_attribute("data-issue") == lookup["id"]
        assert not page.console, page.console
    finally:
        page.close()


def test_a_refused_issue_change_shows_why_inline(browser: Any, issues_served: str) -> None:
    url = issues_served
    httpx.get(url + "/lookup/first")
    (issue,) = issues_of(url)
    refusal = "refused: the Origin is not this site; send the change from this site's dashboard or a client"

    def refuse(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=403, json={"error": refusal})
        else:
            route.continue_()

    page = Page(browser, url + "/monitoring/")
    try:
        page.wait_for(f"document.querySelectorAll('{ISSUE_ROWS}').length === 1")
        page.page.route("**/monitoring/issues/*", refuse)
        page.page.click(ISSUE_ROWS)
        page.page.click("#issues tr.issue-detail button[data-action=ignored]")
        page.wait_for("document.querySelector('#issues .issue-error') !== null")
        assert page.page.locator("#issues .issue-error").inner_text() == "Not changed: " + refusal
        assert page.page.locator(f"{ISSUE_ROWS} .chip").inner_text() == "open"
        assert issues_of(url)[0]["status"] == "open"
        # The refusal stays until the next action, whatever the auto refresh does.
        before = page.refreshes()
        page.page.click("#refresh-now")
        page.wait_refreshes(before + 1)
        assert page.page.locator("#issues .issue-error").inner_text() == "Not changed: " + refusal
        assert [line for line in page.console if "403" not in line] == [], page.console
    finally:
        page.close()
