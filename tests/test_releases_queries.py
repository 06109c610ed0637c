"""A release that makes an endpoint run many more queries per request is named as a regression;
one that changes nothing is not. Real queries through instrument_dbapi, a real SQLite store shared
by the releases' middlewares, releases set by the ``release`` option."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware, instrument_dbapi
from wsgimon.config import Config
from wsgimon.reporting.period import period_from
from wsgimon.reporting.report import build_report, render_report
from wsgimon.stats.aggregate import Aggregate
from wsgimon.stats.releases import find_regressions, summarize

#: requests per endpoint and release: the regression rules' default minimum (200) on both sides
REQUESTS = 220


def shop(db_path: Path, lines_queried_one_by_one: bool) -> Any:
    """``/orders`` reads an order's 11 lines in one query, or one query per line (an N+1: 1 → 12);
    ``/items`` runs the same 2 queries in every release."""
    connection = sqlite3.connect(db_path, check_same_thread=False)
    connection.execute("CREATE TABLE IF NOT EXISTS lines (id INTEGER PRIMARY KEY, order_id INTEGER, sku TEXT)")
    if not connection.execute("SELECT count(*) FROM lines").fetchone()[0]:
        connection.executemany("INSERT INTO lines (order_id, sku) VALUES (7, ?)", [(f"sku-{n}",) for n in range(11)])
        connection.commit()
    db = instrument_dbapi(connection)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/orders":
            if lines_queried_one_by_one:
                ids = [row[0] for row in db.execute("SELECT id FROM lines WHERE order_id = 7").fetchall()]
                for line in ids:
                    db.execute("SELECT sku FROM lines WHERE id = ?", (line,)).fetchone()
            else:
                db.execute("SELECT id, sku FROM lines WHERE order_id = 7").fetchall()
        else:
            db.execute("SELECT count(*) FROM lines").fetchone()
            db.execute("SELECT sku FROM lines WHERE id = 1").fetchone()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def serve(tmp_path: Path, release: str, one_by_one: bool) -> MonitorMiddleware:
    monitor = MonitorMiddleware(
        shop(tmp_path / "shop.sqlite3", one_by_one), storage=f"sqlite:///{tmp_path}/store.sqlite3", release=release
    )
    for _ in range(REQUESTS):
        assert call(monitor, "/orders").status == "200 OK"
        assert call(monitor, "/items").status == "200 OK"
    monitor.flush()
    return monitor


def test_a_release_that_runs_1_then_12_queries_per_request_is_a_regression_and_an_unchanged_one_is_not(
    tmp_path: Path,
) -> None:
    serve(tmp_path, "v1", one_by_one=False).close()
    serve(tmp_path, "v2", one_by_one=True).close()
    monitor = serve(tmp_path, "v3", one_by_one=True)

    rows = {row["release"]: row for row in get_json(monitor, "/monitoring/releases")["releases"]}
    assert rows["v2"]["compared_with"] == "v1" and rows["v3"]["compared_with"] == "v2"
    assert rows["v2"]["regressions"] == [
        {
            "endpoint": "/orders",
            "method": "GET",
            "metric": "queries",
            "before": 1.0,
            "after": 12.0,
            "requests_before": REQUESTS,
            "requests_after": REQUESTS,
        }
    ]
    assert rows["v3"]["regressions"] == [], "the same 12 queries per request as the release before: no change"

    summaries = {s.row.release: s for s in summarize(monitor.store, monitor.config, [], 10)}
    (regression,) = summaries["v2"].regressions
    assert regression.change == "1 → 12 queries per request"

    # The report of the week the releases were deployed in names it the same way.
    period = period_from(datetime.now(timezone.utc).date(), "week", timezone.utc)
    report = build_report(monitor.store, period, Config.build({"storage": "memory://"}))
    text, html = render_report(report)
    assert "GET /orders 1 -> 12 queries per request" in text
    assert "1 → 12 queries per request" in html
    v3_line = next(line for line in text.splitlines() if line.strip().startswith("v3 "))
    assert v3_line.endswith("against v2: no regression")
    monitor.close()


def test_a_release_before_one_that_captured_no_query_is_not_compared_on_queries(tmp_path: Path) -> None:
    """Recorded with query capture off, a release's endpoints would seem to run none: no claim then."""
    old = MonitorMiddleware(
        shop(tmp_path / "shop.sqlite3", False),
        storage=f"sqlite:///{tmp_path}/store.sqlite3",
        release="v1",
        capture_db=False,
    )
    for _ in range(REQUESTS):
        call(old, "/orders")
    old.close()
    new = serve(tmp_path, "v2", one_by_one=True)
    (row,) = [r for r in get_json(new, "/monitoring/releases")["releases"] if r["release"] == "v2"]
    assert row["compared_with"] == "v1" and row["regressions"] == []
    new.close()


def queried(requests: int, queries: list[int]) -> Aggregate:
    """``requests`` 10 ms requests; the first ones ran ``queries[i]`` queries each, the others none."""
    agg = Aggregate()
    spent = [(n, n * 0.2, 0, 0.0) for n in queries if n]
    agg.add_many([10.0] * requests, 200, False, False, None, 1_700_000_000.0, spent=spent)
    return agg


@pytest.mark.parametrize(
    ("before", "after", "named"),
    [
        ([1] * 300, [12] * 300, True),  # 1 → 12
        ([3] * 300, [8] * 300, True),  # +5 and ×2.7: the least named
        ([2] * 300, [6] * 300, False),  # ×3 but only +4
        ([10] * 300, [16] * 300, False),  # +6 but only ×1.6
        ([0] * 300, [7] * 300, True),  # none before, in a release that ran queries elsewhere
        ([1] * 300, [1] * 150 + [30] * 150, True),  # half the requests now run 30: 15.5 on average
        ([5] * 300, [5] * 300, False),
        ([1] * 300, [40] * 150, False),  # 150 requests after: not enough to claim anything
    ],
)
def test_the_queries_rule_needs_five_more_and_twice_as_many_per_request(
    before: list[int], after: list[int], named: bool
) -> None:
    orders, other = ("/orders", "GET"), ("/items", "GET")
    found = find_regressions(
        {orders: queried(len(before), before), other: queried(300, [2] * 300)},
        {orders: queried(len(after), after), other: queried(300, [2] * 300)},
    )
    assert [(r.endpoint, r.metric) for r in found] == ([("/orders", "queries")] if named else [])
