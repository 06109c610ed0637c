"""Configuration: arguments over WSGIMON_* variables, clear ValueErrors, no secrets in reprs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
        "WSGIMON_TOKEN": "from-env-0123456789",
        "WSGIMON_DEGRADED_ERROR_RATE": "0.5",
        "WSGIMON_ENDPOINT": "tests.test_config:first_segment",
        "WSGIMON_HEALTH_PATH": "/healthz",
    }
    config = Config.build({}, env)
    assert config.prefix == "/_mon" and config.exclude == ("/static", "/favicon.ico")
    assert config.recent_requests == 20 and config.allow_remote is True and config.token == "from-env-0123456789"
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
    config = Config.build({"token": "tok-123-0123456789", "username": "ops", "password": "pw-456-0123456789"}, {})
    text = repr(config)
    assert "tok-123" not in text and "pw-456" not in text and "ops" in text


def test_options_for_editors_are_the_configs_own_fields() -> None:
    """``Options`` (what editors and type checkers see) lists exactly the options ``Config`` takes."""
    import dataclasses
    import typing

    from wsgimon.config import Options

    assert set(typing.get_type_hints(Options)) == {f.name for f in dataclasses.fields(Config)}


def test_a_type_checker_refuses_a_misspelled_or_mistyped_option(tmp_path: Path) -> None:
    program = tmp_path / "uses_wsgimon.py"
    program.write_text(
        "from wsgimon import MonitorMiddleware\n\n\n"
        "def app(environ: dict[str, object], start_response: object) -> list[bytes]:\n"
        "    return []\n\n\n"
        "MonitorMiddleware(app, flush_intervall=2)\n"
        'MonitorMiddleware(app, flush_interval="soon")\n'
        'MonitorMiddleware(app, flush_interval=2, token=None, alert_rules=["exception"])\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 'Unexpected keyword argument "flush_intervall"' in done.stdout, done.stdout
    assert 'Argument "flush_interval" to "MonitorMiddleware" has incompatible type "str"' in done.stdout
    assert "Found 2 errors" in done.stdout, done.stdout


def test_an_explicit_none_turns_off_what_the_environment_sets() -> None:
    env = {"WSGIMON_TOKEN": "a-token-from-the-environment", "WSGIMON_DEGRADED_P95_MS": "250"}
    assert Config.build({}, env).token == "a-token-from-the-environment"
    config = Config.build({"token": None, "degraded_p95_ms": None}, env)
    assert config.token is None and config.degraded_p95_ms is None
    with pytest.raises(ValueError, match="flush_interval must not be None"):
        Config.build({"flush_interval": None}, {})


def test_an_unknown_wsgimon_variable_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    env = {"WSGIMON_FLUSH_INTERVALL": "2", "WSGIMON_PREFIX": "/m"}
    Config.build({}, env)
    Config.build({}, env)
    warnings = [r.getMessage() for r in caplog.records if "WSGIMON_FLUSH_INTERVALL" in r.getMessage()]
    assert warnings == ["wsgimon: ignoring WSGIMON_FLUSH_INTERVALL: no such option (a typo?)"]
