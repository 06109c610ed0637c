"""Failures grouped by cause: fingerprints that survive edits and deploys, the lifecycle, the API and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import call, get_json
from tests.issues_app import create_app
from tests.servers import ROOT, gunicorn_server, wait_until
from tests.standins.discord import DiscordStandIn
from wsgimon import MonitorMiddleware
from wsgimon.recording.fingerprint import Fingerprinter, normalize_message
from wsgimon.wsgi.captured import CapturedException


def issues(monitor: MonitorMiddleware, query: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = get_json(monitor, "/monitoring/issues" + query)["issues"]
    return rows


def post(monitor: MonitorMiddleware, path: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}
    environ.update(headers)
    result = call(monitor, path, method="POST", **environ)
    assert result.status is not None
    return int(result.status[:3]), json.loads(result.body)


def test_one_helper_failing_under_three_routes_is_one_issue_naming_all_three() -> None:
    _, monitor = create_app()
    for n, route in enumerate(("orders", "refunds", "invoices", "orders")):
        assert call(monitor, f"/{route}/{n}x{n * 7}").status == "500 INTERNAL SERVER ERROR"
    (issue,) = issues(monitor)
    assert issue["type"] == "ValueError" and issue["count"] == 4 and issue["total"] == 4
    # Different numbers in the messages, one title with placeholders; the latest message as it was.
    assert issue["title"] == "invalid literal for int() with base <num>: <str>"
    assert issue["message"] == "invalid literal for int() with base 10: '3x21'"
    assert {(e["endpoint"], e["count"]) for e in issue["endpoints"]} == {
        ("/orders/<raw>", 2),
        ("/refunds/<raw>", 1),
        ("/invoices/<raw>", 1),
    }
    assert issue["culprit"] == "tests.issues_app in parse_amount" and issue["status"] == "open"
    app_frames = [f["function"] for f in issue["frames"] if f["in_app"]]
    assert app_frames[-1] == "parse_amount" and not any(f["in_app"] for f in issue["frames"] if "flask" in f["file"])
    # /errors keeps its per-endpoint view.
    assert sorted(row["endpoint"] for row in get_json(monitor, "/monitoring/errors")["errors"]) == [
        "/invoices/<raw>",
        "/orders/<raw>",
        "/refunds/<raw>",
    ]
    monitor.close()


def test_two_key_errors_at_two_lines_of_one_view_are_two_issues() -> None:
    _, monitor = create_app()
    for which in ("first", "second", "first"):
        call(monitor, f"/lookup/{which}")
    found = sorted((row["count"], row["message"]) for row in issues(monitor))
    assert found == [(1, "'cocoa'"), (2, "'coffee'")]
    monitor.close()


def test_chained_exceptions_are_told_apart_by_their_cause() -> None:
    _, monitor = create_app()
    for kind in ("key", "index", "key"):
        call(monitor, f"/chained/{kind}")
    rows = issues(monitor)
    assert sorted(row["count"] for row in rows) == [1, 2] and {row["type"] for row in rows} == {"RuntimeError"}
    assert all("The above exception was the direct cause" in row["traceback"] for row in rows)
    monitor.close()


def test_a_5xx_without_an_exception_is_an_issue_of_its_endpoint() -> None:
    _, monitor = create_app()
    for _ in range(3):
        call(monitor, "/unavailable")
    call(monitor, "/ok")
    (issue,) = issues(monitor)
    assert issue["type"] == "503 Service Unavailable" and issue["count"] == 3 and issue["traceback"] is None
    assert issue["endpoints"] == [{"endpoint": "/unavailable", "method": "GET", "count": 3}]
    monitor.close()


def _raised_outside_the_app(function: Any, *args: Any) -> BaseException:
    """An exception whose traceback has no frame of this code base: caught in generated code."""
    namespace: dict[str, Any] = {}
    source = textwrap.dedent(
        """
        def run(function, *args):
            try:
                function(*args)
            except Exception as exc:
                return exc
        """
    )
    exec(compile(source, "<generated>", "exec"), namespace)  # noqa: S102 - a frame that is nobody's file
    exc: BaseException = namespace["run"](function, *args)
    return exc


def test_without_a_frame_of_the_app_the_normalised_message_tells_issues_apart() -> None:
    fingerprinter = Fingerprinter()

    def grouping(exc: BaseException) -> str:
        return fingerprinter.group(CapturedException(exc)).fingerprint

    first = grouping(_raised_outside_the_app(int, "order-41"))
    assert grouping(_raised_outside_the_app(int, "order-42")) == first  # a quoted value differs
    assert grouping(_raised_outside_the_app(bytes.fromhex, "zz")) != first
    assert normalize_message(
        "user 7f3c2a1b-9d4e-4c1a-8b2f-0123456789ab at 0x7fe3 has 12 items, 3.5 kg, id abcdef0123"
    ) == ("user <uuid> at <hex> has <num> items, <num> kg, id <hex>")


def test_an_edit_above_and_a_new_deploy_directory_keep_the_fingerprint(tmp_path: Path) -> None:
    """The same code, moved down by an unrelated edit, reindented, and deployed into another
    directory, is the same issue (two processes, one store)."""
    store = tmp_path / "issues.sqlite3"
    view = """
        def parse_amount(raw):
            return  int(raw)

        def application(environ, start_response):
            parse_amount(environ["PATH_INFO"][1:])
    """
    edited = '''
        """Shop views."""
        import logging

        LOG = logging.getLogger(__name__)


        def parse_amount(raw):
            # amounts come from the path
                return int(raw)

        def application(environ, start_response):
            LOG.debug("called")
            parse_amount(environ["PATH_INFO"][1:])
    '''
    program = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from shop_views import application
        from tests.helpers import call
        from wsgimon import MonitorMiddleware
        monitor = MonitorMiddleware(application, storage=sys.argv[2])
        call(monitor, "/12x")
        monitor.close()
        """
    )
    for release, source in (("1", view), ("2", edited)):
        directory = tmp_path / "releases" / release
        directory.mkdir(parents=True)
        (directory / "shop_views.py").write_text(textwrap.dedent(source))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", program, str(directory), f"sqlite:///{store}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    monitor = MonitorMiddleware(lambda e, s: [], storage=f"sqlite:///{store}")
    (issue,) = issues(monitor, "?window=all")
    assert issue["count"] == 2 and issue["culprit"] == "shop_views in parse_amount"
    assert "line 10, in parse_amount" in issue["traceback"]  # the latest occurrence, from the edited file
    monitor.close()


def custom_fingerprint(exc: BaseException, environ: dict[str, Any]) -> str | None:
    """Every ValueError is one issue, whatever raised it; others keep wsgimon's grouping."""
    return "bad input" if isinstance(exc, ValueError) else None


def test_a_fingerprint_callable_overrides_the_grouping(monkeypatch: pytest.MonkeyPatch) -> None:
    _, monitor = create_app(fingerprint=custom_fingerprint)
    for path in ("/orders/x", "/refunds/y", "/lookup/first", "/lookup/second"):
        call(monitor, path)
    assert sorted(row["count"] for row in issues(monitor)) == [1, 1, 2]
    monitor.close()
    monkeypatch.setenv("WSGIMON_FINGERPRINT", "tests.test_issues:custom_fingerprint")
    _, monitor = create_app()
    assert monitor.config.fingerprint is custom_fingerprint
    monitor.close()
    monkeypatch.setenv("WSGIMON_FINGERPRINT", "tests.test_issues:nothing_here")
    with pytest.raises(ValueError, match="fingerprint"):
        create_app()


@pytest.mark.internal_errors
def test_a_failing_fingerprint_callable_falls_back_and_the_request_goes_on() -> None:
    def broken(exc: BaseException, environ: dict[str, Any]) -> str | None:
        raise RuntimeError("bug in the user's callable")

    _, monitor = create_app(fingerprint=broken)
    assert call(monitor, "/orders/x").status == "500 INTERNAL SERVER ERROR"
    assert call(monitor, "/ok").status == "200 OK"
    (issue,) = issues(monitor)
    assert issue["culprit"] == "tests.issues_app in parse_amount"
    monitor.close()


def test_resolve_then_seen_again_is_a_regression_and_ignore_holds_until_its_count() -> None:
    _, monitor = create_app()
    call(monitor, "/orders/x")
    call(monitor, "/lookup/first")
    ids = {row["type"]: row["id"] for row in issues(monitor)}
    status, body = post(monitor, f"/monitoring/issues/{ids['ValueError']}", {"status": "resolved"})
    assert status == 200 and body["status"] == "resolved"
    status, body = post(monitor, f"/monitoring/issues/{ids['KeyError']}", {"status": "ignored", "count": 2})
    assert status == 200 and body["status"] == "ignored" and body["ignored_until_count"] == 3
    assert [row["id"] for row in issues(monitor, "?status=resolved")] == [ids["ValueError"]]
    call(monitor, "/refunds/y")
    call(monitor, "/lookup/first")
    after = {row["type"]: row["status"] for row in issues(monitor)}
    assert after == {"ValueError": "regressed", "KeyError": "ignored"}
    call(monitor, "/lookup/first")  # the second more occurrence: the ignore is over
    assert {row["type"]: row["status"] for row in issues(monitor)}["KeyError"] == "open"
    status, body = post(monitor, f"/monitoring/issues/{ids['ValueError']}", {"status": "open"})
    assert status == 200 and body["status"] == "open"
    monitor.close()


def test_an_ignore_for_a_while_ends_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    _, monitor = create_app()
    call(monitor, "/orders/x")
    (issue,) = issues(monitor)
    status, body = post(monitor, f"/monitoring/issues/{issue['id']}", {"status": "ignored", "for": "1h"})
    assert status == 200 and body["status"] == "ignored"
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    assert get_json(monitor, f"/monitoring/issues/{issue['id']}")["status"] == "open"
    monitor.close()


def test_resolved_in_a_release_is_not_regressed_by_the_older_release_still_running(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/rolling.sqlite3"
    _, old = create_app(storage=store, release="v1")
    call(old, "/orders/x")
    (issue,) = issues(old)
    _, new = create_app(storage=store, release="v2")
    call(new, "/ok")
    new.flush()
    status, body = post(new, f"/monitoring/issues/{issue['id']}", {"status": "resolved", "in_release": "v2"})
    assert status == 200 and body["resolved_in"] == "v2"
    call(old, "/orders/y")  # v1 still serves during the rolling deploy: the fix is not in it
    assert issues(old)[0]["status"] == "resolved"
    call(new, "/orders/z")  # the release with the fix fails the same way: it came back
    (again,) = issues(new)
    assert again["status"] == "regressed" and again["count"] == 3
    assert {r["release"]: r["count"] for r in again["releases"]} == {"v1": 2, "v2": 1}
    old.close()
    new.close()


def test_filters_window_status_release_endpoint_and_the_issue_over_time(tmp_path: Path) -> None:
    _, monitor = create_app(storage=f"sqlite:///{tmp_path}/filters.sqlite3", release="v7")
    for path in ("/orders/a", "/refunds/b", "/lookup/first", "/unavailable"):
        call(monitor, path)
    assert len(issues(monitor, "?window=5m")) == 3
    assert [row["type"] for row in issues(monitor, "?endpoint=/lookup/<which>")] == ["KeyError"]
    assert len(issues(monitor, "?release=v7")) == 3
    assert get_json(monitor, "/monitoring/issues?release=v6")["error"].startswith("unknown release")
    assert issues(monitor, "?status=regressed") == []
    rows = issues(monitor, "?sparkline=12&limit=2")
    assert len(rows) == 2 and all(len(row["sparkline"]) == 12 and sum(row["sparkline"]) >= 1 for row in rows)
    value_error = next(row for row in issues(monitor) if row["type"] == "ValueError")
    one = get_json(monitor, f"/monitoring/issues/{value_error['id']}?window=1h")
    assert one["count"] == 2 and sum(point["count"] for point in one["occurrences"]) == 2
    assert one["step_s"] == 60 and len(one["occurrences"]) >= 60
    monitor.close()


def test_bad_writes_get_clear_4xx_answers_and_other_sites_are_refused() -> None:
    _, monitor = create_app()
    call(monitor, "/orders/x")
    (issue,) = issues(monitor)
    path = f"/monitoring/issues/{issue['id']}"
    assert post(monitor, path, {"status": "regressed"}) == (
        400,
        {"error": "status must be one of open, resolved, ignored, got 'regressed'"},
    )
    assert post(monitor, path, b"status=resolved")[0] == 400
    assert post(monitor, path, {"status": "ignored", "for": "soon"})[0] == 400
    assert post(monitor, path, {"status": "resolved", "count": 3})[0] == 400
    assert post(monitor, path, {"status": "resolved", "why": "fixed"})[0] == 400
    assert post(monitor, "/monitoring/issues/0123456789ab", {"status": "resolved"})[0] == 404
    assert post(monitor, "/monitoring/issues/not-an-id", {"status": "resolved"})[0] == 400
    assert post(monitor, path, {"status": "resolved"}, CONTENT_TYPE="text/plain")[0] == 415
    assert post(monitor, path, {"status": "resolved", "in_release": "x" * 20_000})[0] == 413
    for headers in (
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_SEC_FETCH_SITE": "same-site"},
    ):
        status, body = post(monitor, path, {"status": "resolved"}, **headers)
        assert status == 403, headers
    assert issues(monitor)[0]["status"] == "open"  # nothing above changed it
    same_site = {"HTTP_ORIGIN": "http://localhost", "HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_HOST": "localhost"}
    assert post(monitor, path, {"status": "resolved"}, **same_site)[0] == 200
    # Writes need the same access as reads.
    _, guarded = create_app(token="t0ken-for-the-issues-api-123")
    call(guarded, "/orders/x")
    guarded.flush()
    issue_id = guarded.store.issues(None)[0].id
    assert post(guarded, f"/monitoring/issues/{issue_id}", {"status": "resolved"})[0] == 401
    status, _ = post(
        guarded,
        f"/monitoring/issues/{issue_id}",
        {"status": "resolved"},
        HTTP_AUTHORIZATION="Bearer t0ken-for-the-issues-api-123",
    )
    assert status == 200
    monitor.close()
    guarded.close()


def test_the_cli_lists_resolves_and_ignores_issues(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/cli.sqlite3"
    _, monitor = create_app(storage=store)
    for path in ("/orders/a", "/refunds/b", "/lookup/first"):
        call(monitor, path)
    monitor.flush()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSGIMON_STORAGE": store}

    def wsgimon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wsgimon", "issues", *args], env=env, capture_output=True, text=True, timeout=60
        )

    listed = wsgimon()
    assert listed.returncode == 0, listed.stderr
    value_error = next(line.split()[0] for line in listed.stdout.splitlines() if "ValueError" in line)
    assert "GET /orders/<raw>, GET /refunds/<raw>" in listed.stdout
    done = wsgimon("resolve", value_error[:6])
    assert done.returncode == 0 and f"{value_error} is resolved" in done.stdout
    key_error = next(row["id"] for row in json.loads(wsgimon("list", "--json").stdout) if row["type"] == "KeyError")
    assert wsgimon("ignore", key_error, "--for", "7d").returncode == 0
    statuses = {row["type"]: row["status"] for row in json.loads(wsgimon("--json").stdout)}
    assert statuses == {"ValueError": "resolved", "KeyError": "ignored"}
    assert {row.status for row in monitor.store.issues(None)} == {"resolved", "ignored"}
    bad = wsgimon("resolve", "zz")
    assert bad.returncode == 2 and "hexadecimal" in bad.stderr and "Traceback" not in bad.stderr
    monitor.close()


@pytest.mark.slow
def test_under_three_workers_a_resolved_issue_seen_again_regresses_and_alerts_once(tmp_path: Path) -> None:
    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_ALERT_RULES": "exception",
        "WSGIMON_ALERT_INTERVAL_S": "0.2",
        "WSGIMON_ALERT_GROUP_WAIT_S": "0.3",
        "WSGIMON_ALERT_GROUP_INTERVAL_S": "1",
        "WSGIMON_ALERT_RESOLVE_AFTER_S": "60",
    }
    with (
        DiscordStandIn() as discord,
        gunicorn_server(
            "tests.issues_app:wsgi()", "-w", "3", env={**env, "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url}
        ) as (url, _),
    ):

        def fail(count: int) -> None:
            def send(paths: list[str]) -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    for path in paths:
                        assert client.get(path).status_code == 500

            paths = [f"/{('orders', 'refunds', 'invoices')[n % 3]}/{n}x" for n in range(count)]
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(send, [paths[i::6] for i in range(6)]))

        def issue() -> dict[str, Any]:
            rows = httpx.get(url + "/monitoring/issues", timeout=10).json()["issues"]
            assert len(rows) == 1, rows
            found: dict[str, Any] = rows[0]
            return found

        fail(30)
        wait_until(lambda: issue()["total"] == 30, timeout=20)
        (first,) = discord.wait_for_requests(1)
        assert first.json["embeds"][0]["title"].startswith("Incident #1: ValueError in GET")
        resolved = httpx.post(url + f"/monitoring/issues/{issue()['id']}", json={"status": "resolved"}, timeout=10)
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        # Resolved by hand: its incident is over at once (no hold-down for what somebody said is fixed).
        wait_until(lambda: len(discord.requests) == 2, timeout=20)
        fail(30)
        wait_until(lambda: issue()["total"] == 60 and issue()["status"] == "regressed", timeout=20)
        wait_until(lambda: len(discord.requests) >= 3, timeout=20)
        # A decision to wait on, not the clock: the deployment evaluated again after the regression was told.
        told = evaluated(url)
        wait_until(lambda: evaluated(url) > told, timeout=20)
        wait_until(lambda: all(a["deliveries"]["discord"]["status"] == "delivered" for a in alerts(url)), timeout=20)
        titles = [r.json["embeds"][0]["title"].replace("\\", "") for r in discord.requests if r.json]
        assert len(titles) == 3, titles
        assert titles[1].startswith("Incident #1 resolved after")
        assert titles[2].startswith("Incident #2: Regression: ValueError"), titles
        assert [a["title"] for a in alerts(url)] == titles[::-1]
        description = discord.requests[2].json["embeds"][0]["description"].replace("\\", "")
        for route in ("/orders/<raw>", "/refunds/<raw>", "/invoices/<raw>"):
            assert route in titles[2] + description


def evaluated(url: str) -> str:
    when: str = httpx.get(url + "/monitoring/alerts", timeout=10).json()["evaluated_at"]
    return when


def alerts(url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(url + "/monitoring/alerts", timeout=10).json()["alerts"]
    return rows
