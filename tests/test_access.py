"""Access to /monitoring/*: loopback only by default, else credentials, never anonymous remote."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests import wsgi_apps
from tests.helpers import call
from tests.servers import werkzeug_server
from wsgimon import MonitorMiddleware


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_loopback_client_is_allowed_without_configuration() -> None:
    with werkzeug_server(MonitorMiddleware(wsgi_apps.list_app)) as url:
        assert httpx.get(url + "/monitoring/stats").status_code == 200
        proxied = httpx.get(url + "/monitoring/stats", headers={"X-Forwarded-For": "203.0.113.9"})
        forwarded = httpx.get(url + "/monitoring/stats", headers={"Forwarded": "for=203.0.113.9"})
    assert proxied.status_code == 403 and forwarded.status_code == 403
    assert "WSGIMON_TOKEN" in proxied.json()["error"]


@pytest.mark.parametrize("remote", ["10.1.2.3", "192.0.2.1", "::ffff:8.8.8.8", "", "not-an-ip"])
def test_remote_clients_are_refused_by_default(remote: str) -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    result = call(monitor, "/monitoring/stats", REMOTE_ADDR=remote)
    assert result.status is not None and result.status.startswith("403")
    assert b"WSGIMON_ALLOW_REMOTE" in result.body


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_every_loopback_address_counts(remote: str) -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    assert call(monitor, "/monitoring/stats", REMOTE_ADDR=remote).status == "200 OK"


def test_allow_remote_opens_access_deliberately() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, allow_remote=True)
    assert call(monitor, "/monitoring/stats", REMOTE_ADDR="198.51.100.7").status == "200 OK"


def test_bearer_token_is_required_once_configured() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, token="s3cret-token")
    with werkzeug_server(monitor) as url:
        missing = httpx.get(url + "/monitoring/stats")
        wrong = httpx.get(url + "/monitoring/stats", headers={"Authorization": "Bearer nope"})
        right = httpx.get(url + "/monitoring/stats", headers={"Authorization": "Bearer s3cret-token"})
        non_ascii = httpx.get(
            url + "/monitoring/stats", headers={"Authorization": "Bearer s3cr\xe9t".encode("latin-1")}
        )
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401 and non_ascii.status_code == 401
    assert right.status_code == 200
    assert call(monitor, "/monitoring/stats", REMOTE_ADDR="203.0.113.5").status.startswith("401")  # type: ignore[union-attr]
    authorised = call(monitor, "/monitoring/stats", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert authorised.status == "200 OK"


def test_basic_credentials() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, username="ops", password="pässword")
    denied = call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=basic("ops", "wrong"))
    assert denied.status is not None and denied.status.startswith("401")
    assert ("WWW-Authenticate", 'Basic realm="wsgimon", charset="UTF-8"') in denied.headers
    assert call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=basic("ops", "pässword")).status == "200 OK"
    for garbage in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic", "Digest x"):
        assert call(monitor, "/monitoring/stats", HTTP_AUTHORIZATION=garbage).status.startswith("401")  # type: ignore[union-attr]


def test_health_alias_is_protected_too() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, health_path="/health", token="t0ken")
    assert call(monitor, "/health").status.startswith("401")  # type: ignore[union-attr]
    assert call(monitor, "/health", HTTP_AUTHORIZATION="Bearer t0ken").status == "200 OK"


def test_the_application_itself_is_not_affected() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, token="t0ken")
    assert call(monitor, "/anything", REMOTE_ADDR="203.0.113.5").body == b"hello"
