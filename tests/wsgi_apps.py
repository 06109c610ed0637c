"""A matrix of tiny WSGI apps that exercise each corner of PEP 3333."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

Environ = dict[str, Any]


def list_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def late_start_app(environ: Environ, start_response: Any) -> Iterator[bytes]:
    """A generator: start_response runs only on the first iteration."""
    start_response("201 Created", [("Content-Type", "text/plain")])
    yield b"first "
    yield b""
    yield b"second"


def raising_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    raise ValueError("raised before start_response")


def raising_body_app(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("raised while streaming")


def exc_info_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """Starts a response, fails, and replaces the response with exc_info (headers not yet sent)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("lookup failed")
    except KeyError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"handled"]


class CloseCounter:
    """An iterable that counts how often close() is called."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def make_close_counting_app() -> tuple[Any, list[CloseCounter]]:
    bodies: list[CloseCounter] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        body = CloseCounter([b"a", b"bc"])
        bodies.append(body)
        return body

    return app, bodies


def write_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


def status_app(code: int, reason: str) -> Any:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response(f"{code} {reason}", [("Content-Type", "text/plain")])
        return [reason.encode()]

    return app
