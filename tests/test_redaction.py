"""Sensitive query values are redacted before storage; headers, cookies and bodies are never stored."""

from __future__ import annotations

import json

import httpx

from demo_app import create_app
from tests.helpers import call, get_json
from tests.servers import werkzeug_server
from wsgimon import MonitorMiddleware
from wsgimon.recording.redaction import redact_query


def test_default_sensitive_keys_are_redacted() -> None:
    query = "user=bob&password=hunter2&api_key=k1&access_token=t&sessionid=s&code=c&page=2&flag"
    assert redact_query(query, ("password", "key", "token", "session", "code")) == (
        "user=bob&password=[REDACTED]&api_key=[REDACTED]&access_token=[REDACTED]"
        "&sessionid=[REDACTED]&code=[REDACTED]&page=2&flag"
    )


def test_encoded_key_names_are_recognised() -> None:
    assert redact_query("pass%77ord=x&Pass+Word=y", ("password",)) == "pass%77ord=[REDACTED]&Pass+Word=y"


def test_nothing_secret_reaches_the_api_through_a_real_server() -> None:
    app, _ = create_app()
    with werkzeug_server(app) as url:
        httpx.get(
            url + "/items/1?password=hunter2&signature=abc123sig&q=shoes",
            headers={"Authorization": "Bearer header-secret", "Cookie": "session=cookie-secret"},
        )
        dump = json.dumps([httpx.get(url + f"/monitoring/{name}").json() for name in ("requests", "errors", "stats")])
    assert "/items/1?password=[REDACTED]&signature=[REDACTED]&q=shoes" in dump
    for secret in ("hunter2", "abc123sig", "header-secret", "cookie-secret"):
        assert secret not in dump


def test_redacted_keys_are_configurable() -> None:
    monitor = MonitorMiddleware(lambda environ, start_response: start_response("200 OK", []) or [], redact_keys="ssn")
    call(monitor, "/p", query="ssn=123-45-6789&q=shoes&password=hidden")
    (row,) = get_json(monitor, "/monitoring/requests")["requests"]
    # redact_keys replaces the substring list; credential names stay redacted whatever it says
    assert row["path"] == "/p?ssn=[REDACTED]&q=shoes&password=[REDACTED]"
