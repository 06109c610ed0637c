"""The delivery channels against real local servers: a stand-in Discord, a JSON receiver, aiosmtpd.

Each case a service can produce is produced by the server (a 429, a hang, a refused login);
nothing is mocked. A channel makes one attempt per ``send`` and says how it went with a
return value or a delivery error; these tests check both, and that the webhook token never
shows up in a log record, an error or a repr.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.standins.discord import DiscordStandIn, RecordingServer, discord_violations, iter_texts
from tests.standins.smtp import Certificate, self_signed, smtp_server
from wsgimon.alerts import smtp
from wsgimon.alerts.discord import LIMITS, DiscordChannel, build_discord_payload, fit_discord_limits
from wsgimon.alerts.email import EmailChannel, build_email, render_parts
from wsgimon.alerts.model import Alert, DeliveryError, Gone, Permanent, Retry, UnknownOutcome
from wsgimon.alerts.webhook import WebhookChannel, build_webhook_payload

NOW = 1_700_000_000.0
TOKEN = "secret-token-abc"


def make_alert(**changes: Any) -> Alert:
    alert = Alert(
        key="exception|ValueError|/checkout|GET",
        rule="exception",
        severity="critical",
        state="firing",
        title="ValueError in GET /checkout",
        summary="37 ValueError in GET /checkout since 12:00 (12 not alerted during the cooldown).",
        opened_at=NOW - 600,
        endpoint="/checkout",
        method="GET",
        error_type="ValueError",
        message="invalid literal for int() with base 10: 'abc'",
        traceback=(
            "Traceback (most recent call last):\n"
            '  File "/srv/shop/views.py", line 42, in checkout\n'
            "    quantity = int(request.form['quantity'])\n"
            "ValueError: invalid literal for int() with base 10: 'abc'\n"
        ),
        count=37,
        first_seen=NOW - 600,
        last_seen=NOW,
        fields=(("error rate", "7.5 %"),),
        dashboard_url="https://shop.example.com/monitoring/",
    )
    return dataclasses.replace(alert, **changes)


def units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


HOSTILE = {
    "100 kB message": make_alert(message="x" * 100_000, traceback="frame\n" * 20_000),
    "60 long fields": make_alert(fields=tuple((f"name {i} " * 40, "v" * 3000) for i in range(60))),
    "multi-byte everywhere": make_alert(
        title="\U0001f4a5" * 400,
        summary="é\U0001f600漢" * 3000,
        message="\U0001f600" * 5000,
        traceback="漢字\n" * 5000,
        fields=tuple(("\U0001f600" * 300, "\U0001f600" * 2000) for _ in range(30)),
    ),
    "mentions and markup": make_alert(
        title="@everyone ``` **bold** [x](https://evil.example)",
        summary="@here <@123> <@&456> ||spoiler|| # heading",
        message="``` closing the fence @everyone\n```py\nstill inside",
        endpoint="/a`b`c",
        fields=(("@everyone", "<!channel> [click](https://evil.example)"),),
    ),
    "empty and odd texts": make_alert(
        title="",
        summary="",
        message="",
        traceback="   ",
        fields=(("", ""), (" ", " ")),
        first_seen=float("nan"),
        last_seen=float("inf"),
        dashboard_url="javascript:alert(1)",
        severity="unheard-of",
    ),
    "lone surrogate": make_alert(message="bad \udcff bytes", title="T\ud800"),
}


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn(token=TOKEN) as server:
        yield server
    assert not server.errors


@pytest.fixture
def receiver() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server
    assert not server.errors


@pytest.fixture
def channel(discord: DiscordStandIn) -> Iterator[DiscordChannel]:
    channel = DiscordChannel(discord.webhook_url, timeout_s=2.0)
    yield channel
    channel.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Discord: the payload.


def test_payload_of_a_normal_alert_reads_well() -> None:
    payload = build_discord_payload(make_alert())
    assert discord_violations(payload) == []
    assert payload["allowed_mentions"] == {"parse": []}
    assert "CRITICAL" in payload["content"] and "ValueError in GET /checkout" in payload["content"]
    (embed,) = payload["embeds"]
    assert embed["title"] == "ValueError in GET /checkout"
    assert embed["color"] == 0xE74C3C
    assert embed["url"] == "https://shop.example.com/monitoring/"
    assert embed["footer"]["text"].startswith("wsgimon")
    assert embed["timestamp"] == "2023-11-14T22:13:20Z"
    description = embed["description"]
    assert description.startswith("37 ValueError in GET /checkout")
    assert "```\ninvalid literal for int() with base 10: 'abc'\n```" in description
    assert "```py\n" in description and description.rstrip().endswith("```")
    fields = {item["name"]: item["value"] for item in embed["fields"]}
    assert fields["Endpoint"] == "`/checkout`"
    assert fields["Method"] == "`GET`"
    assert fields["Error type"] == "`ValueError`"
    assert fields["Count"] == "37"
    assert fields["First seen"] == f"<t:{int(NOW - 600)}:R>"
    assert fields["Last seen"] == f"<t:{int(NOW)}:R>"
    assert fields["error rate"] == "7.5 %"


def test_resolved_is_green_and_says_so() -> None:
    payload = build_discord_payload(make_alert(state="resolved"))
    embed = payload["embeds"][0]
    assert embed["color"] == 0x2ECC71
    assert embed["title"].startswith("Resolved")
    assert "RESOLVED" in payload["content"]
    warning = build_discord_payload(make_alert(severity="warning"))["embeds"][0]["color"]
    info = build_discord_payload(make_alert(severity="info"))["embeds"][0]["color"]
    assert len({embed["color"], warning, info, 0xE74C3C}) == 4


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_alerts_stay_within_every_limit(name: str, discord: DiscordStandIn, channel: DiscordChannel) -> None:
    payload = build_discord_payload(HOSTILE[name])
    assert discord_violations(payload) == []
    embed = payload["embeds"][0]
    assert len(embed.get("fields", [])) <= LIMITS["fields"]
    assert all(units(text) <= LIMITS["description"] for text in iter_texts(payload))
    assert channel.send(HOSTILE[name]) is None  # and the stand-in agrees
    assert discord.violations == []
    assert discord.requests[-1].answered == 200


def test_long_inputs_are_cut_with_what_matters_kept() -> None:
    payload = build_discord_payload(HOSTILE["100 kB message"])
    description = payload["embeds"][0]["description"]
    assert "…" in description and units(description) <= LIMITS["description"]
    assert "frame\n```" in description  # a traceback is cut at its start: its end is what matters
    crowded = build_discord_payload(HOSTILE["60 long fields"])["embeds"][0]
    assert crowded["fields"][-1]["value"].endswith("more not shown")
    assert crowded["fields"][0]["name"] == "Endpoint"  # the alert's own facts come first


def test_mentions_and_markup_cannot_act() -> None:
    payload = build_discord_payload(HOSTILE["mentions and markup"])
    embed = payload["embeds"][0]
    assert payload["allowed_mentions"] == {"parse": []}
    assert "\\[x\\]\\(https\\://evil.example\\)" in embed["title"]  # no masked link, no autolink
    assert "\\<@123\\>" in embed["description"]
    # A fence in the message cannot close the code block it is shown in.
    block = re.search(r"```\n(.*?)\n```", embed["description"], re.S)
    assert block is not None and "still inside" in block.group(1)
    fields = {item["name"]: item["value"] for item in embed["fields"]}
    assert fields["Endpoint"].count("`") == 2


def test_empty_texts_become_valid_ones() -> None:
    payload = build_discord_payload(HOSTILE["empty and odd texts"])
    embed = payload["embeds"][0]
    assert embed["title"] == "wsgimon alert"
    assert "url" not in embed  # a javascript: link is dropped
    assert {"First seen", "Last seen"}.isdisjoint(item["name"] for item in embed["fields"])
    assert discord_violations(payload) == []


def test_fit_discord_limits_repairs_any_payload() -> None:
    embed = {
        "title": "t" * 1000,
        "description": "d" * 10_000,
        "footer": {"text": "f" * 5000},
        "author": {"name": "a" * 1000},
        "fields": [{"name": "n" * 500, "value": "v" * 5000, "inline": True} for _ in range(40)],
    }
    payload = {"content": "@everyone " * 1000, "embeds": [dict(embed) for _ in range(12)]}
    fitted = fit_discord_limits(payload)
    assert discord_violations(fitted) == []
    assert len(fitted["embeds"]) == 10
    assert payload["embeds"][0]["title"] == "t" * 1000  # the input is left alone


# Discord: sending and the answers.


def test_send_posts_with_wait_and_keeps_the_query(discord: DiscordStandIn) -> None:
    channel = DiscordChannel(discord.webhook_url + "?thread_id=987", timeout_s=2.0)
    try:
        assert channel.send(make_alert()) is None
    finally:
        channel.close()
    (request,) = discord.requests
    assert request.path == f"/api/webhooks/123/{TOKEN}"
    assert request.query == {"thread_id": ["987"], "wait": ["true"]}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("wsgimon")
    assert request.json == build_discord_payload(make_alert())
    assert request.answered == 200 and discord.violations == []


def test_the_standin_refuses_what_discord_refuses(discord: DiscordStandIn) -> None:
    too_long = {"embeds": [{"title": "t" * 300, "fields": [{"name": "n", "value": ""}]}]}
    response = httpx.post(discord.webhook_url + "?wait=true", json=too_long)
    assert response.status_code == 400
    errors = response.json()["errors"]["embeds"]["0"]
    assert errors["title"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert errors["fields"]["0"]["value"]["_errors"][0]["code"] == "BASE_TYPE_REQUIRED"
    assert len(discord.violations) == 2
    assert httpx.post(discord.url + "/api/webhooks/123/wrong", json={"content": "x"}).status_code == 401
    assert httpx.post(discord.url + "/api/webhooks/999/x", json={"content": "x"}).status_code == 404


def test_429_is_retry_after_discords_delay(discord: DiscordStandIn, channel: DiscordChannel) -> None:
    discord.rate_limit(retry_after=0.3)
    with pytest.raises(Retry) as caught:
        channel.send(make_alert())
    assert caught.value.after_s == pytest.approx(0.3)
    assert "429" in str(caught.value)
    assert channel.send(make_alert()) is None  # the next one goes through


def test_429_without_a_json_body_uses_retry_after(discord: DiscordStandIn, channel: DiscordChannel) -> None:
    discord.respond(429, body="<html>slow down</html>", headers={"Retry-After": "2", "Content-Type": "text/html"})
    with pytest.raises(Retry) as caught:
        channel.send(make_alert())
    assert caught.value.after_s == 2.0


def test_an_empty_bucket_returns_the_wait(discord: DiscordStandIn, channel: DiscordChannel) -> None:
    discord.exhaust_bucket(reset_after=1.5)
    assert channel.send(make_alert()) == pytest.approx(1.5)
    assert channel.send(make_alert()) is None  # remaining 4: no wait


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retry(status: int, discord: DiscordStandIn, channel: DiscordChannel) -> None:
    discord.fail(status)
    with pytest.raises(Retry) as caught:
        channel.send(make_alert())
    assert caught.value.after_s is None
    assert str(status) in str(caught.value)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_dead_webhook_is_gone(status: int, discord: DiscordStandIn, channel: DiscordChannel) -> None:
    discord.fail(status)
    with pytest.raises(Gone, match=str(status)):
        channel.send(make_alert())


def test_a_deleted_webhook_is_gone_for_real(discord: DiscordStandIn) -> None:
    channel = DiscordChannel(discord.url + "/api/webhooks/999/" + TOKEN, timeout_s=2.0)
    try:
        with pytest.raises(Gone, match="404"):
            channel.send(make_alert())
    finally:
        channel.close()


def test_400_is_permanent_with_discords_reason(discord: DiscordStandIn, channel: DiscordChannel) -> None:
    body = {
        "code": 50035,
        "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "X", "message": "Must be short."}]}}}},
        "message": "Invalid Form Body",
    }
    discord.respond(400, body=body)
    with pytest.raises(Permanent) as caught:
        channel.send(make_alert())
    assert str(caught.value) == (
        "Discord answered 400 Bad Request: Invalid Form Body (50035); embeds.0.description: Must be short."
    )


def test_a_hanging_server_is_retry_after_the_timeout(discord: DiscordStandIn) -> None:
    discord.hang(30)
    channel = DiscordChannel(discord.webhook_url, timeout_s=0.5)
    try:
        with pytest.raises(UnknownOutcome, match="no answer within 0.5 s"):
            channel.send(make_alert())
    finally:
        channel.close()


def test_a_closed_port_is_retry() -> None:
    channel = DiscordChannel(f"http://127.0.0.1:{closed_port()}/api/webhooks/1/{TOKEN}", timeout_s=2.0)
    try:
        with pytest.raises(Retry, match="cannot reach Discord at 127.0.0.1"):
            channel.send(make_alert())
    finally:
        channel.close()


def test_a_closed_channel_sends_nothing(discord: DiscordStandIn) -> None:
    channel = DiscordChannel(discord.webhook_url)
    channel.close()
    channel.close()
    with pytest.raises(Gone, match="closed"):
        channel.send(make_alert())
    assert discord.requests == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://discord.example/api/webhooks/1/{TOKEN}", "https"),
        (f"ftp://discord.com/api/webhooks/1/{TOKEN}", "https"),
        (f"https:///api/webhooks/1/{TOKEN}", "no host"),
        (f"https://discord.com/api/webhooks/1/{TOKEN} ", "white space"),
        (f"https://discord.com:99999/api/webhooks/1/{TOKEN}", "cannot be parsed"),
        (f"https://user:{TOKEN}@discord.com/api/webhooks/1/x", "user:password"),
        ("", "empty"),
    ],
)
def test_bad_urls_are_refused_without_showing_them(url: str, problem: str) -> None:
    for make in (DiscordChannel, WebhookChannel):
        with pytest.raises(ValueError, match=problem) as caught:
            make(url)
        assert TOKEN not in str(caught.value) and "discord" not in str(caught.value).replace("Discord", "")


def test_the_token_never_reaches_logs_errors_or_reprs(
    discord: DiscordStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = DiscordChannel(discord.webhook_url, timeout_s=0.5)
    dead = DiscordChannel(f"http://127.0.0.1:{closed_port()}/api/webhooks/1/{TOKEN}", timeout_s=0.5)
    errors: list[DeliveryError] = []
    try:
        assert channel.send(make_alert()) is None
        discord.rate_limit()
        discord.fail(500)
        discord.fail(404)
        discord.respond(400, body={"message": f"echoing /api/webhooks/123/{TOKEN}", "code": 1})
        discord.hang(30)
        for target in (channel,) * 5 + (dead,):
            with pytest.raises(DeliveryError) as caught:
                target.send(make_alert())
            errors.append(caught.value)
        texts = [repr(channel), repr(dead), *(str(e) for e in errors), *(repr(e) for e in errors)]
        texts += [record.getMessage() for record in caplog.records]
        texts += [caplog.text]
        assert len(errors) == 6 and all(e.__cause__ is None and e.__context__ is None for e in errors)
        assert not [text for text in texts if TOKEN in text]
        assert "***" in str(errors[3])  # the 400 body echoed the URL: masked
        # httpx's own request log (at INFO, with the URL) is masked, at whatever level the app sets it.
        caplog.clear()
        httpx_logger = logging.getLogger("httpx")
        level = httpx_logger.level
        httpx_logger.setLevel(logging.INFO)
        try:
            assert channel.send(make_alert()) is None
        finally:
            httpx_logger.setLevel(level)
        lines = [record.getMessage() for record in caplog.records if record.name == "httpx"]
        assert lines and all(TOKEN not in line and "***" in line for line in lines)
    finally:
        channel.close()
        dead.close()


# The webhook (Slack-compatible) channel.


def test_webhook_json_carries_slack_text_and_the_whole_alert(receiver: RecordingServer) -> None:
    channel = WebhookChannel(receiver.url + "/services/T000/B000/" + TOKEN, timeout_s=2.0)
    try:
        assert channel.send(make_alert()) is None
    finally:
        channel.close()
    (request,) = receiver.requests
    body = request.json
    assert request.headers["content-type"] == "application/json"
    assert body["text"].startswith(":red_circle: *CRITICAL* ValueError in GET /checkout")
    assert "\n" not in body["text"]
    assert [block["type"] for block in body["blocks"]][0] == "header"
    assert {"section", "actions", "context"} <= {block["type"] for block in body["blocks"]}
    structured = body["wsgimon"]
    assert set(structured) == {f.name for f in dataclasses.fields(Alert)}
    assert structured["opened_at"] == "2023-11-14T22:03:20Z"
    assert structured["last_seen"] == "2023-11-14T22:13:20Z"
    assert structured["count"] == 37
    assert structured["fields"] == [{"name": "error rate", "value": "7.5 %"}]
    assert structured["traceback"] == make_alert().traceback


def test_webhook_text_cannot_mention_or_link() -> None:
    payload = build_webhook_payload(make_alert(title="<!everyone> <https://evil.example|click> & co"))
    assert "&lt;!everyone&gt; &lt;https://evil.example|click&gt; &amp; co" in payload["text"]
    hostile = build_webhook_payload(HOSTILE["100 kB message"])
    assert all(len(json.dumps(block)) < 4000 for block in hostile["blocks"])
    assert hostile["wsgimon"]["message"] == "x" * 100_000  # structured data is kept whole


@pytest.mark.parametrize(
    ("status", "headers", "error", "after"),
    [
        (429, {"Retry-After": "2"}, Retry, 2.0),
        (503, {}, Retry, None),
        (400, {}, Permanent, None),
        (401, {}, Gone, None),
        (403, {}, Gone, None),
        (404, {}, Gone, None),
        (410, {}, Gone, None),
        (301, {"Location": f"https://elsewhere.example/{TOKEN}"}, Gone, None),
    ],
)
def test_webhook_answers_map_to_outcomes(
    status: int, headers: dict[str, str], error: type[DeliveryError], after: float | None, receiver: RecordingServer
) -> None:
    receiver.respond(status, body="invalid_payload" if status == 400 else "", headers=headers)
    channel = WebhookChannel(receiver.url + "/hooks/" + TOKEN, timeout_s=2.0)
    try:
        with pytest.raises(error) as caught:
            channel.send(make_alert())
    finally:
        channel.close()
    assert type(caught.value) is error
    assert TOKEN not in str(caught.value)
    if isinstance(caught.value, Retry):
        assert caught.value.after_s == after
    if status == 400:
        assert str(caught.value) == "webhook answered 400 Bad Request: invalid_payload"


def test_webhook_timeout_is_retry(receiver: RecordingServer) -> None:
    receiver.hang(30)
    channel = WebhookChannel(receiver.url + "/hooks/" + TOKEN, timeout_s=0.5)
    try:
        with pytest.raises(UnknownOutcome, match="no answer within"):
            channel.send(make_alert())
    finally:
        channel.close()
    assert repr(channel) == f"<WebhookChannel to 127.0.0.1:{receiver.port}>"


# E-mail.

SENDER = "wsgimon <alerts@shop.example.com>"


def plain_settings(port: int, **changes: Any) -> smtp.SMTPSettings:
    return smtp.SMTPSettings(host="127.0.0.1", port=port, starttls=False, sender=SENDER, timeout_s=5.0, **changes)


def test_email_is_multipart_alternative_with_both_parts() -> None:
    with smtp_server() as server:
        channel = EmailChannel(plain_settings(server.port), ("ops@shop.example.com", "Dev <dev@shop.example.com>"))
        assert channel.send(make_alert()) is None
        (received,) = server.wait_for_messages(1)
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == SENDER
    assert message["To"] == "ops@shop.example.com, Dev <dev@shop.example.com>"
    assert message["Subject"] == "[wsgimon] CRITICAL: ValueError in GET /checkout"
    assert abs(parsedate_to_datetime(message["Date"]).timestamp() - time.time()) < 300
    assert re.fullmatch(r"<[^@<>]+@shop\.example\.com>", message["Message-ID"])
    assert message["Auto-Submitted"] == "auto-generated"
    assert received.mail_from == "alerts@shop.example.com"
    assert received.rcpt_tos == ["ops@shop.example.com", "dev@shop.example.com"]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        for expected in ("ValueError in GET /checkout", "37", "12", "invalid literal for int()", "views.py"):
            assert expected in body
    assert "Endpoint:   GET /checkout" in text
    assert "https://shop.example.com/monitoring/" in text


class _Markup(HTMLParser):
    """Collects the tags and every attribute value of a page (text, escaped or not, is not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.values: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.values.extend((tag, name, value or "") for name, value in attrs)


def html_of(alert: Alert) -> str:
    part = build_email(alert, sender=SENDER, recipients=["ops@shop.example.com"]).get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_email_html_is_self_contained() -> None:
    hostile = make_alert(message="<script>alert(1)</script><img src=https://evil.example/x.png>")
    content = html_of(hostile)
    markup = _Markup()
    markup.feed(content)
    assert markup.tags.isdisjoint({"img", "script", "link", "style", "iframe", "object", "form", "base"})
    assert "&lt;script&gt;" in content and "&lt;img src=https://evil.example/x.png&gt;" in content
    links = [(tag, name, value) for tag, name, value in markup.values if re.search(r"https?:|//|url\(", value)]
    assert links == [("a", "href", "https://shop.example.com/monitoring/")]
    assert set(re.findall(r"""https?://[^\s"'<>&]+""", html_of(make_alert()))) == {
        "https://shop.example.com/monitoring/"
    }
    assert "javascript:" not in html_of(make_alert(dashboard_url="javascript:alert(1)"))


def test_resolved_email_subject() -> None:
    message = build_email(make_alert(state="resolved"), sender=SENDER, recipients=["a@b.example"])
    assert message["Subject"] == "[wsgimon] RESOLVED: ValueError in GET /checkout"
    multiline = build_email(make_alert(title="two\r\nlines"), sender=SENDER, recipients=["a@b.example"])
    assert multiline["Subject"] == "[wsgimon] CRITICAL: two lines"


def test_email_with_auth() -> None:
    with smtp_server(auth=("alerts", "s3cret-pass")) as server:
        settings = plain_settings(server.port, username="alerts", password="s3cret-pass")
        EmailChannel(settings, ("ops@shop.example.com",)).send(make_alert())
        (received,) = server.wait_for_messages(1)
        assert received.login == "alerts"
        with pytest.raises(Gone, match="refused the login") as caught:
            EmailChannel(plain_settings(server.port, username="alerts", password="wrong-pass"), ("a@b.example",)).send(
                make_alert()
            )
        assert "wrong-pass" not in str(caught.value) and caught.value.__context__ is None
        with pytest.raises(Gone, match="requires a login"):
            EmailChannel(plain_settings(server.port), ("a@b.example",)).send(make_alert())
    assert len(server.received) == 1


def test_refused_and_deferred_recipients() -> None:
    with smtp_server() as server:
        channel = EmailChannel(plain_settings(server.port), ("ops@shop.example.com",))
        server.rcpt_reply = "550 5.1.1 No such user"
        with pytest.raises(Permanent, match="550 5.1.1 No such user"):
            channel.send(make_alert())
        server.rcpt_reply = "451 4.7.1 Greylisted, try again"
        with pytest.raises(Retry, match="451"):
            channel.send(make_alert())
        server.rcpt_reply = None
        server.data_reply = "452 4.3.1 Insufficient system storage"
        with pytest.raises(Retry, match="452"):
            channel.send(make_alert())


def test_a_closed_smtp_port_is_retry() -> None:
    port = closed_port()
    with pytest.raises(Retry, match=f"cannot connect to SMTP server 127.0.0.1:{port}: connection refused"):
        EmailChannel(plain_settings(port), ("ops@shop.example.com",)).send(make_alert())


def test_starttls_required_but_not_offered_is_gone() -> None:
    with smtp_server() as server:
        settings = dataclasses.replace(plain_settings(server.port), starttls=True)
        with pytest.raises(Gone, match="does not offer STARTTLS"):
            EmailChannel(settings, ("ops@shop.example.com",)).send(make_alert())
    assert server.received == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    made = self_signed(Path(tmp_path_factory.mktemp("tls")))
    if made is None:
        pytest.skip("openssl is not installed")
    return made


def test_starttls_verifies_the_certificate(certificate: Certificate) -> None:
    with smtp_server(tls=certificate.server_context(), auth=("alerts", "s3cret-pass")) as server:
        settings = dataclasses.replace(
            plain_settings(server.port), starttls=True, username="alerts", password="s3cret-pass"
        )
        trusting = EmailChannel(settings, ("ops@shop.example.com",), ssl_context=certificate.client_context())
        trusting.send(make_alert())
        (received,) = server.wait_for_messages(1)
        assert received.tls and received.login == "alerts"
        with pytest.raises(Gone, match="certificate .* does not verify"):
            EmailChannel(settings, ("ops@shop.example.com",)).send(make_alert())  # the default context
    assert len(server.received) == 1


def test_smtps(certificate: Certificate) -> None:
    with smtp_server(tls=certificate.server_context(), implicit_tls=True) as server:
        settings = dataclasses.replace(plain_settings(server.port), ssl=True, starttls=False)
        EmailChannel(settings, ("ops@shop.example.com",), ssl_context=certificate.client_context()).send(make_alert())
        (received,) = server.wait_for_messages(1)
        assert received.tls


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"sender": "alerts@shop.example.com\r\nBcc: victim@example.com"}, "line break"),
        ({"sender": "not-an-address"}, "local@domain"),
        ({"sender": "a@"}, "local@domain"),
        ({"sender": "a b@example.com"}, "local@domain"),
        ({"ssl": True, "starttls": True}, "exclude each other"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"host": ""}, "host"),
        ({"host": "smtp.example.com/x"}, "host"),
        ({"username": "alerts"}, "username and password"),
        ({"username": "alerts", "password": "a\nb"}, "line breaks"),
        ({"timeout_s": 0}, "timeout"),
    ],
)
def test_bad_settings_fail_validate(changes: dict[str, Any], problem: str) -> None:
    settings = dataclasses.replace(plain_settings(25), **changes)
    with pytest.raises(ValueError, match=problem):
        settings.validate()
    with pytest.raises(ValueError, match=problem):
        EmailChannel(settings, ("ops@shop.example.com",))


def test_settings_repr_hides_the_password() -> None:
    settings = plain_settings(25, username="alerts", password="s3cret-pass")
    settings.validate()
    assert "s3cret-pass" not in repr(settings) and "password='***'" in repr(settings)
    channel = EmailChannel(settings, ("ops@shop.example.com",))
    assert "s3cret-pass" not in repr(channel)


def test_parse_recipients() -> None:
    assert smtp.parse_recipients(" a@x.example, Ops <ops@x.example>,, A@X.example ") == (
        "a@x.example",
        "Ops <ops@x.example>",
    )
    for bad in ("a@x.example, bad", "a@x.example\r\nBcc: evil@x.example", "", "<>", "a@@x.example", "a@-x.example"):
        with pytest.raises(ValueError):
            smtp.parse_recipients(bad)
    with pytest.raises(ValueError, match="recipient"):
        EmailChannel(plain_settings(25), ("ops@x.example", "nope"))


def test_send_fills_missing_headers() -> None:
    message = EmailMessage()
    message["To"] = "ops@shop.example.com"
    message["Subject"] = "weekly report"
    message.set_content("numbers")
    with smtp_server() as server:
        smtp.send(plain_settings(server.port), message)
        (received,) = server.wait_for_messages(1)
    assert received.message["From"] == SENDER
    assert received.message["Date"] and received.message["Message-ID"]


def test_the_samples_in_docs_are_current() -> None:
    """docs/ shows what is sent: after a change of format, run ``python -m tests.alerts.make_samples``."""
    from tests.alerts.make_samples import DOCS, discord_preview, sample_alert

    alert = sample_alert()
    payload = build_discord_payload(alert)
    assert discord_violations(payload) == []
    assert json.loads((DOCS / "alert-sample-discord.json").read_text(encoding="utf-8")) == payload
    assert (DOCS / "alert-sample-email.html").read_text(encoding="utf-8") == render_parts(alert)[1]
    assert (DOCS / "alert-sample-discord.png").read_bytes().startswith(b"\x89PNG")
    assert "<pre>" in discord_preview(payload)


def test_send_with_invalid_settings_is_gone_not_valueerror() -> None:
    message = EmailMessage()
    message["To"] = "ops@shop.example.com"
    message.set_content("numbers")
    with pytest.raises(Gone, match="SMTP settings are invalid: .*exclude each other"):
        smtp.send(dataclasses.replace(plain_settings(25), ssl=True, starttls=True), message)


def test_a_private_ca_file_makes_starttls_verify_without_ssl_cert_file(certificate: Certificate) -> None:
    """smtp_ca_file: the server's private CA is trusted beside the system's (no SSL_CERT_FILE to change)."""
    with smtp_server(tls=certificate.server_context(), auth=("alerts", "s3cret-pass")) as server:
        settings = dataclasses.replace(
            plain_settings(server.port),
            starttls=True,
            username="alerts",
            password="s3cret-pass",
            ca_file=str(certificate.cert),
        )
        EmailChannel(settings, ("ops@shop.example.com",)).send(make_alert())
        (received,) = server.wait_for_messages(1)
        assert received.tls
        with pytest.raises(Gone, match="does not verify"):
            EmailChannel(dataclasses.replace(settings, ca_file=None), ("ops@shop.example.com",)).send(make_alert())


def test_starttls_off_against_a_server_that_wants_it_says_so(certificate: Certificate) -> None:
    with smtp_server(tls=certificate.server_context(), auth=("alerts", "s3cret-pass")) as server:
        settings = dataclasses.replace(plain_settings(server.port), username="alerts", password="s3cret-pass")
        with pytest.raises(Gone, match="smtp_starttls=1"):
            EmailChannel(settings, ("ops@shop.example.com",)).send(make_alert())
    with smtp_server(tls=certificate.server_context()) as server, pytest.raises(Gone, match="smtp_starttls=1"):
        EmailChannel(plain_settings(server.port), ("ops@shop.example.com",)).send(make_alert())
