"""A stand-in alert channel for the demo: a webhook receiver on 127.0.0.1, inside the demo's process.

wsgimon's ``webhook_url`` points at it, so the demo's incidents go out through a real channel
(the same JSON a Slack incoming webhook gets) without sending anything off the machine. It
accepts every POST, keeps the payloads and prints one line per message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AlertReceiver"]

_MAX_BODY = 1 << 20


class AlertReceiver:
    """``with AlertReceiver() as receiver:`` serves ``receiver.url`` until the block ends."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, say: Callable[[str], None] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self._host = host
        self._lock = threading.Lock()
        self._say = say
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
                body = self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "11")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')
                receiver._take(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-alert-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}/alerts"

    def start(self) -> AlertReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AlertReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def _take(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"text": body[:200].decode("utf-8", "replace")}
        if not isinstance(payload, dict):
            payload = {"text": str(payload)[:200]}
        with self._lock:
            self.received.append(payload)
        if self._say is not None:
            text = str(payload.get("text") or "")
            self._say(f"alert received by the demo's webhook stand-in: {text[:300]}")
