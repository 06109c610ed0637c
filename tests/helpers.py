"""In-process WSGI driving, the way a server does it, with PEP 3333 validation on both sides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from wsgimon import MonitorMiddleware


@dataclass
class Result:
    status: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: BaseException | None = None


def make_environ(path: str = "/", method: str = "GET", query: str = "", **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {"SCRIPT_NAME": "", "PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    environ.update(extra)
    setup_testing_defaults(environ)
    environ.setdefault("REMOTE_ADDR", "127.0.0.1")
    return environ


def call(app: Any, path: str = "/", method: str = "GET", query: str = "", **extra: Any) -> Result:
    """Run one request through ``app`` like a server: iterate the body, then close it."""
    result = Result()
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and result.body:
            raise exc_info[1].with_traceback(exc_info[2])
        result.status = status
        result.headers = headers
        return written.append

    environ = make_environ(path, method, query, **extra)
    try:
        body = app(environ, start_response)
    except Exception as exc:
        result.error = exc
        return result
    try:
        for chunk in body:
            result.body += chunk
    except Exception as exc:
        result.error = exc
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    result.body = b"".join(written) + result.body
    return result


def validated(app: Any, **options: Any) -> tuple[Any, MonitorMiddleware]:
    """``app`` wrapped by the middleware, with wsgiref's validator on both sides."""
    monitor = MonitorMiddleware(validator(app), **options)
    return validator(monitor), monitor


def get_json(app: Any, path: str, **extra: Any) -> Any:
    import json

    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
    result = call(app, path, query=query, **extra)
    assert result.status is not None
    return json.loads(result.body)
