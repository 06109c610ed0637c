"""The dashboard's view in its address, and its cards and tables at a laptop's and a phone's width, in a real
headless Chromium against a real server with recorded traffic.

The page takes any query string: it reads ``window=``, ``endpoint=``, ``method=``, ``release=`` and ``issue=``
(the report links to ``?issue=<id>``), drops a value it cannot use and shows its default, leaves other parameters
(``utm_source=``) in the address as they came, and writes the view back with ``history.replaceState`` as it changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask, request

from tests.servers import werkzeug_server
from tests.test_dashboard_browser import Page
from wsgimon import MonitorMiddleware

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

LONG_ROUTE = "/api/v2/customers/<int:customer_id>/orders/<int:order_id>/line-items"
#: the /health answer of a deployment with an open incident: "degraded", with a long reason
DEGRADED = {
    "status": "degraded",
    "checks": {
        "store": {"status": "ok", "detail": "ok"},
        "incidents": {
            "status": "degraded",
            "detail": "1 open incident: #12 error rate above 5% on POST " + LONG_ROUTE + " for 10 min",
        },
    },
}
SIZES = {1280: 800, 390: 844}


def make_app() -> Flask:
    app = Flask("dashboard-address")

    @app.route("/x", methods=["GET", "POST"])
    def x() -> str:
        return "x"

    @app.route(LONG_ROUTE, methods=["GET", "POST"])
    def line_items(customer_id: int, order_id: int) -> tuple[str, int]:
        return "items", int(request.args.get("status", "200"))

    @app.route("/fail")
    def fail() -> str:
        raise ValueError("the payment provider said no")

    app.logger.disabled = True
    app.wsgi_app = MonitorMiddleware(app.wsgi_app, storage="memory://")  # type: ignore[method-assign]
    return app


def record_traffic(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for _ in range(6):
            client.get("/x")
        for _ in range(2):
            client.post("/x")
        for n, status in enumerate([200] * 20 + [201, 204, 404, 409, 422, 500, 503]):
            client.get(f"/api/v2/customers/{n}/orders/{n * 7}/line-items", params={"status": status})
        for _ in range(3):
            client.get("/fail")
        client.get("/nothing/here")


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with werkzeug_server(make_app()) as url:
        record_traffic(url)
        yield url


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.page.url).query, keep_blank_values=True)


def active_window(page: Page) -> list[str]:
    return page.texts("#windows button.active")


def calls_to(page: Page, resource: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(u).query) for u in page.requests if urlsplit(u).path == "/monitoring" + resource]


def cards(page: Page) -> dict[str, tuple[str, str]]:
    rows = page.page.eval_on_selector_all(
        ".card",
        "cards => cards.map(c => [c.querySelector('.label').textContent, c.querySelector('.value').textContent,"
        " c.querySelector('.detail')?.textContent || ''])",
    )
    return {label: (value, detail) for label, value, detail in rows}


def test_the_window_comes_from_the_address_and_goes_back_to_it(browser: Any, served: str) -> None:
    page = Page(browser, served + "/monitoring/?window=7d&utm_source=slack")
    try:
        assert page.response.status == 200 and page.response.headers["content-type"].startswith("text/html")
        page.wait_refreshes(1)
        assert active_window(page) == ["7d"]
        assert calls_to(page, "/stats")[0]["window"] == ["7d"]
        assert cards(page)["requests"][1] == "window 7d"
        page.page.evaluate("window.__notReloaded = true")

        before = page.refreshes()
        page.page.click("#windows button[data-window='1h']")
        page.wait_refreshes(before + 1)
        # The choice is in the address at once, without a reload; utm_source is kept as it came.
        assert query_of(page) == {"window": ["1h"], "utm_source": ["slack"]}
        assert page.page.evaluate("window.__notReloaded") is True
        assert active_window(page) == ["1h"] and calls_to(page, "/stats")[-1]["window"] == ["1h"]
        assert page.page.evaluate("localStorage.getItem('wsgimon.window')") == "1h"

        # The address is what a reload (or a colleague given the link) opens.
        page.page.reload()
        page.wait_refreshes(1)
        assert active_window(page) == ["1h"] and query_of(page)["window"] == ["1h"]
        assert not page.console, page.console
    finally:
        page.close()


def test_bad_or_unknown_parameters_open_the_default_view_without_an_error(browser: Any, served: str) -> None:
    address = "/monitoring/?window=banana&method=GET&issue=not-an-id&fbclid=abc&release=&x=%00"
    page = Page(browser, served + address)
    try:
        assert page.response.status == 200
        page.wait_refreshes(1)
        assert active_window(page) == ["1h"]
        assert page.page.locator("#message").is_hidden() and page.page.locator("#filter-chip").is_hidden()
        # The values the page could not use are gone from the address; the rest stays.
        assert query_of(page) == {"fbclid": ["abc"], "x": ["\x00"]}
        assert cards(page)["requests"][0] == "39"
        assert not page.console, page.console
    finally:
        page.close()
    # Only the page is lenient: the JSON API still refuses what it does not know.
    strict = httpx.get(served + "/monitoring/stats", params={"window": "1h", "utm_source": "slack"})
    assert strict.status_code == 400 and "unknown parameter" in strict.json()["error"]
    assert httpx.get(served + "/monitoring/stats", params={"window": "banana"}).status_code == 400


def test_an_endpoint_in_the_address_opens_the_page_filtered(browser: Any, served: str) -> None:
    # Without its method: the one with the most requests, then written to the address.
    page = Page(browser, served + "/monitoring/?endpoint=/x")
    try:
        page.wait_refreshes(1)
        assert page.page.locator("#filter-chip").is_visible() and page.texts("#filter-name") == ["GET /x"]
        assert query_of(page) == {"endpoint": ["/x"], "method": ["GET"]}
        assert cards(page)["requests"] == ("6", "GET /x · window 1h")
        series = calls_to(page, "/timeseries")
        assert series and all(q["endpoint"] == ["/x"] and q["method"] == ["GET"] for q in series)
        assert page.page.locator("#endpoints tr.selected").get_attribute("data-method") == "GET"

        before = page.refreshes()
        page.page.click("#filter-clear")
        page.wait_refreshes(before + 1)
        assert query_of(page) == {}
        before = page.refreshes()
        page.page.click(f"#endpoints tbody tr[data-endpoint='{LONG_ROUTE}']")
        page.wait_refreshes(before + 1)
        assert query_of(page) == {"endpoint": [LONG_ROUTE], "method": ["GET"]}
        assert not page.console, page.console
    finally:
        page.close()

    page = Page(browser, served + "/monitoring/?endpoint=/x&method=post&window=24h")
    try:
        page.wait_refreshes(1)
        assert page.texts("#filter-name") == ["POST /x"] and active_window(page) == ["24h"]
        assert cards(page)["requests"][0] == "2"
        assert query_of(page) == {"endpoint": ["/x"], "method": ["POST"], "window": ["24h"]}
    finally:
        page.close()


def test_the_reports_issue_link_opens_that_issue(browser: Any, served: str) -> None:
    issues = httpx.get(served + "/monitoring/issues", params={"window": "1h"}).json()["issues"]
    (issue,) = [i for i in issues if i["type"] == "ValueError"]
    page = Page(browser, served + f"/monitoring/?issue={issue['id']}")
    try:
        page.wait_refreshes(1)
        page.wait_for("!!document.querySelector('#issues tr.issue-detail')")
        assert page.page.locator("#issues tr.issue-detail").get_attribute("data-issue") == issue["id"]
        assert page.texts("#issues .issue-message") == ["the payment provider said no"]
        page.page.click(f"#issues tbody tr.clickable[data-issue='{issue['id']}']")
        assert page.page.locator("#issues tr.issue-detail").count() == 0 and query_of(page) == {}
        page.page.click(f"#issues tbody tr.clickable[data-issue='{issue['id']}']")
        assert query_of(page) == {"issue": [issue["id"]]}
    finally:
        page.close()

    # An issue outside the window's list (a weekly report's) is read by itself and shown open.
    page = Page(browser, "about:blank")
    try:
        page.page.route(
            re.compile(r"/monitoring/issues\?"), lambda route: route.fulfill(json={"window": "5m", "issues": []})
        )
        page.page.goto(served + f"/monitoring/?window=5m&issue={issue['id']}")
        page.wait_for("!!document.querySelector('#issues tr.issue-detail')")
        assert page.texts("#issues .issue-message") == ["the payment provider said no"]
        assert any(urlsplit(u).path == f"/monitoring/issues/{issue['id']}" for u in page.requests)
        assert not page.console, page.console
    finally:
        page.close()

    # One the store does not know: the page opens as usual and drops it from the address.
    page = Page(browser, served + "/monitoring/?issue=deadbeef&window=24h")
    try:
        page.wait_refreshes(1)
        page.wait_for("!new URLSearchParams(location.search).has('issue')")
        assert query_of(page) == {"window": ["24h"]} and page.page.locator("#message").is_hidden()
    finally:
        page.close()


#: per card: how far its box and its value overflow and how many lines its value takes; per table wrapper and for the
#: page: how far they overflow (> 0: a horizontal scroll)
LAYOUT = """() => {
  const lines = (node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    return range.getClientRects().length;
  };
  const cards = [...document.querySelectorAll('.card')].map((c) => {
    const value = c.querySelector('.value');
    return { label: c.querySelector('.label').textContent, over: c.scrollWidth - c.clientWidth,
             valueOver: value.scrollWidth - value.clientWidth, valueLines: lines(value.firstChild || value) };
  });
  const wraps = [...document.querySelectorAll('.table-wrap')].filter((w) => w.offsetParent)
    .map((w) => ({ table: w.querySelector('table').id, over: w.scrollWidth - w.clientWidth }));
  return { cards, wraps, page: document.documentElement.scrollWidth - document.documentElement.clientWidth };
}"""


@pytest.mark.parametrize("width", sorted(SIZES, reverse=True))
def test_cards_and_tables_fit_a_laptop_and_a_phone(browser: Any, served: str, width: int) -> None:
    page = Page(browser, "about:blank")
    try:
        page.page.set_viewport_size({"width": width, "height": SIZES[width]})
        page.page.route("**/monitoring/health*", lambda route: route.fulfill(json=DEGRADED))
        page.page.goto(served + "/monitoring/")
        page.wait_refreshes(1)
        layout = page.page.evaluate(LAYOUT)
        shown = {card["label"]: card for card in layout["cards"]}
        assert shown["health"]["valueLines"] == 1, "the health word is not broken across lines"
        assert cards(page)["health"][0] == "degraded"
        for card in layout["cards"]:
            assert card["over"] <= 0 and card["valueOver"] <= 0, card
            assert card["valueLines"] == 1, card
        assert layout["page"] <= 0, "nothing makes the page itself scroll sideways"
        wraps = {wrap["table"]: wrap["over"] for wrap in layout["wraps"]}
        if width >= 1280:
            assert wraps["endpoints"] <= 0, "the endpoints table is not clipped at 1280 px"
            assert all(over <= 0 for over in wraps.values()), wraps
        else:
            assert wraps["endpoints"] > 0, "a phone scrolls the table inside its wrapper"
        # Every rate says over what.
        rate, per_minute_span = cards(page)["requests / min"]
        assert re.fullmatch(r"last (5 min|\d+ s \(since start\))", per_minute_span), per_minute_span
        assert cards(page)["error rate"][1] == "5 errors in 1h"
        assert cards(page)["client error rate"][1].endswith(" 4xx in 1h")
        page.page.screenshot(path=str(Path(f"/tmp/dash-{width}.png")), full_page=True)
        assert not page.console, page.console
    finally:
        page.close()
