"""A stand-in Discord webhook (and a plain JSON receiver): a real HTTP server on 127.0.0.1.

Usage::

    with DiscordStandIn() as discord:
        discord.rate_limit(retry_after=0.3)          # the next request gets a 429
        channel = DiscordChannel(discord.webhook_url)
        ...
        assert discord.violations == []              # no payload broke a limit of Discord's

Every request is recorded (path, query, headers, JSON body). Every payload is checked
against Discord's documented limits, independently of the code under test: a payload that
breaks one is answered 400 with an error shaped like Discord's, and the violation is kept
in :attr:`DiscordStandIn.violations` whatever was scripted. Lengths are counted in UTF-16
code units (what Discord's JavaScript counts; never fewer than code points).

Scripted answers are consumed one per request, in order; without one the server answers
like Discord (200 with the message for ``?wait=true``, else 204). The server always stops
(``with`` or :meth:`stop`), releasing hanging requests first.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DiscordStandIn", "RecordedRequest", "RecordingServer", "discord_violations"]

LIMITS = {
    "content": 2000,
    "embeds": 10,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "author": 256,
    "total": 6000,
}
_TOP_KEYS = {
    "content",
    "username",
    "avatar_url",
    "tts",
    "embeds",
    "allowed_mentions",
    "components",
    "attachments",
    "flags",
    "thread_name",
    "applied_tags",
    "poll",
}
_EMBED_KEYS = {
    "title",
    "type",
    "description",
    "url",
    "timestamp",
    "color",
    "footer",
    "image",
    "thumbnail",
    "video",
    "provider",
    "author",
    "fields",
}


@dataclass(frozen=True)
class Violation:
    path: tuple[str, ...]
    code: str
    message: str

    def __str__(self) -> str:
        return f"{'.'.join(self.path) or '(payload)'}: {self.code}: {self.message}"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def discord_violations(payload: Any) -> list[Violation]:
    """Every way ``payload`` breaks Discord's documented rules for an execute-webhook body."""
    problems: list[Violation] = []

    def check_text(value: Any, path: tuple[str, ...], limit: int, *, required: bool = False) -> int:
        if value is None and not required:
            return 0
        if not isinstance(value, str):
            problems.append(Violation(path, "BASE_TYPE_STRING", "Must be a string."))
            return 0
        if required and not value.strip():
            problems.append(Violation(path, "BASE_TYPE_REQUIRED", "This field is required"))
        size = _units(value)
        if size > limit:
            problems.append(Violation(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."))
        return size

    if not isinstance(payload, dict):
        return [Violation((), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")]
    for key in sorted(set(payload) - _TOP_KEYS):
        problems.append(Violation((key,), "UNKNOWN_FIELD", "Not a field of an execute-webhook body."))
    check_text(payload.get("content"), ("content",), LIMITS["content"])
    embeds = payload.get("embeds") or []
    if not payload.get("content") and not embeds:
        problems.append(Violation((), "EMPTY_MESSAGE", "Cannot send an empty message"))
    if not isinstance(embeds, list):
        problems.append(Violation(("embeds",), "BASE_TYPE_ARRAY", "Must be an array."))
        embeds = []
    if len(embeds) > LIMITS["embeds"]:
        problems.append(Violation(("embeds",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."))
    total = 0
    for index, embed in enumerate(embeds):
        where = ("embeds", str(index))
        if not isinstance(embed, dict):
            problems.append(Violation(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"))
            continue
        for key in sorted(set(embed) - _EMBED_KEYS):
            problems.append(Violation((*where, key), "UNKNOWN_FIELD", "Not a field of an embed."))
        total += check_text(embed.get("title"), (*where, "title"), LIMITS["title"])
        total += check_text(embed.get("description"), (*where, "description"), LIMITS["description"])
        if "description" in embed and embed["description"] == "":
            problems.append(Violation((*where, "description"), "BASE_TYPE_REQUIRED", "Must not be empty."))
        for part, name, limit in (("footer", "text", LIMITS["footer"]), ("author", "name", LIMITS["author"])):
            if part in embed:
                value = embed[part]
                if not isinstance(value, dict):
                    problems.append(Violation((*where, part), "DICT_TYPE_CONVERT", "Must be an object."))
                else:
                    total += check_text(value.get(name), (*where, part, name), limit, required=True)
        fields = embed.get("fields", [])
        if not isinstance(fields, list):
            problems.append(Violation((*where, "fields"), "BASE_TYPE_ARRAY", "Must be an array."))
            fields = []
        if len(fields) > LIMITS["fields"]:
            problems.append(Violation((*where, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
        for number, item in enumerate(fields):
            spot = (*where, "fields", str(number))
            if not isinstance(item, dict):
                problems.append(Violation(spot, "DICT_TYPE_CONVERT", "Must be an object."))
                continue
            total += check_text(item.get("name"), (*spot, "name"), LIMITS["field_name"], required=True)
            total += check_text(item.get("value"), (*spot, "value"), LIMITS["field_value"], required=True)
            if "inline" in item and not isinstance(item["inline"], bool):
                problems.append(Violation((*spot, "inline"), "BASE_TYPE_BOOLEAN", "Must be either true or false."))
        colour = embed.get("color")
        if colour is not None and (
            isinstance(colour, bool) or not isinstance(colour, int) or not 0 <= colour <= 0xFFFFFF
        ):
            problems.append(Violation((*where, "color"), "NUMBER_TYPE_COERCE", "Must be a colour number."))
        url = embed.get("url")
        if url is not None:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2048:
                problems.append(Violation((*where, "url"), "URL_TYPE_INVALID_URL", "Not a well formed URL."))
        stamp = embed.get("timestamp")
        if stamp is not None:
            try:
                datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            except ValueError:
                problems.append(Violation((*where, "timestamp"), "DATE_TYPE_PARSE", "Could not parse the date."))
    if total > LIMITS["total"]:
        problems.append(Violation(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"))
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse") if isinstance(mentions, dict) else None
        if not isinstance(parse, list) or not set(parse) <= {"roles", "users", "everyone"}:
            problems.append(Violation(("allowed_mentions", "parse"), "ENUM_TYPE_COERCE", "Not a valid list."))
    return problems


def discord_error_body(problems: list[Violation]) -> dict[str, Any]:
    """The 400 body Discord gives for an invalid form: errors nested along each path."""
    errors: dict[str, Any] = {}
    for problem in problems:
        node = errors
        for step in problem.path:
            node = node.setdefault(step, {})
        node.setdefault("_errors", []).append({"code": problem.code, "message": problem.message})
    return {"code": 50035, "errors": errors, "message": "Invalid Form Body"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    json: Any  # None when the body is not JSON
    answered: int | None = None  # the status sent back (None: still hanging, or released by stop())


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0  # wait this long (or until the server stops) before answering
    drip_s: float = 0.0  # send the answer a byte at a time, this long apart


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: nothing outlives a test
    owner: RecordingServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a test timeout) is expected; anything else is kept for the test."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.owner.errors.append(repr(error))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends on its own too
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        self.server.owner._connections.discard(self.connection)
        super().finish()

    def _any(self) -> None:
        self.server.owner._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: tests read :attr:`RecordingServer.requests` instead."""


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers what a test scripts.

    Without a script it answers like a Slack incoming webhook: 200 ``ok``.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._script: deque[Answer] = deque()
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> RecordingServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="standin-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging answers, stop serving, close every connection and join every thread."""
        self._release.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        for connection in list(self._connections):
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Scripting: each call queues answers for the next requests, in order.

    def respond(self, status: int, *, body: Any = b"", headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (a dict or list body is sent as JSON)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._script.extend(Answer(status, body, headers) for _ in range(times))

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` (or until the server stops) before answering the next ``times`` requests."""
        with self._lock:
            self._script.extend(
                Answer(200, b"ok", {"Content-Type": "text/plain"}, hang_s=seconds) for _ in range(times)
            )

    def drip(self, every_s: float, *, times: int = 1) -> None:
        """Answer the next ``times`` requests a byte every ``every_s`` (each read returns; the whole takes long)."""
        with self._lock:
            self._script.extend(
                Answer(200, b"ok", {"Content-Type": "text/plain"}, drip_s=every_s) for _ in range(times)
            )

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (no fixed sleeps in tests)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} requests arrived, expected {count} within {timeout} s")
            return list(self.requests)

    # Serving.

    def _serve(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            json=data,
        )
        answer = self.answer(request)
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
            if self._script:
                answer = self._script.popleft()
        if answer.hang_s and self._release.wait(answer.hang_s):
            return  # stopping: the client has long given up
        if answer.drip_s:
            self._drip(handler, answer)
            return
        request.answered = answer.status  # before the answer leaves: the client may look at once
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        if answer.body:
            handler.wfile.write(answer.body)
        handler.wfile.flush()

    def _drip(self, handler: _Handler, answer: Answer) -> None:
        head = f"HTTP/1.1 {answer.status} OK\r\nContent-Length: {len(answer.body)}\r\n\r\n".encode() + answer.body
        for index in range(len(head)):
            if self._release.wait(answer.drip_s):
                return
            try:
                handler.wfile.write(head[index : index + 1])
                handler.wfile.flush()
            except OSError:
                return  # the client gave up: what it should do

    def answer(self, request: RecordedRequest) -> Answer:
        """What to answer when nothing is scripted (subclasses check the request here)."""
        return Answer(200, b"ok", {"Content-Type": "text/plain"})


class DiscordStandIn(RecordingServer):
    """Answers like Discord's execute-webhook endpoint, checking every payload against Discord's limits."""

    def __init__(self, webhook_id: str = "123", token: str = "secret-token-abc") -> None:
        super().__init__()
        self.webhook_id = webhook_id
        self.token = token
        self.violations: list[Violation] = []
        self._messages = 0

    @property
    def webhook_url(self) -> str:
        """``http://127.0.0.1:PORT/api/webhooks/123/secret-token-abc``"""
        return f"{self.url}/api/webhooks/{self.webhook_id}/{self.token}"

    def rate_limit(
        self, retry_after: float = 0.3, *, times: int = 1, global_: bool = False, header: bool = True
    ) -> None:
        """A 429 as Discord sends it: ``retry_after`` in the JSON body and (``header``) ``Retry-After``."""
        headers = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(retry_after)}
        if header:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        if global_:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
        self.respond(429, body=body, headers=headers, times=times)

    def exhaust_bucket(self, reset_after: float = 1.5, *, times: int = 1) -> None:
        """Accept the next messages but say the bucket is empty: ``X-RateLimit-Remaining: 0``."""
        for _ in range(times):
            body = self._message_body(None)
            self.respond(200, body=body, headers=self._rate_headers(remaining=0, reset_after=reset_after))

    def fail(self, status: int = 500, *, times: int = 1) -> None:
        """A server error (or 401, 403, 404 with Discord's bodies)."""
        bodies = {
            401: {"message": "Invalid Webhook Token", "code": 50027},
            403: {"message": "Missing Permissions", "code": 50013},
            404: {"message": "Unknown Webhook", "code": 10015},
        }
        self.respond(status, body=bodies.get(status, {"message": "Internal Server Error", "code": 0}), times=times)

    def answer(self, request: RecordedRequest) -> Answer:
        expected = f"/api/webhooks/{self.webhook_id}/{self.token}"
        prefix = f"/api/webhooks/{self.webhook_id}/"
        if request.method != "POST":
            return self._json(405, {"message": "405: Method Not Allowed", "code": 0})
        if not request.path.startswith(prefix):
            return self._json(404, {"message": "Unknown Webhook", "code": 10015})
        if request.path != expected:
            return self._json(401, {"message": "Invalid Webhook Token", "code": 50027})
        if request.json is None:
            return self._json(400, {"code": 50109, "message": "The request body contains invalid JSON."})
        problems = discord_violations(request.json)
        if problems:
            with self._lock:
                self.violations.extend(problems)
            return self._json(400, discord_error_body(problems))
        wait = request.query.get("wait", ["false"])[-1].lower() == "true"
        if not wait:
            return Answer(204, b"", self._rate_headers(remaining=4, reset_after=0.4))
        return self._json(200, self._message_body(request.json), self._rate_headers(remaining=4, reset_after=0.4))

    def _message_body(self, payload: Any) -> dict[str, Any]:
        with self._lock:
            self._messages += 1
            number = self._messages
        payload = payload if isinstance(payload, dict) else {}
        return {
            "id": str(1_000_000 + number),
            "type": 0,
            "channel_id": "42",
            "webhook_id": self.webhook_id,
            "content": payload.get("content", ""),
            "embeds": payload.get("embeds", []),
        }

    @staticmethod
    def _rate_headers(*, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": str(reset_after),
            "X-RateLimit-Bucket": "standin-bucket",
        }

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
        return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def __enter__(self) -> DiscordStandIn:
        self.start()
        return self


def iter_texts(payload: dict[str, Any]) -> Iterator[str]:
    """Every text of a webhook payload (content, titles, descriptions, fields, footers)."""
    if isinstance(payload.get("content"), str):
        yield payload["content"]
    for embed in payload.get("embeds", []):
        for key in ("title", "description"):
            if key in embed:
                yield embed[key]
        for item in embed.get("fields", []):
            yield item["name"]
            yield item["value"]
        if "footer" in embed:
            yield embed["footer"].get("text", "")
