"""Alerts end to end: real apps, a real Discord stand-in and a real SMTP server, once per deployment."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.helpers import call, get_json
from tests.seeding import batch_of, process
from tests.servers import ROOT, free_port, gunicorn_server, wait_until
from tests.standins.discord import DiscordStandIn
from tests.standins.smtp import smtp_server
from wsgimon import MonitorMiddleware


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def failing_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    app = Flask("alerting")
    app.logger.disabled = True

    @app.route("/checkout")
    def checkout() -> str:
        raise ValueError("card declined by the payment provider")

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    options.setdefault("storage", "memory://")
    options.setdefault("alert_interval_s", 0.05)
    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def embeds(discord: DiscordStandIn) -> list[dict[str, Any]]:
    return [request.json["embeds"][0] for request in discord.requests if request.json]


def test_a_burst_of_one_error_is_one_alert_then_one_follow_up(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(
        discord_webhook_url=discord.webhook_url,
        alert_rules="exception",
        alert_cooldown_s=1.0,
        public_url="https://shop.example",
    )
    for _ in range(100):
        call(monitor, "/checkout")
    monitor.flush()
    (first,) = discord.wait_for_requests(1)
    embed = first.json["embeds"][0]
    assert "ValueError" in embed["title"] and "/checkout" in embed["title"]
    assert "card declined" in embed["description"]
    assert embed["url"] == "https://shop.example/monitoring/"
    assert first.json["allowed_mentions"] == {"parse": []} and first.query.get("wait") == ["true"]
    for _ in range(30):
        call(monitor, "/checkout")
    monitor.flush()  # inside the cooldown: suppressed, counted
    requests = discord.wait_for_requests(2, timeout=15)
    follow_up = requests[1].json["embeds"][0]
    assert "30 more" in follow_up["title"]
    assert len(discord.requests) == 2 and discord.violations == []
    alerts = get_json(monitor, "/monitoring/alerts")["alerts"]
    assert [a["rule"] for a in alerts] == ["exception", "exception"]
    wait_until(
        lambda: get_json(monitor, "/monitoring/alerts")["alerts"][0]["deliveries"]["discord"]["status"] == "delivered"
    )
    monitor.close()


def test_a_429_is_retried_after_the_given_delay_and_nothing_is_lost(discord: DiscordStandIn) -> None:
    discord.rate_limit(retry_after=0.4)
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    call(monitor, "/checkout")
    monitor.flush()
    requests = discord.wait_for_requests(2)
    assert [r.answered for r in requests] == [429, 200]
    wait_until(lambda: monitor.alerts is not None and monitor.alerts.status()["channels"]["discord"]["delivered"] == 1)
    monitor.close()


def test_a_hanging_webhook_does_not_hold_requests(discord: DiscordStandIn) -> None:
    discord.hang(30, times=5)
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    call(monitor, "/checkout")
    monitor.flush()
    discord.wait_for_requests(1)
    # While the delivery hangs, the app answers and records as usual.
    for _ in range(50):
        assert call(monitor, "/ok").status == "200 OK"
    assert get_json(monitor, "/monitoring/stats")["requests"] == 51
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["alerts"]["status"] == "ok"
    discord.stop()
    monitor.close()


@pytest.mark.internal_errors
def test_a_404_stops_the_channel_and_health_says_so(discord: DiscordStandIn, caplog: pytest.LogCaptureFixture) -> None:
    discord.fail(404)
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="exception")
    call(monitor, "/checkout")
    monitor.flush()
    discord.wait_for_requests(1)
    wait_until(lambda: get_json(monitor, "/monitoring/health")["checks"]["alerts"]["status"] == "degraded")
    detail = get_json(monitor, "/monitoring/health")["checks"]["alerts"]["detail"]
    assert "discord stopped" in detail and discord.token not in detail
    call(monitor, "/checkout")
    monitor.flush()
    time.sleep(0.2)  # nothing may arrive: give a stray delivery the time it would need
    assert len(discord.requests) == 1
    assert not [r for r in caplog.records if discord.token in r.getMessage()]
    monitor.close()


def test_the_error_rate_rule_fires_once_and_resolves_once(discord: DiscordStandIn) -> None:
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="error_rate", alert_window_s=60)
    for _ in range(15):
        call(monitor, "/ok")
    for _ in range(10):
        call(monitor, "/checkout")
    monitor.flush()
    requests = discord.wait_for_requests(1)
    titles = [e["title"] for e in embeds(discord)]
    assert any("above 5.0%" in t and "all endpoints" in t for t in titles)
    count = len(requests)
    for _ in range(400):
        call(monitor, "/ok")
    monitor.flush()
    wait_until(lambda: any("back under" in e["title"] and "all endpoints" in e["title"] for e in embeds(discord)))
    resolved = [e for e in embeds(discord) if "back under" in e["title"]]
    firing = [e for e in embeds(discord) if "above" in e["title"]]
    assert len(firing) == count and all(e["color"] != resolved[0]["color"] for e in firing)
    monitor.close()


def test_the_slo_rule_pages_on_a_fast_burn_and_stays_quiet_under_it(discord: DiscordStandIn) -> None:
    now = time.time()
    # 99.9 % availability: 0.5 % errors burns 5x (under both thresholds), 5 % burns 50x (page).
    quiet = [(now - 1200 + i, "/api", "GET", 500 if i % 200 == 0 else 200, 5.0) for i in range(1000)]
    _, monitor = failing_app(discord_webhook_url=discord.webhook_url, alert_rules="slo", slo_availability=99.9)
    monitor.store.write(batch_of(quiet, with_log=False), process())
    call(monitor, "/ok")  # the first request starts the process's alerting
    time.sleep(0.3)  # several evaluations (every 0.05 s), none of which may page
    assert get_json(monitor, "/monitoring/alerts")["slo"][0]["firing"] is None and not discord.requests
    burning = [(now - 200 + i / 5, "/api", "GET", 500 if i % 20 == 0 else 200, 5.0) for i in range(1000)]
    monitor.store.write(batch_of(burning, with_log=False), process())
    (request,) = discord.wait_for_requests(1)
    assert "error budget" in request.json["embeds"][0]["title"]
    slo = get_json(monitor, "/monitoring/alerts")["slo"][0]
    assert slo["firing"] == "page" and slo["burn_rates"]["5m"] > 14.4 and slo["error_budget_remaining"] < 1
    monitor.close()


def test_email_alerts_are_multipart_with_both_parts() -> None:
    with smtp_server() as smtp:
        _, monitor = failing_app(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            email_from="wsgimon@shop.example",
            alert_email_to="oncall@shop.example, lead@shop.example",
        )
        call(monitor, "/checkout")
        monitor.flush()
        (received,) = smtp.wait_for_messages(1)
        message = received.message
        assert message["From"] == "wsgimon@shop.example"
        assert "oncall@shop.example" in message["To"] and message["Date"]
        assert "ValueError" in message["Subject"]
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
    config = MonitorMiddleware(lambda e, s: [], smtp_host="x", smtp_password="hunter2").config
    assert "hunter2" not in repr(config)


@pytest.mark.slow
def test_three_workers_raising_the_same_error_send_one_alert(tmp_path: Path, discord: DiscordStandIn) -> None:
    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url,
    }
    with gunicorn_server("demo_app:app", "-w", "3", env=env) as (url, _):
        pids = set()
        for _ in range(60):
            with httpx.Client() as client:
                client.get(url + "/test/error")
                pids.add(client.get(url + "/monitoring/health").json()["process"]["pid"])
        assert len(pids) >= 2, "the errors should come from several workers"
        discord.wait_for_requests(1)
        time.sleep(1.0)  # three flush intervals for a second alert to arrive, if one would
        titles = [e["title"] for e in embeds(discord)]
        assert len([t for t in titles if "ValueError" in t]) == 1, titles


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
