"""Access to /monitoring/*: loopback only on a development server or in-process, else credentials (the
configured ones or the deployment's token in the store), never anonymous remote.

The suite trusts loopback clients under every server (tests/conftest.py); these tests say what
they need: ``trust_loopback=False`` is the default a user gets.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.servers import ROOT, gunicorn_server, werkzeug_server
from wsgimon import MonitorMiddleware


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def default(**options: Any) -> MonitorMiddleware:
    """A middleware with the defaults a user gets (loopback trusted only where it is safe)."""
    return MonitorMiddleware(wsgi_apps.list_app, trust_loopback=False, **options)  # type: ignore[misc]


def test_a_loopback_client_of_the_development_server_is_allowed_without_configuration() -> None:
    with werkzeug_server(default()) as url:
        assert httpx.get(url + "/monitoring/stats").status_code == 200
        proxied = httpx.get(url + "/monitoring/stats", headers={"X-Forwarded-For": "203.0.113.9"})
        forwarded = httpx.get(url + "/monitoring/stats", headers={"Forwarded": "for=203.0.113.9"})
    assert proxied.status_code == 401 and forwarded.status_code == 401
    assert "wsgimon token" in proxied.json()["error"] and "WSGIMON_TOKEN" in proxied.json()["error"]


@pytest.mark.parametrize("remote", ["10.1.2.3", "192.0.2.1", "::ffff:8.8.8.8", "", "not-an-ip"])
def test_remote_clients_are_refused_by_default(remote: str) -> None:
    result = call(default(), "/monitoring/stats", REMOTE_ADDR=remote)
    assert result.status is not None and result.status.startswith("401")
    assert b"wsgimon token" in result.body


@pytest.mark.slow
def test_under_gunicorn_without_credentials_every_path_needs_the_deployments_token(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/guarded.sqlite3"
    env = {"WSGIMON_STORAGE": storage, "WSGIMON_TRUST_LOOPBACK": "0", "WSGIMON_HEALTH_PATH": "/health"}
    with gunicorn_server("tests.release_app:app", "-w", "2", env=env) as (url, _master):
        for path in ("/stats", "/errors", "/metrics", "/openapi.json", "/issues", "/requests", "/queries", "/health"):
            answer = httpx.get(url + "/monitoring" + path)
            assert answer.status_code == 401, path
            assert "wsgimon token" in answer.json()["error"], path
        posted = httpx.post(url + "/monitoring/silences", json={"rule": "exception", "for": "1h"})
        assert posted.status_code == 401
        # The page itself holds no data: it asks for the token, and says where to get it.
        page = httpx.get(url + "/monitoring/")
        assert page.status_code == 200 and "wsgimon token" in page.text
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        token = subprocess.run(
            [sys.executable, "-m", "wsgimon", "token", "--storage", storage],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout.strip()
        assert len(token) >= 32
        signed = {"Authorization": f"Bearer {token}"}
        # Fresh connections: whichever worker answers takes the same token.
        answers = [httpx.get(url + "/monitoring/stats", headers=signed).status_code for _ in range(12)]
        assert answers == [200] * 12
        pids = {httpx.get(url + "/monitoring/health", headers=signed).json()["process"]["pid"] for _ in range(20)}
        assert len(pids) == 2
        wrong = httpx.get(url + "/monitoring/stats", headers={"Authorization": "Bearer " + "x" * 43})
        assert wrong.status_code == 401


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_every_loopback_address_counts(remote: str) -> None:
    assert call(default(), "/monitoring/stats", REMOTE_ADDR=remote).status == "200 OK"


@pytest.mark.parametrize(
    "server",
    [
        {"SERVER_SOFTWARE": "gunicorn/23.0.0"},
        {"SERVER_SOFTWARE": "waitress"},
        {"SERVER_SOFTWARE": "Apache/2.4", "mod_wsgi.version": (5, 0)},
        {"uwsgi.version": b"2.0.28"},
        {"SERVER_SOFTWARE": "WSGIServer/0.2 CPython/3.11"},
    ],
)
def test_a_loopback_client_of_a_production_server_needs_credentials(server: dict[str, Any]) -> None:
    monitor = default()
    denied = call(monitor, "/monitoring/stats", **server)
    assert denied.status is not None and denied.status.startswith("401")
    assert b"wsgimon token" in denied.body
    trusted = MonitorMiddleware(wsgi_apps.list_app, trust_loopback=True)
    assert call(trusted, "/monitoring/stats", **server).status == "200 OK"
    # The deployment's token (kept in the store) opens it.
    token = monitor.store.access_token(lambda: "never-made-here-0123456789")
    signed = call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=f"Bearer {token}", **server)
    assert signed.status == "200 OK"


def test_allow_remote_opens_access_deliberately() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, allow_remote=True)
    assert call(monitor, "/monitoring/stats", REMOTE_ADDR="198.51.100.7").status == "200 OK"


def test_bearer_token_is_required_once_configured() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, token="s3cret-token-0123456789")
    with werkzeug_server(monitor) as url:
        missing = httpx.get(url + "/monitoring/stats")
        wrong = httpx.get(url + "/monitoring/stats", headers={"Authorization": "Bearer nope"})
        right = httpx.get(url + "/monitoring/stats", headers={"Authorization": "Bearer s3cret-token-0123456789"})
        non_ascii = httpx.get(
            url + "/monitoring/stats", headers={"Authorization": "Bearer s3cr\xe9t".encode("latin-1")}
        )
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401 and non_ascii.status_code == 401
    assert right.status_code == 200
    assert call(monitor, "/monitoring/stats", REMOTE_ADDR="203.0.113.5").status.startswith("401")  # type: ignore[union-attr]
    authorised = call(
        monitor, "/monitoring/stats", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer s3cret-token-0123456789"
    )
    assert authorised.status == "200 OK"


def test_basic_credentials() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, username="ops", password="pässword-0123456789")
    denied = call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=basic("ops", "wrong"))
    assert denied.status is not None and denied.status.startswith("401")
    assert ("WWW-Authenticate", 'Basic realm="wsgimon", charset="UTF-8"') in denied.headers
    signed = call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=basic("ops", "pässword-0123456789"))
    assert signed.status == "200 OK"
    for garbage in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic", "Digest x"):
        assert call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=garbage).status.startswith("401")  # type: ignore[union-attr]


def test_the_health_path_tells_anyone_its_status_and_nothing_more() -> None:
    """A load balancer or kubelet has no credentials; the details stay behind access control."""
    monitor = MonitorMiddleware(wsgi_apps.list_app, health_path="/health", token="t0ken-long-enough-1234")
    public = call(monitor, "/health", REMOTE_ADDR="203.0.113.5")
    assert (public.status, json.loads(public.body)) == ("200 OK", {"status": "ok"})
    assert call(monitor, "/monitoring/health", REMOTE_ADDR="203.0.113.5").status.startswith("401")  # type: ignore[union-attr]
    monitor.add_health_check("database", lambda: False)
    failing = call(monitor, "/health", REMOTE_ADDR="203.0.113.5")
    assert (failing.status, json.loads(failing.body)) == ("503 SERVICE UNAVAILABLE", {"status": "fail"})


def test_the_application_itself_is_not_affected() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, token="t0ken-long-enough-1234")
    assert call(monitor, "/anything", REMOTE_ADDR="203.0.113.5").body == b"hello"


@pytest.mark.parametrize(
    "header",
    [
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_VIA",
        "HTTP_CF_CONNECTING_IP",
        "HTTP_TRUE_CLIENT_IP",
        "HTTP_X_CLIENT_IP",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_ORIGINAL_FORWARDED_FOR",
        "HTTP_X_ENVOY_EXTERNAL_ADDRESS",
        "HTTP_FLY_CLIENT_IP",
        "HTTP_X_ORIGINAL_HOST",
        "HTTP_X_REAL_IP",
        "HTTP_FASTLY_CLIENT_IP",
    ],
)
def test_any_forwarding_style_header_even_empty_means_not_local(header: str) -> None:
    denied = call(default(), "/monitoring/stats", **{header: ""})
    assert denied.status is not None and denied.status.startswith("401")
    assert b"proxy" in denied.body
    # Ordinary headers are not mistaken for one.
    assert call(default(), "/monitoring/stats", HTTP_X_REQUEST_ID="abc", HTTP_ACCEPT="*/*").status == "200 OK"


@pytest.mark.parametrize("host", ["attacker.example:8011", "attacker.example", "127.0.0.1.nip.io", "[::2]:80"])
def test_a_foreign_host_name_from_loopback_is_refused(host: str) -> None:
    """DNS rebinding: a page on another site whose name now resolves to 127.0.0.1."""
    denied = call(default(), "/monitoring/errors", HTTP_HOST=host)
    assert denied.status is not None and denied.status.startswith("401")


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:8000", "[::1]:8000", "app.localhost", "127.3.4.5"])
def test_loopback_host_names_are_local(host: str) -> None:
    assert call(default(), "/monitoring/stats", HTTP_HOST=host).status == "200 OK"


def test_allowed_hosts_and_cross_site_requests() -> None:
    monitor = default(allowed_hosts="devbox.internal")
    assert call(monitor, "/monitoring/stats", HTTP_HOST="devbox.internal:8000").status == "200 OK"
    cross_site = call(monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_SEC_FETCH_SITE="cross-site")
    assert cross_site.status is not None and cross_site.status.startswith("403")
    foreign_origin = call(
        monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_ORIGIN="https://attacker.example"
    )
    assert foreign_origin.status is not None and foreign_origin.status.startswith("403")
    same_origin = call(monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_ORIGIN="http://localhost:5000")
    assert same_origin.status == "200 OK"


def test_secrets_that_can_never_match_or_are_guessable_are_refused() -> None:
    with pytest.raises(ValueError, match="white space"):
        MonitorMiddleware(wsgi_apps.list_app, token=" ")
    with pytest.raises(ValueError, match="white space"):
        MonitorMiddleware(wsgi_apps.list_app, token="abcd" * 5 + " ")
    for weak in ("a", "fifteen-chars15", "x" * 16, "x" * 64):
        with pytest.raises(ValueError, match="at least 16 characters and not one repeated character"):
            MonitorMiddleware(wsgi_apps.list_app, token=weak)
        with pytest.raises(ValueError, match="at least 16 characters and not one repeated character"):
            MonitorMiddleware(wsgi_apps.list_app, username="ops", password=weak)
    MonitorMiddleware(wsgi_apps.list_app, token="sixteen-chars-16").close()


def test_failed_attempts_are_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    from wsgimon.api.access import failed_attempts

    monitor = MonitorMiddleware(wsgi_apps.list_app, token="a-long-enough-token-value")
    before = failed_attempts()
    for _ in range(5):
        call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION="Bearer wrong")
    assert failed_attempts() == before + 5
    logged = [r for r in caplog.records if "failed authentication" in r.getMessage()]
    assert len(logged) <= 1
    health = get_json(monitor, "/monitoring/health", HTTP_AUTHORIZATION="Bearer a-long-enough-token-value")
    assert "failed authentication" in health["checks"]["wsgimon"]["detail"]
