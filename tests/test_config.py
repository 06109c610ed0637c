"""Configuration: arguments over WSGIMON_* variables, clear ValueErrors, no secrets in reprs."""

from __future__ import annotations

import pytest

from tests import wsgi_apps
from wsgimon import MonitorMiddleware
from wsgimon.config import Config


def first_segment(environ: dict) -> str:  # type: ignore[type-arg]
    return "/" + environ["PATH_INFO"].split("/")[1]


def test_environment_variables_configure_every_kind_of_option() -> None:
    env = {
        "WSGIMON_PREFIX": "/_mon",
        "WSGIMON_EXCLUDE": "/static, /favicon.ico",
        "WSGIMON_RECENT_REQUESTS": "20",
        "WSGIMON_ALLOW_REMOTE": "yes",
        "WSGIMON_TOKEN": "from-env",
        "WSGIMON_DEGRADED_ERROR_RATE": "0.5",
        "WSGIMON_ENDPOINT": "tests.test_config:first_segment",
        "WSGIMON_HEALTH_PATH": "/healthz",
    }
    config = Config.build({}, env)
    assert config.prefix == "/_mon" and config.exclude == ("/static", "/favicon.ico")
    assert config.recent_requests == 20 and config.allow_remote is True and config.token == "from-env"
    assert config.degraded_error_rate == 0.5 and config.endpoint is first_segment
    assert config.health_path == "/healthz"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSGIMON_PREFIX", "/from-env")
    monkeypatch.setenv("WSGIMON_MAX_ENDPOINTS", "7")
    monitor = MonitorMiddleware(wsgi_apps.list_app, prefix="/from-arg")
    assert monitor.config.prefix == "/from-arg" and monitor.config.max_endpoints == 7


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"prefix": "monitoring"}, "prefix"),
        ({"prefix": "/monitoring/"}, "prefix"),
        ({"recent_requests": 0}, "recent_requests"),
        ({"recent_requests": "many"}, "recent_requests"),
        ({"max_endpoints": 2.5}, "max_endpoints"),
        ({"allow_remote": "maybe"}, "allow_remote"),
        ({"username": "ops"}, "username and password"),
        ({"token": ""}, "token"),
        ({"storage": "nonsense"}, "storage"),
        ({"storage": "ftp://x"}, "storage"),
        ({"exclude": ["static"]}, "exclude"),
        ({"endpoint": "no_colon"}, "endpoint"),
        ({"endpoint": "no.such.module:fn"}, "endpoint"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"degraded_error_rate": 2}, "degraded_error_rate"),
        ({"prefx": "/x"}, "prefx"),
    ],
)
def test_bad_values_raise_value_error_naming_the_option(options: dict, named: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=named):
        MonitorMiddleware(wsgi_apps.list_app, **options)


def test_bad_environment_value_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSGIMON_RECENT_REQUESTS", "lots")
    with pytest.raises(ValueError, match="recent_requests"):
        MonitorMiddleware(wsgi_apps.list_app)


def test_secrets_stay_out_of_the_repr() -> None:
    config = Config.build({"token": "tok-123", "username": "ops", "password": "pw-456"}, {})
    text = repr(config)
    assert "tok-123" not in text and "pw-456" not in text and "ops" in text
