"""Secrets in exception messages and tracebacks: scrubbed before they are stored, served, sent or reported.

End to end with real parts: a Flask app raising exceptions whose messages hold each secret form, a
real SQLite file (every byte of it and of its WAL read back), a Discord stand-in and a JSON webhook
receiver (real HTTP servers), a real SMTP server, and the weekly report rendered. Then the scrubber
itself: each form, ordinary text left alone, reprs and errors about the storage URL, its cost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bench.scrubber import traceback_of
from tests.helpers import call, get_json
from tests.seeding import process
from tests.servers import wait_until
from tests.standins.discord import DiscordStandIn, RecordingServer
from tests.standins.smtp import smtp_server
from wsgimon import MonitorMiddleware
from wsgimon.alerts.discord import build_discord_payload
from wsgimon.alerts.dispatcher import dispatcher
from wsgimon.alerts.email import build_email
from wsgimon.alerts.model import Alert
from wsgimon.alerts.webhook import build_webhook_payload
from wsgimon.config import Config
from wsgimon.recording.options import DEFAULT_REDACT_KEYS
from wsgimon.reporting.period import period_from
from wsgimon.reporting.report import build_report, render_report
from wsgimon.secret_text import REDACTED, bounded_without_secrets, without_passwords, without_secrets
from wsgimon.stores import open_store
from wsgimon.stores.memory import MemoryStore
from wsgimon.stores.records import Batch, IssueSample

UTC = timezone.utc

PEM_BODY = (
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0IzW7yWR7QkrmBL7jTKEn5uqKhbwKfBstIsbMY2Zkp18gnTxKLxo\n"
)
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

#: form → (an exception's message, the secrets in it that must show nowhere)
FORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "url_password": ("could not connect to postgresql://app:S3cretDbPass@db.internal:5432/shop", ("S3cretDbPass",)),
    "url_query": (
        "GET https://api.example.com/v1/charge?password=QpwAlpha1&token=QtokBravo2&api_key=QakCharlie3"
        "&access_token=QatDelta4&secret=QsecEcho5&sig=QsigFoxtrot6&page=2 failed",
        ("QpwAlpha1", "QtokBravo2", "QakCharlie3", "QatDelta4", "QsecEcho5", "QsigFoxtrot6"),
    ),
    "authorization": (
        "upstream refused Authorization: Bearer mF_9.B5f-4.1JqMbearerSecret",
        ("mF_9.B5f-4.1JqMbearerSecret",),
    ),
    "bearer": ("sent Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5 twice", ("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",)),
    "basic": ("proxy said no to Basic YWxpY2U6aHVudGVyMkJhc2lj", ("YWxpY2U6aHVudGVyMkJhc2lj",)),
    "headers": (
        "headers {'Authorization': 'Token tokHeaderVal123', 'Cookie': 'sessionid=cookieVal456; csrftoken=csrfVal789'}",
        ("tokHeaderVal123", "cookieVal456", "csrfVal789"),
    ),
    "aws": (
        "boto3: AKIAIOSFODNN7EXAMPLE aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        " (role ASIAY34FZKBOKMUTVV7A)",
        ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ASIAY34FZKBOKMUTVV7A"),
    ),
    "github": (
        "git push refused for ghp_16C7e42F292c6912E7710c838347Ae178B4a, gho_16C7e42F292c6912E7710c838347Ae178B4b, "
        "ghu_16C7e42F292c6912E7710c838347Ae178B4c, ghs_16C7e42F292c6912E7710c838347Ae178B4d, "
        "ghr_16C7e42F292c6912E7710c838347Ae178B4e and github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        (
            "16C7e42F292c6912E7710c838347Ae178B4a",
            "16C7e42F292c6912E7710c838347Ae178B4b",
            "16C7e42F292c6912E7710c838347Ae178B4c",
            "16C7e42F292c6912E7710c838347Ae178B4d",
            "16C7e42F292c6912E7710c838347Ae178B4e",
            "11ABCDEFG0_abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        ),
    ),
    "slack": (
        "slack: invalid_auth for xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUvWx and xoxp-1111-2222-SlackUserTok, "
        "hook https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/s1ackHookT0ken9999ZZ",
        ("2048-4096-AbCdEfGhIjKlMnOpQrStUvWx", "1111-2222-SlackUserTok", "s1ackHookT0ken9999ZZ"),
    ),
    "stripe": (
        "card error with sk_live_51HqAbCdEfGhIjKlMnOpQrSt, sk_test_51HqTestTestTestTe, rk_live_51HqRkRkRkRkRkRkRk "
        "and pk_live_51HqPkPkPkPkPkPkPk",
        ("51HqAbCdEfGhIjKlMnOpQrSt", "51HqTestTestTestTe", "51HqRkRkRkRkRkRkRk", "51HqPkPkPkPkPkPkPk"),
    ),
    "google": (
        "maps: REQUEST_DENIED for AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        ("SyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",),
    ),
    "jwt": (
        f"bad token {JWT}",
        ("SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"),
    ),
    "pem": (f"could not load the key:\n{PEM}\nfrom settings", tuple(PEM_BODY.split())),
    "discord": (
        "posting to https://discord.com/api/webhooks/112233445566778899/DiscordHookT0kenAbCdEf-123 failed",
        ("DiscordHookT0kenAbCdEf-123",),
    ),
    "colon": ("config error: password: hunter2Colon", ("hunter2Colon",)),
    "assign": ("settings line 3: PASSWORD = 'hunter2Assign'", ("hunter2Assign",)),
    "json": (
        'bad body {"user": "bob", "api_key": "jsonApiKey77", "client_secret": "jsonClientSecret88"}',
        ("jsonApiKey77", "jsonClientSecret88"),
    ),
    "dict": ("bad kwargs {'token': 'dictToken55', 'private_key': 'dictPrivKey66'}", ("dictToken55", "dictPrivKey66")),
    "key_value": (
        "retrying with session=sessVal11 credentials=credVal22 apikey=apikeyVal33 passwd=passwdVal44 pwd=pwdVal55"
        " auth=authVal66 DB_PASSWORD=dbPassVal77 accessToken=camelVal88",
        ("sessVal11", "credVal22", "apikeyVal33", "passwdVal44", "pwdVal55", "authVal66", "dbPassVal77", "camelVal88"),
    ),
    "yaml": (
        "yaml:\n  secret: yamlSecret77\n  access_key: yamlAccessKey88\n  credential: yamlCred99\n"
        "  cookie: yamlCookie11",
        ("yamlSecret77", "yamlAccessKey88", "yamlCred99", "yamlCookie11"),
    ),
}
ALL_SECRETS = tuple(secret for _, secrets in FORMS.values() for secret in secrets)

#: text that holds no secret and must come back as it was raised
ORDINARY = (
    "token expired for /api/tokens/42; password reset for user 12; "
    "SELECT * FROM sessions WHERE token = ? AND user_id = %s; "
    "request 550e8400-e29b-41d4-a716-446655440000 at commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39; "
    "id aGVsbG8gd29ybGQgdGhpcyBpcyBhbiBpZA; Basic information is missing; tokens: 5, author: bob"
)


def leaking_app(**options: Any) -> tuple[Flask, MonitorMiddleware]:
    """``/leak/<form>`` raises its form's message (an exception type of its own: an issue and an error
    each); ``/ordinary`` raises text with no secret; ``/ok`` does not raise."""
    app = Flask("leaking")
    app.logger.disabled = True
    for form, (message, _) in FORMS.items():
        kind = type(f"Leak{form.title().replace('_', '')}Error", (RuntimeError,), {})

        def view(kind: type[Exception] = kind, message: str = message) -> str:
            raise kind(message)

        app.add_url_rule(f"/leak/{form}", f"leak_{form}", view)

    @app.route("/ordinary")
    def ordinary() -> str:
        raise ValueError(ORDINARY)

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    monitor = MonitorMiddleware(app.wsgi_app, **options)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    return app, monitor


def leaked(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in ALL_SECRETS if secret.encode() in data]


def mail_text(message: EmailMessage) -> str:
    """Subject and every text part, decoded (quoted-printable would hide a secret from a plain search)."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


def test_no_secret_form_reaches_the_api_the_channels_the_report_or_the_store_file(
    tmp_path: Path, discord: DiscordStandIn
) -> None:
    store = tmp_path / "store.sqlite3"
    with smtp_server() as smtp, RecordingServer() as hook:
        _, monitor = leaking_app(
            storage=f"sqlite:///{store}",
            discord_webhook_url=discord.webhook_url,
            webhook_url=f"{hook.url}/hook",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            email_from="wsgimon@shop.example",
            alert_email_to="oncall@shop.example",
            alert_rules="exception",
            alert_group_wait_s=0,
            public_url="https://shop.example",
        )
        try:
            for form in FORMS:
                call(monitor, f"/leak/{form}")
            call(monitor, "/ordinary")
            # Secrets in the request line too: a query, and a JWT and a GitHub token in paths.
            call(monitor, "/ok", query="access_token=QatDelta4&next=https://app:S3cretDbPass@db.internal/")
            call(monitor, f"/reset/{JWT}")
            call(monitor, "/hooks/ghp_16C7e42F292c6912E7710c838347Ae178B4a")
            monitor.flush()
            assert monitor.alerts is not None
            monitor.alerts.start()
            monitor.alerts.evaluate(now_please=True)
            assert dispatcher().drain(30)
            discord.wait_for_requests(1)
            wait_until(lambda: len(hook.requests) >= 1 and len(smtp.received) >= 1, 30)

            # The API: every answer, every issue.
            answers = {
                name: get_json(monitor, f"/monitoring/{name}") for name in ("errors", "issues", "requests", "alerts")
            }
            issues = answers["issues"]["issues"]
            assert len(issues) == len(FORMS) + 1
            for issue in issues:
                answers[f"issues/{issue['id']}"] = get_json(monitor, f"/monitoring/issues/{issue['id']}")
            for name, answer in answers.items():
                assert leaked(json.dumps(answer)) == [], name
            errors = {e["type"]: e for e in answers["errors"]["errors"]}
            assert errors["ValueError"]["message"] == ORDINARY  # ordinary text left alone
            url_error = errors["LeakUrlPasswordError"]
            assert url_error["message"] == f"could not connect to postgresql://app:{REDACTED}@db.internal:5432/shop"
            assert url_error["traceback"].endswith(f"LeakUrlPasswordError: {url_error['message']}\n")
            assert 'File "' in url_error["traceback"] and ", line " in url_error["traceback"]
            assert all(REDACTED in errors[f"Leak{f.title().replace('_', '')}Error"]["message"] for f in FORMS)
            paths = [row["path"] for row in answers["requests"]["requests"]]
            assert f"/reset/{REDACTED}" in paths and f"/hooks/{REDACTED}" in paths

            # The channels: Discord, the webhook, e-mail (decoded).
            sent = [json.dumps(r.json) for r in discord.requests] + [r.body.decode() for r in hook.requests]
            sent += [mail_text(m.message) for m in smtp.received]
            assert len(sent) >= 3
            for text in sent:
                assert leaked(text) == []
            assert any(REDACTED in text for text in sent)
            assert discord.violations == []

            # The report, both parts.
            period = period_from(datetime.now(UTC).date(), "week", UTC)
            report = build_report(monitor.store, period, monitor.config)
            assert len(report.issues.new) == min(len(FORMS) + 1, 10)
            text, html = render_report(report)
            assert leaked(text) == [] and leaked(html) == []

            # The store file and its WAL, every byte.
            files = [path for path in tmp_path.iterdir() if path.name.startswith("store.sqlite3")]
            assert any(path.name.endswith("-wal") for path in files)
            assert leaked(b"".join(path.read_bytes() for path in files)) == []
        finally:
            monitor.close()
    assert leaked(b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())) == []


def test_a_secret_in_a_huge_message_and_a_long_traceback_is_scrubbed_within_the_bounds(tmp_path: Path) -> None:
    app = Flask("huge")
    app.logger.disabled = True

    @app.route("/huge")
    def huge() -> str:
        filler = "x" * 50_000
        raise ValueError(f"password: hunter2Head {filler} {PEM} token=tailTok99 {filler} AKIAIOSFODNN7EXAMPLE")

    monitor = MonitorMiddleware(app.wsgi_app, storage=f"sqlite:///{tmp_path}/s.sqlite3", max_traceback_chars=3000)
    app.wsgi_app = monitor  # type: ignore[method-assign]
    try:
        call(monitor, "/huge")
        monitor.flush()
        (error,) = get_json(monitor, "/monitoring/errors")["errors"]
        assert error["message"].startswith(f"password: {REDACTED} xxx") and len(error["message"]) <= 2000
        assert error["traceback"].endswith(f"xxx {REDACTED}\n") and len(error["traceback"]) <= 3000
        for secret in ("hunter2Head", "tailTok99", "AKIAIOSFODNN7EXAMPLE", *PEM_BODY.split()):
            assert secret not in json.dumps(error)
    finally:
        monitor.close()


def test_the_sinks_scrub_what_reaches_them_from_elsewhere() -> None:
    """A text not from the fold (a rule's facts, an older row) is scrubbed by every channel."""
    message, _ = FORMS["url_password"]
    alert = Alert(
        key="incident|1",
        rule="exception",
        severity="critical",
        state="firing",
        title=f"RuntimeError: {FORMS['colon'][0]}",
        summary=FORMS["aws"][0],
        opened_at=time.time(),
        endpoint="GET /leak",
        message="\n".join(text for text, _ in FORMS.values()),
        traceback=f'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f\nRuntimeError: {message}\n',
        fields=(("token", FORMS["jwt"][0]), ("note", FORMS["stripe"][0])),
        items=tuple(text for text, _ in FORMS.values()),
        thread_title=FORMS["github"][0],
        dashboard_url="https://shop.example/monitoring/",
    )
    assert leaked(json.dumps(build_discord_payload(alert))) == []
    assert leaked(json.dumps(build_webhook_payload(alert))) == []
    mail = build_email(alert, sender="wsgimon@shop.example", recipients=("oncall@shop.example",))
    assert leaked(mail_text(mail)) == [] and "[wsgimon]" in str(mail["Subject"])
    assert build_webhook_payload(alert)["wsgimon"]["dashboard_url"] == "https://shop.example/monitoring/"


def test_the_report_scrubs_rows_stored_before_the_scrubber_knew_a_form() -> None:
    store = MemoryStore(recent_requests=10)
    now = time.time()
    batch = Batch()
    message = FORMS["google"][0]
    batch.issues["i1"] = IssueSample(
        id="i1",
        fingerprint="f1",
        type="RuntimeError",
        title=f"RuntimeError: {message}",
        message=message,
        traceback=None,
        frames=[],
        culprit=None,
        count=1,
        first_seen=now,
        last_seen=now,
        endpoints={("/maps", "GET"): 1},
        minutes={int(now // 60) * 60: 1},
    )
    store.write(batch, process())
    period = period_from(datetime.now(UTC).date(), "week", UTC)
    text, html = render_report(build_report(store, period, Config.build({"storage": "memory://"})))
    assert "REQUEST_DENIED" in text and leaked(text) == [] and leaked(html) == []


# --- the scrubber itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_form_is_scrubbed(form: str) -> None:
    message, secrets = FORMS[form]
    scrubbed = without_secrets(message)
    assert [secret for secret in secrets if secret in scrubbed] == []
    assert REDACTED in scrubbed
    assert without_secrets(scrubbed) == scrubbed  # idempotent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw@db/x", f"postgresql://app:{REDACTED}@db/x"),
        ("https://x-access-token:tok3n@github.com/o/r.git", f"https://x-access-token:{REDACTED}@github.com/o/r.git"),
        (
            "/cb?code=1&password=p&token=t&api_key=k&access_token=a&secret=s&sig=g&signature=z&q=shoes",
            f"/cb?code=1&password={REDACTED}&token={REDACTED}&api_key={REDACTED}&access_token={REDACTED}"
            f"&secret={REDACTED}&sig={REDACTED}&signature={REDACTED}&q=shoes",
        ),
        (
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101&X-Amz-Security-Token=abc&X-Amz-Signature=def",
            f"X-Amz-Credential={REDACTED}%2F20240101&X-Amz-Security-Token={REDACTED}&X-Amz-Signature={REDACTED}",
        ),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("proxy-authorization=Basic dXNlcjpwYXNz", f"proxy-authorization=Basic {REDACTED}"),
        ("Set-Cookie: sid=abc; HttpOnly", f"Set-Cookie: {REDACTED}"),
        ("password: hunter2", f"password: {REDACTED}"),
        ("Password:hunter2", f"Password:{REDACTED}"),
        ("PASSWORD = 'hunter 2'", f"PASSWORD = '{REDACTED}'"),
        ('DB_PASSWORD="x y z"', f'DB_PASSWORD="{REDACTED}"'),
        ('{"password": "p", "user": "bob"}', f'{{"password": "{REDACTED}", "user": "bob"}}'),
        ("{'clientSecret': 'c', 'n': 1}", f"{{'clientSecret': '{REDACTED}', 'n': 1}}"),
        ("{'password': 12345}", f"{{'password': {REDACTED}}}"),
        ("x-api-key: k123", f"x-api-key: {REDACTED}"),
        ("sessionid=s1; csrftoken=c2", f"sessionid={REDACTED}; csrftoken={REDACTED}"),
        ("private_key=abc", f"private_key={REDACTED}"),
        ("key id AKIAIOSFODNN7EXAMPLE.", f"key id {REDACTED}."),
        ("sk_live_abcdefghijklmnop", f"sk_live_{REDACTED}"),
        (PEM, REDACTED),
        (f"…{PEM_BODY}-----END RSA PRIVATE KEY-----\nnext", f"…{REDACTED}\nnext"),  # its start cut away
        (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}", REDACTED),  # its end cut away
    ],
)
def test_forms_in_detail(text: str, expected: str) -> None:
    assert without_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "/api/tokens/42",
        "/users/12/sessions?page=2",
        "SELECT * FROM users WHERE token = ? AND password = %s AND id = $1 AND name = :name",
        "UPDATE t SET password = %(password)s",
        "token expired",
        "password reset for user 12",
        "the session has expired: please log in",
        "550e8400-e29b-41d4-a716-446655440000",
        "commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        'Traceback (most recent call last):\n  File "/srv/app/auth/tokens.py", line 42, in check_password\n'
        "    password = request.form['password']\n"
        '  File "/srv/app/.venv/lib/python3.11/site-packages/flask/sessions.py", line 7, in open_session\n'
        "    def login(user: str, password: str) -> bool:\n"
        "    if password == expected:\n"
        "KeyError: 'password'\n",
        "id aGVsbG8gd29ybGQgdGhpcyBpcyBhbiBpZA in text; order 4f9d2c1e-77aa",
        "Basic information is missing; Bearer of bad news",
        "tokens: 5, passed: 3, author: bob, signal: 9",
        "token: None, password: null, secret: ''",
        "https://example.com/path?page=2&sort=desc",
        "user@example.com wrote at 12:30:45",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert without_secrets(text) == text
    assert without_secrets(text, DEFAULT_REDACT_KEYS) == text


def test_configured_keys_are_scrubbed_as_substrings_too() -> None:
    # Built in, a name counts as a whole part of a key; redact_keys count as substrings (as for queries).
    assert without_secrets("design=flat, compass=north") == "design=flat, compass=north"
    assert without_secrets("design=flat", ("sig",)) == f"design={REDACTED}"
    text = "retry with ssn_number=123-45-6789 and {'SSN': '987'} and code=x"
    assert without_secrets(text, ("ssn",)) == f"retry with ssn_number={REDACTED} and {{'SSN': '{REDACTED}'}} and code=x"


def test_the_storage_url_shows_no_credential_in_reprs_and_errors() -> None:
    url = "postgresql://app:S3cretDbPass@db/shop?sslmode=require&password=QueryPw1&sslpassword=QueryPw2&token=Tok3"
    shown = repr(Config.build({"storage": url}))
    assert "sslmode=require" in shown and "app:***@db/shop" in shown
    assert [secret for secret in ("S3cretDbPass", "QueryPw1", "QueryPw2", "Tok3") if secret in shown] == []
    assert (
        without_passwords("host=db user=app password=S3cret dbname=shop") == "host=db user=app password=*** dbname=shop"
    )
    with pytest.raises(ValueError) as error:
        open_store(
            "mysql://app:S3cretDbPass@db/shop?password=QueryPw1",
            recent_requests=10,
            minute_retention_s=60,
            retention_s=60,
        )
    assert "S3cretDbPass" not in str(error.value) and "QueryPw1" not in str(error.value)
    with pytest.raises(ValueError) as error:
        Config.build({"storage": "nourl?password=QueryPw1"})
    assert "QueryPw1" not in str(error.value)


def test_the_scrubber_cleans_an_8000_char_traceback_and_bounds_a_huge_one() -> None:
    """What it costs is measured in bench/scrubber.py."""
    text = traceback_of(8000)
    assert len(text) == 8000
    scrubbed = without_secrets(text, DEFAULT_REDACT_KEYS)
    assert "S3cretDbPass" not in scrubbed and "hunter2Colon" not in scrubbed and 'app_3.py", line 103' in scrubbed
    huge = text * 1000  # 8 MB
    cut = bounded_without_secrets(huge, 8000, keep="tail", extra_keys=DEFAULT_REDACT_KEYS)
    assert len(cut) == 8000 and "S3cretDbPass" not in cut
