"""Alerts end to end: incidents over real apps, the real dispatcher, a Discord stand-in, a webhook receiver and a real
SMTP server; once per deployment, and "resolved" only when it is.

Time: the alert engine and the recorder take a clock (a seam); :class:`Sim` moves it forward in steps, and each step
waits for the engine to have evaluated at that time (a decision, not a sleep). Minutes pass in milliseconds.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.helpers import call, get_json
from tests.seeding import batch_of
from tests.servers import ROOT, free_port, gunicorn_server, wait_until
from tests.standins.discord import DiscordStandIn, RecordingServer
from tests.standins.smtp import smtp_server
from wsgimon import MonitorMiddleware
from wsgimon.alerts.dispatcher import dispatcher
from wsgimon.stores.records import ProcessRow


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


_opened: list[MonitorMiddleware] = []


@pytest.fixture(autouse=True)
def closed_at_the_end() -> Iterator[None]:
    """Every middleware a test made is closed, even when the test fails half way (its clock holds it)."""
    yield
    while _opened:
        _opened.pop().close()


def parse_amount(raw: str) -> int:
    return int(raw)


def failing_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    """/checkout and ten /routes/N fail through one helper; /ok does not."""
    app = Flask("alerting")
    app.logger.disabled = True

    @app.route("/checkout")
    def checkout() -> str:
        return str(parse_amount("card declined"))

    for n in range(10):
        app.add_url_rule(f"/routes/{n}", f"route{n}", lambda: str(parse_amount("route")))

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    options.setdefault("storage", "memory://")
    options.setdefault("alert_interval_s", 5)  # Sim moves time in steps of 5 s or more: one evaluation each
    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    _opened.append(monitor)
    return app, monitor


class Sim:
    """A clock for the recorder and the alert engines of some middlewares, moved forward by the test."""

    def __init__(self, *monitors: MonitorMiddleware) -> None:
        self.offset = 0.0
        self.monitors = monitors
        for monitor in monitors:
            assert monitor.alerts is not None
            monitor.alerts.clock = self.now
            monitor.recorder.set_wall_clock(self.now)
            monitor.alerts.start()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        for monitor in self.monitors:
            monitor.flush()  # what happened before the jump keeps its time
        self.offset += seconds
        for monitor in self.monitors:
            monitor.recorder.set_wall_clock(self.now)

    def settle(self) -> None:
        """Every engine evaluates now, what was flushed included, and hands its messages to the lanes."""
        for monitor in self.monitors:
            monitor.flush()
        for monitor in self.monitors:
            assert monitor.alerts is not None
            monitor.alerts.evaluate(now_please=True)


def delivered(monitor: MonitorMiddleware) -> None:
    """Every message handed to the lanes has been tried to the end."""
    assert dispatcher().drain(30)
    wait_until(
        lambda: all(
            d["status"] in ("delivered", "failed")
            for a in get_json(monitor, "/monitoring/alerts")["alerts"]
            for d in a["deliveries"].values()
        )
    )


def titles(discord: DiscordStandIn) -> list[str]:
    return [r.json["embeds"][0]["title"].replace("\\", "") for r in discord.requests if r.json]


def test_one_route_raising_for_two_minutes_is_at_most_three_messages_on_every_channel(discord: DiscordStandIn) -> None:
    with smtp_server() as smtp, RecordingServer() as hook:
        _, monitor = failing_app(
            discord_webhook_url=discord.webhook_url,
            webhook_url=f"{hook.url}/hook",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            email_from="wsgimon@shop.example",
            alert_email_to="oncall@shop.example",
            public_url="https://shop.example",
        )
        sim = Sim(monitor)
        for _ in range(24):  # two minutes, a failure and three good requests every 5 s
            call(monitor, "/checkout")
            for _ in range(3):
                call(monitor, "/ok")
            sim.settle()
            assert not [t for t in titles(discord) if "resolved" in t], "resolved while it still fails"
            sim.advance(5)
        for _ in range(40):  # twenty quiet minutes
            for _ in range(4):
                call(monitor, "/ok")
            sim.settle()
            sim.advance(30)
        sim.settle()
        delivered(monitor)
        said = titles(discord)
        assert 2 <= len(said) <= 3, said
        assert said[0].startswith("Incident #1: ValueError in GET /checkout") and "resolved after" in said[-1]
        assert all(t.startswith("Incident #1") for t in said)
        first = discord.requests[0].json["embeds"][0]
        assert "card declined" in first["description"] and first["url"] == "https://shop.example/monitoring/"
        assert "Error rate of all endpoints" in first["description"].replace("\\", "")
        hooks = [r.json["wsgimon"] for r in hook.requests]
        assert [h["kind"] for h in hooks][0] == "firing" and hooks[-1]["kind"] == "resolved"
        assert len(hooks) == len(said) and {h["incident"] for h in hooks} == {1}
        mails = smtp.wait_for_messages(len(said))
        assert len(mails) == len(said)
        root = mails[0].message["Message-ID"]
        assert all(m.message["In-Reply-To"] == root and m.message["References"] == root for m in mails[1:])
        assert all(m.message["Subject"] == "Re: " + mails[0].message["Subject"] for m in mails[1:])
        incidents = get_json(monitor, "/monitoring/alerts")["incidents"]
        assert [(i["id"], i["status"], i["messages"]) for i in incidents] == [(1, "resolved", len(said))]
        monitor.close()


def test_ten_routes_failing_through_one_helper_are_one_message_and_one_resolved(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    sim = Sim(monitor)
    for _ in range(3):
        for n in range(10):
            call(monitor, f"/routes/{n}")
        sim.settle()
        sim.advance(20)
    for _ in range(25):
        call(monitor, "/ok")
        sim.settle()
        sim.advance(30)
    delivered(monitor)
    said = titles(discord)
    assert len(said) == 2, said
    description = discord.requests[0].json["embeds"][0]["description"].replace("\\", "")
    assert all(f"GET /routes/{n}" in said[0] + description for n in range(10))
    assert said[1].startswith("Incident #1 resolved after") and "last seen" in discord.requests[1].json["embeds"][0][
        "description"
    ].lower().replace("\\", "")
    monitor.close()


def test_a_latency_incident_across_a_deploy_sends_no_false_resolve(tmp_path: Path, discord: DiscordStandIn) -> None:
    """v1 slow, then v1 and v2 both live and slow, then v2 alone, slow, then fast: one resolve, at the end."""
    store = f"sqlite:///{tmp_path}/deploy.sqlite3"
    options: dict[str, Any] = {
        "storage": store,
        "discord_webhook_url": discord.webhook_url,
        "alert_rules": "latency_p95",
        "alert_p95_ms": 800,
    }
    _, v1 = failing_app(release="v1", **options)
    _, v2 = failing_app(release="v2", **options)
    sim = Sim(v1, v2)
    start = sim.now()
    rows = {"v1": ProcessRow("host-a", 101, start, start, 0, release="v1")}

    def serve(minutes: int, slow: bool, releases: tuple[str, ...]) -> None:
        for _ in range(minutes * 2):
            now = sim.now()
            for release in releases:
                row = rows.setdefault(release, ProcessRow("host-b", 202, now, now, 0, release=release))
                traffic = [
                    (now - i / 10, "/search", "GET", 200, 1700.0 if slow and i % 10 else 90.0) for i in range(40)
                ]
                v1.store.write(batch_of(traffic, with_log=False), ProcessRow(**{**vars(row), "last_flush": now}))
            sim.settle()
            assert not slow or not [t for t in titles(discord) if "resolved" in t], "a false resolve"
            sim.advance(30)

    serve(3, True, ("v1",))
    serve(5, True, ("v1", "v2"))
    serve(3, True, ("v2",))
    fired = titles(discord)
    serve(20, False, ("v2",))
    delivered(v1)
    said = titles(discord)
    assert fired and fired[0].startswith("Incident #1: p95 latency of") and "above 800 ms" in fired[0], fired
    assert len(said) <= 3 and "resolved after" in said[-1] and sum("resolved" in t for t in said) == 1, said
    v1.close()
    v2.close()


def test_an_slo_tier_change_is_one_escalated_and_one_downgraded_message_never_resolved(
    discord: DiscordStandIn,
) -> None:
    _, monitor = failing_app(
        discord_webhook_url=discord.webhook_url, alert_rules="slo", slo_availability=99.9, alert_group_interval_s=60
    )
    sim = Sim(monitor)
    row = ProcessRow("host-a", 101, sim.now(), sim.now(), 0)

    def serve(minutes: int, error_every: int) -> None:
        for _ in range(minutes):
            now = sim.now()
            traffic = [(now - i / 20, "/api", "GET", 500 if i % error_every == 0 else 200, 5.0) for i in range(1000)]
            monitor.store.write(batch_of(traffic, with_log=False), ProcessRow(**{**vars(row), "last_flush": now}))
            sim.settle()
            sim.advance(60)

    serve(40, 334)  # 0.3 % failing: 3x the budget over 3 days and 6 h, a ticket, not a page
    ticket = titles(discord)
    serve(10, 20)  # 5 %: 50x, a page
    serve(40, 334)  # back to a ticket once the 30 min and 5 min windows are calm again
    delivered(monitor)
    said = titles(discord)
    alerts = get_json(monitor, "/monitoring/alerts")
    assert len(ticket) == 1 and "SLO" in ticket[0] and "(ticket)" in ticket[0], ticket
    assert not [t for t in said if "resolved" in t], said
    assert any("escalated to page" in t for t in said) and any("downgraded to ticket" in t for t in said), said
    assert len(said) == 3 and alerts["incidents"][0]["status"] == "open"
    monitor.close()


def test_a_silence_mutes_an_issue_on_every_process_and_then_expires(tmp_path: Path, discord: DiscordStandIn) -> None:
    store = f"sqlite:///{tmp_path}/silence.sqlite3"
    options = {"storage": store, "discord_webhook_url": discord.webhook_url, "alert_rules": "exception"}
    _, first = failing_app(**options)
    _, second = failing_app(**options)
    sim = Sim(first, second)
    call(first, "/ok")
    first.flush()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSGIMON_STORAGE": store}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsgimon",
            "silence",
            "add",
            "--rule",
            "exception",
            "--for",
            "5m",
            "--reason",
            "deploy",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert "silence 1" in made.stdout and "deploy" in made.stdout
    for _ in range(8):
        call(first, "/checkout")
        call(second, "/checkout")
        sim.settle()
        sim.advance(30)
    silenced = get_json(second, "/monitoring/alerts")
    assert discord.requests == [] and silenced["silences"][0]["active"]
    assert [c["silenced"] for i in silenced["incidents"] for c in i["conditions"]] in ([], [True])
    for _ in range(6):  # past the five minutes: the silence is over, the issue still happens
        call(first, "/checkout")
        sim.settle()
        sim.advance(60)
    sim.settle()
    delivered(first)
    assert len(titles(discord)) == 1 and "ValueError in GET /checkout" in titles(discord)[0]
    # In real time the silence still runs: ended by hand, from the command line too.
    for command, said in ((["expire", "1"], "silence 1 ended"), (["list"], "ended")):
        done = subprocess.run(
            [sys.executable, "-m", "wsgimon", "silence", *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and said in done.stdout, done.stdout + done.stderr
    first.close()
    second.close()


def test_a_maintenance_window_mutes_everything_in_it(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(
        discord_webhook_url=discord.webhook_url, alert_rules="exception", alert_maintenance="daily 00:00-23:59"
    )
    sim = Sim(monitor)
    for _ in range(4):
        call(monitor, "/checkout")
        sim.settle()
        sim.advance(30)
    alerts = get_json(monitor, "/monitoring/alerts")
    assert alerts["maintenance"] is True and discord.requests == []
    monitor.close()


def test_the_api_makes_and_ends_silences_and_refuses_bad_ones(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url)
    import io
    import json

    def post(path: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        result = call(
            monitor,
            path,
            method="POST",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH=str(len(data)),
            **{"wsgi.input": io.BytesIO(data)},
        )
        assert result.status is not None
        return int(result.status[:3]), json.loads(result.body)

    status, made = post("/monitoring/silences", {"endpoint": "/checkout", "for": "1h", "reason": "known"})
    assert status == 200 and made["id"] == 1 and made["active"]
    assert post("/monitoring/silences", {"for": "1h", "reason": "everything"})[0] == 400
    assert post("/monitoring/silences", {"rule": "exception", "for": "1h"})[0] == 400
    assert post("/monitoring/silences", {"rule": "nope", "for": "1h", "reason": "x"})[0] == 400
    assert post("/monitoring/silences", {"rule": "exception", "until": "2001-01-01T00:00:00Z", "reason": "x"})[0] == 400
    status, ended = post("/monitoring/silences/1", {"expire": True})
    assert status == 200 and not ended["active"]
    assert post("/monitoring/silences/9", {"expire": True})[0] == 404
    assert get_json(monitor, "/monitoring/silences")["silences"][0]["id"] == 1
    monitor.close()


@pytest.mark.slow
def test_under_three_workers_a_steady_outage_is_told_once_and_resolved_once(tmp_path: Path) -> None:
    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_ALERT_RULES": "exception",
        "WSGIMON_ALERT_INTERVAL_S": "0.2",
        "WSGIMON_ALERT_GROUP_WAIT_S": "0.5",
        "WSGIMON_ALERT_GROUP_INTERVAL_S": "1",
        "WSGIMON_ALERT_RESOLVE_AFTER_S": "2",
    }
    with (
        DiscordStandIn() as discord,
        gunicorn_server(
            "tests.issues_app:wsgi()", "-w", "3", env={**env, "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url}
        ) as (url, _),
    ):
        pids: set[int] = set()

        def fail_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            with httpx.Client(base_url=url, timeout=10) as client:
                while time.monotonic() < end:
                    assert client.get(f"/orders/{int(time.monotonic() * 1000)}x").status_code == 500
                    pids.add(client.get("/monitoring/health").json()["process"]["pid"])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(fail_for, [6.0] * 4))
        assert len(pids) == 3, pids
        told = [r.json["embeds"][0]["title"] for r in discord.wait_for_requests(1)]
        assert not [t for t in told if "resolved" in t], told
        resolved = wait_until(lambda: [r for r in discord.requests if "resolved" in r.json["embeds"][0]["title"]])
        with httpx.Client(base_url=url, timeout=10) as client:
            after = client.get("/monitoring/alerts").json()["evaluated_at"]
            # A decision to wait for: the deployment evaluated well past the resolve (every worker takes turns).
            wait_until(lambda: client.get("/monitoring/alerts").json()["evaluated_at"] > after, timeout=20)
            wait_until(
                lambda: (
                    client.get("/ok").status_code == 200
                    and client.get("/monitoring/alerts").json()["evaluated_at"] > after
                )
            )
            incidents = client.get("/monitoring/alerts").json()["incidents"]
        assert len(resolved) == 1
        said = [r.json["embeds"][0]["title"] for r in discord.requests]
        assert said[0].startswith("Incident #1: ValueError") and said[-1].startswith("Incident #1 resolved after")
        assert len(said) == 2, said
        assert [(i["status"], i["messages"]) for i in incidents] == [("resolved", 2)]


def test_a_discord_that_answers_after_8_s_gets_each_message_once(discord: DiscordStandIn) -> None:
    discord.hang(8)
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    sim = Sim(monitor)
    call(monitor, "/checkout")
    sim.settle()
    sim.advance(40)
    sim.settle()
    wait_until(lambda: monitor.alerts is not None and monitor.alerts.status()["channels"]["discord"]["delivered"], 30)
    assert len(discord.requests) == 1 and discord.requests[0].answered == 200
    monitor.close()


def test_a_dripping_webhook_holds_nobody_and_each_delivery_has_a_deadline(discord: DiscordStandIn) -> None:
    with RecordingServer() as hook:
        hook.drip(0.5, times=2)  # every read gets a byte within the read timeout; the answer would take 20 s
        _, monitor = failing_app(
            discord_webhook_url=discord.webhook_url, webhook_url=f"{hook.url}/hook", alert_rules="exception"
        )
        assert monitor.alerts is not None
        for state in monitor.alerts.channels():
            if state.name == "webhook":
                state.channel._http.deadline_s = 2.0  # type: ignore[attr-defined]
        sim = Sim(monitor)
        call(monitor, "/checkout")
        sim.settle()
        sim.advance(40)
        sim.settle()
        discord.wait_for_requests(1)  # Discord is not held by the webhook's lane
        webhook = wait_until(
            lambda: [
                a["deliveries"]["webhook"]
                for a in get_json(monitor, "/monitoring/alerts")["alerts"]
                if a["deliveries"]["webhook"]["status"] == "failed"
            ],
            timeout=30,
        )
        assert "not sent again" in webhook[0]["reason"] and len(hook.requests) == 2
        monitor.close()


@pytest.mark.internal_errors
def test_a_404_stops_the_channel_and_health_says_so(discord: DiscordStandIn, caplog: pytest.LogCaptureFixture) -> None:
    discord.fail(404)
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    sim = Sim(monitor)
    call(monitor, "/checkout")
    sim.settle()
    sim.advance(40)
    sim.settle()
    discord.wait_for_requests(1)
    wait_until(lambda: get_json(monitor, "/monitoring/health")["checks"]["alerts"]["status"] == "degraded")
    detail = get_json(monitor, "/monitoring/health")["checks"]["alerts"]["detail"]
    assert "discord stopped" in detail and discord.token not in detail
    assert not [r for r in caplog.records if discord.token in r.getMessage()]
    monitor.close()


def test_while_an_incident_is_open_health_is_not_ok(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    sim = Sim(monitor)
    assert get_json(monitor, "/monitoring/health")["checks"]["incidents"]["status"] == "ok"
    call(monitor, "/checkout")
    sim.settle()
    check = get_json(monitor, "/monitoring/health")["checks"]["incidents"]
    assert check["status"] == "degraded" and "#1" in check["detail"]
    monitor.close()


def test_email_alerts_are_multipart_with_both_parts() -> None:
    with smtp_server() as smtp:
        _, monitor = failing_app(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            email_from="wsgimon@shop.example",
            alert_email_to="oncall@shop.example, lead@shop.example",
            alert_rules="exception",
        )
        sim = Sim(monitor)
        call(monitor, "/checkout")
        sim.settle()
        sim.advance(40)
        sim.settle()
        (received,) = smtp.wait_for_messages(1)
        message = received.message
        assert message["From"] == "wsgimon@shop.example"
        assert "oncall@shop.example" in message["To"] and message["Date"]
        assert "ValueError" in message["Subject"] and "Incident #1" in message["Subject"]
        assert {part.get_content_type() for part in message.iter_parts()} == {"text/plain", "text/html"}
        monitor.close()


def test_bad_alert_settings_are_refused_at_start_without_echoing_secrets() -> None:
    with pytest.raises(ValueError) as error:
        MonitorMiddleware(lambda e, s: [], discord_webhook_url="ftp://discord.com/api/webhooks/1/TOKEN123")
    assert "TOKEN123" not in str(error.value)
    with pytest.raises(ValueError, match="smtp_host"):
        MonitorMiddleware(lambda e, s: [], alert_email_to="a@b.example")
    with pytest.raises(ValueError):
        MonitorMiddleware(lambda e, s: [], smtp_host="x", email_from="w@x.example", alert_email_to="bad\r\nBcc: x@y")
    with pytest.raises(ValueError, match="alert_rules"):
        MonitorMiddleware(lambda e, s: [], alert_rules="exceptions")
    with pytest.raises(ValueError, match="alert_maintenance"):
        MonitorMiddleware(lambda e, s: [], alert_maintenance="sundays at two")
    with pytest.raises(ValueError, match="alert_group_by"):
        MonitorMiddleware(lambda e, s: [], alert_group_by="host")
    config = MonitorMiddleware(lambda e, s: [], smtp_host="x", smtp_password="hunter2").config
    assert "hunter2" not in repr(config)


def test_the_cli_sends_a_test_alert_through_every_channel(discord: DiscordStandIn) -> None:
    with smtp_server() as smtp:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url,
            "WSGIMON_SMTP_HOST": "127.0.0.1",
            "WSGIMON_SMTP_PORT": str(smtp.port),
            "WSGIMON_SMTP_STARTTLS": "0",
            "WSGIMON_EMAIL_FROM": "wsgimon@shop.example",
            "WSGIMON_ALERT_EMAIL_TO": "oncall@shop.example",
        }
        done = subprocess.run(
            [sys.executable, "-m", "wsgimon", "test-alert"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "discord: delivered" in done.stdout and "email: delivered" in done.stdout
        assert len(smtp.wait_for_messages(1)) == 1 and len(discord.wait_for_requests(1)) == 1
        assert discord.token not in done.stdout + done.stderr


def test_the_cli_says_clearly_why_a_channel_failed() -> None:
    closed = free_port()
    env = {**os.environ, "WSGIMON_WEBHOOK_URL": f"http://127.0.0.1:{closed}/hook/SECRET42", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "wsgimon", "test-alert"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "webhook: not delivered" in done.stdout
    assert "Traceback" not in done.stderr and "SECRET42" not in done.stdout + done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGIMON_")}
    done = subprocess.run(
        [sys.executable, "-m", "wsgimon", "test-alert"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "no alert channel is configured" in (done.stdout + done.stderr)


@pytest.mark.internal_errors
def test_a_channel_failing_for_minutes_makes_health_warn_and_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("wsgimon.alerts.dispatcher.OUTAGE_S", 0.5)  # three minutes, in this test half a second
    closed = free_port()
    _, monitor = failing_app(webhook_url=f"http://127.0.0.1:{closed}/hook/SECRET42", alert_rules="exception")
    sim = Sim(monitor)
    call(monitor, "/checkout")
    sim.settle()
    sim.advance(40)
    sim.settle()
    check = wait_until(
        lambda: (c := get_json(monitor, "/monitoring/health")["checks"]["alerts"])["status"] == "degraded" and c
    )
    assert "webhook failing since" in check["detail"] and "SECRET42" not in check["detail"]

    def outage_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "alert channel has failed for" in r.getMessage()]

    def attempts() -> int:
        rows = get_json(monitor, "/monitoring/alerts")["alerts"]
        return int(rows[0]["deliveries"]["webhook"].get("attempts", 0)) if rows else 0

    wait_until(lambda: attempts() >= 3, timeout=20)  # more failures after the outage was logged
    lines = outage_lines()
    assert len(lines) == 1 and "SECRET42" not in lines[0], lines
    monitor.close()


def test_an_n_plus_one_is_told_once_with_its_statement_and_where_it_runs(discord: DiscordStandIn) -> None:
    import sqlite3

    from wsgimon import instrument_dbapi

    app = Flask("orders")
    db = instrument_dbapi(sqlite3.connect(":memory:", check_same_thread=False))
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")

    @app.route("/orders")
    def list_orders() -> str:
        return ",".join(str(db.execute("SELECT name FROM items WHERE id = ?", (n,)).fetchall()) for n in range(8))

    monitor = MonitorMiddleware(
        app.wsgi_app, storage="memory://", alert_interval_s=5, discord_webhook_url=discord.webhook_url
    )
    app.wsgi_app = monitor  # type: ignore[method-assign]
    _opened.append(monitor)
    sim = Sim(monitor)
    for _ in range(6):
        call(monitor, "/orders")
        sim.settle()
        sim.advance(10)
    delivered(monitor)
    said = titles(discord)
    assert [t for t in said if "N+1" in t] == [said[0]] and len(said) == 1, said
    assert "N+1 queries in GET /orders" in said[0]
    embed = discord.requests[0].json["embeds"][0]
    description = embed["description"].replace("\\", "")
    assert "SELECT name FROM items WHERE id = ? ran 5 times or more in each of 1 request(s)" in description
    fields = {field["name"]: field["value"].replace("\\", "") for field in embed["fields"]}
    assert fields["statement"] == "SELECT name FROM items WHERE id = ?"
    assert "in list_orders" in fields["called from"] and fields["endpoints"] == "GET /orders"


@pytest.mark.slow
def test_a_missed_check_in_is_one_down_alert_across_three_workers_and_the_next_ping_resolves_it(
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path}/shared.sqlite3"
    env = {
        "WSGIMON_STORAGE": storage,
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_ALERT_RULES": "checkin",
        "WSGIMON_ALERT_INTERVAL_S": "0.5",
        "WSGIMON_ALERT_GROUP_WAIT_S": "0",
        "WSGIMON_ALERT_GROUP_INTERVAL_S": "1",
        "WSGIMON_CHECKINS": '{"backup": {"every": "2s", "grace": "1s"}}',
    }
    with (
        DiscordStandIn() as discord,
        gunicorn_server(
            "tests.issues_app:wsgi()", "-w", "3", env={**env, "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url}
        ) as (url, _),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        pids = wait_until(
            lambda: len(p := {client.get("/monitoring/health").json()["process"]["pid"] for _ in range(30)}) == 3 and p
        )
        assert len(pids) == 3
        assert client.post("/monitoring/checkins/backup").status_code == 200
        (down,) = discord.wait_for_requests(1, timeout=15)
        assert down.json["embeds"][0]["title"].startswith("Incident #1: Check-in backup is down")
        # Opened by an evaluation once the deadline (expected 2 s after the ping, then 1 s of grace)
        # had passed, never before it. The instants are the deployment's decisions, not this test's
        # clock; the bound after it leaves room for a loaded machine (evaluations are 0.5 s apart).
        (monitor,) = client.get("/monitoring/checkins").json()["checkins"]
        deadline = datetime.fromisoformat(monitor["next_expected"]).timestamp() + monitor["grace_s"]
        (incident,) = client.get("/monitoring/alerts").json()["incidents"]
        opened = datetime.fromisoformat(incident["opened"]).timestamp()
        assert deadline <= opened <= deadline + 10, (deadline, opened)

        def evaluated() -> float:
            answer: float = client.get("/monitoring/alerts").json()["evaluated_at"]
            return answer

        # Every worker evaluates several times more: still one message.
        for _ in range(3):
            after = evaluated()
            wait_until(lambda after=after: evaluated() > after, timeout=10)
        assert len(discord.requests) == 1
        assert client.post("/monitoring/checkins/backup").status_code == 200
        resolved = wait_until(lambda: [r for r in discord.requests if "resolved" in r.json["embeds"][0]["title"]])
        for _ in range(3):
            after = evaluated()
            wait_until(lambda after=after: evaluated() > after, timeout=10)
        assert len(resolved) == 1 and len(discord.requests) == 2, [
            r.json["embeds"][0]["title"] for r in discord.requests
        ]


def test_a_command_that_exits_3_and_a_run_that_does_not_end_both_alert(tmp_path: Path, discord: DiscordStandIn) -> None:
    storage = f"sqlite:///{tmp_path}/jobs.sqlite3"
    _, monitor = failing_app(
        storage=storage, discord_webhook_url=discord.webhook_url, alert_rules="checkin", alert_group_wait_s=0
    )
    sim = Sim(monitor)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSGIMON_STORAGE": storage}
    failed = subprocess.run(
        [sys.executable, "-m", "wsgimon", "checkin", "backup", "--every", "1h", "--", "sh", "-c", "exit 3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 3
    sim.settle()
    delivered(monitor)
    said = titles(discord)
    assert said == ["Incident #1: Check-in backup failed"], said
    assert "exit code 3" in discord.requests[0].json["embeds"][0]["description"].replace("\\", "")
    # A run that starts and does not end within its grace.
    started = subprocess.run(
        [sys.executable, "-m", "wsgimon", "checkin", "reindex", "--start", "--every", "1d", "--grace", "1m"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    sim.settle()
    sim.advance(90)
    sim.settle()
    firing = {c["key"]: c for i in get_json(monitor, "/monitoring/alerts")["incidents"] for c in i["conditions"]}
    assert firing["checkin|reindex"]["status"] == "firing"
    assert firing["checkin|reindex"]["title"] == "Check-in reindex is running too long"
    # It joined the open incident: the next update (after the group interval) says so.
    sim.advance(301)
    sim.settle()
    delivered(monitor)
    assert any("Check-in reindex is running too long" in t for t in titles(discord)), titles(discord)
