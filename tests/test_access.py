"""Access to /monitoring/*: loopback only by default, else credentials, never anonymous remote."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
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
    monitor = MonitorMiddleware(wsgi_apps.list_app, token="t0ken")
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
    ],
)
def test_any_proxy_header_even_empty_means_not_local(header: str) -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    denied = call(monitor, "/monitoring/stats", **{header: ""})
    assert denied.status is not None and denied.status.startswith("403")
    assert b"proxy" in denied.body


@pytest.mark.parametrize("host", ["attacker.example:8011", "attacker.example", "127.0.0.1.nip.io", "[::2]:80"])
def test_a_foreign_host_name_from_loopback_is_refused(host: str) -> None:
    """DNS rebinding: a page on another site whose name now resolves to 127.0.0.1."""
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    denied = call(monitor, "/monitoring/errors", HTTP_HOST=host)
    assert denied.status is not None and denied.status.startswith("403")


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:8000", "[::1]:8000", "app.localhost", "127.3.4.5"])
def test_loopback_host_names_are_local(host: str) -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app)
    assert call(monitor, "/monitoring/stats", HTTP_HOST=host).status == "200 OK"


def test_allowed_hosts_and_cross_site_requests() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, allowed_hosts="devbox.internal")
    assert call(monitor, "/monitoring/stats", HTTP_HOST="devbox.internal:8000").status == "200 OK"
    cross_site = call(monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_SEC_FETCH_SITE="cross-site")
    assert cross_site.status is not None and cross_site.status.startswith("403")
    foreign_origin = call(
        monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_ORIGIN="https://attacker.example"
    )
    assert foreign_origin.status is not None and foreign_origin.status.startswith("403")
    same_origin = call(monitor, "/monitoring/stats", HTTP_HOST="localhost:5000", HTTP_ORIGIN="http://localhost:5000")
    assert same_origin.status == "200 OK"


def test_secrets_that_can_never_match_are_refused_and_short_ones_warned(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="white space"):
        MonitorMiddleware(wsgi_apps.list_app, token=" ")
    with pytest.raises(ValueError, match="white space"):
        MonitorMiddleware(wsgi_apps.list_app, token="abc ")
    MonitorMiddleware(wsgi_apps.list_app, token="a")
    assert any("1 characters long" in r.getMessage() for r in caplog.records)


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
