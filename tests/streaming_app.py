"""A plain WSGI app for server tests: a slow stream and a file response."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from wsgimon import MonitorMiddleware

_PATH = os.path.join(tempfile.mkdtemp(prefix="wsgimon-test-"), "payload.bin")
with open(_PATH, "wb") as payload:
    payload.write(b"x" * 100_000)


def _stream() -> Iterator[bytes]:
    for i in range(3):
        if i:
            time.sleep(0.05)
        yield f"chunk-{i}".encode()


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "100000")])
        return environ["wsgi.file_wrapper"](open(_PATH, "rb"), 8192)  # noqa: SIM115 - the server closes it  # type: ignore[no-any-return]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


app = MonitorMiddleware(plain_app)
