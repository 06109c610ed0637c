"""Outbound HTTP through the standard library's ``http.client``: ``urllib.request``, ``requests``
and ``urllib3`` all send through it.

``http.client`` has no hook, so two methods of ``HTTPConnection`` are wrapped once per process:
``putrequest`` (every client starts a request with it, urllib3's own ``request`` included) notes
the start on the connection, and ``getresponse`` (urllib3's calls the standard one) ends the
call with the status, or the exception's type. A call outside a request costs one empty-list
test. The time is the wait for the response's head, not the reading of its body.
"""

from __future__ import annotations

from http import client
from time import perf_counter
from typing import Any

from ..time_spent import for_calls

__all__ = ["install"]

_MARK = "_wsgimon_call"
_installed = False


def install() -> bool:
    global _installed
    if _installed:
        return True
    connection = client.HTTPConnection
    put_request = connection.putrequest
    get_response = connection.getresponse

    def putrequest(self: client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        state = getattr(self, "__dict__", None)
        if state is not None:
            spent = for_calls()
            if spent is not None:
                state[_MARK] = (spent, method, url, perf_counter())
            elif _MARK in state:
                del state[_MARK]  # a call that never got its response: not this one's
        return put_request(self, method, url, *args, **kwargs)

    def getresponse(self: client.HTTPConnection) -> client.HTTPResponse:
        state = getattr(self, "__dict__", None)
        call = None if state is None else state.pop(_MARK, None)
        if call is None:
            return get_response(self)
        spent, method, url, started = call
        try:
            response = get_response(self)
        except BaseException as exc:
            spent.call(method, _origin(self), _path(url), type(exc).__name__, perf_counter() - started)
            raise
        spent.call(method, _origin(self), _path(url), response.status, perf_counter() - started)
        return response

    putrequest.__wrapped__ = put_request  # type: ignore[attr-defined]
    getresponse.__wrapped__ = get_response  # type: ignore[attr-defined]
    connection.putrequest = putrequest  # type: ignore[method-assign]
    connection.getresponse = getresponse  # type: ignore[method-assign]
    _installed = True
    return True


def _origin(connection: client.HTTPConnection) -> str:
    secure = getattr(client, "HTTPSConnection", None)
    scheme = "https" if secure is not None and isinstance(connection, secure) else "http"
    host = connection.host
    port = connection.port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def _path(url: str) -> str:
    """The path alone: a proxy's absolute URL loses its origin, every URL its query and fragment."""
    if "://" in url:
        rest = url.split("://", 1)[1]
        slash = rest.find("/")
        url = rest[slash:] if slash >= 0 else "/"
    return url.split("?", 1)[0].split("#", 1)[0] or "/"
