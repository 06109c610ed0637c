"""Outbound HTTP through the standard library's ``http.client``: ``urllib.request``, ``requests``
and ``urllib3`` all send through it.

``http.client`` has no hook, so three methods of ``HTTPConnection`` are wrapped once per process:
``putrequest`` (every client starts a request with it, urllib3's own ``request`` included) notes
the start on the connection, and ``getresponse`` (urllib3's calls the standard one) ends the
call with the status, or the exception's type; ``endheaders``, where http.client connects, ends a
call that fails before it has a response (refused, unreachable). A call outside a request costs
a look-up that finds nothing. The time is the wait for the response's head, not the reading of its body.
(urllib3 makes an HTTPS connection before ``putrequest``: its handshake is not in the call's
time, and a call whose connection fails there is not seen.)
"""

from __future__ import annotations

from http import client
from time import perf_counter
from typing import Any

from ..time_spent import for_calls

__all__ = ["install"]

_MARK = "_wsgimon_call"
_ORIGIN = "_wsgimon_origin"
_installed = False


def install() -> bool:
    global _installed
    if _installed:
        return True
    connection = client.HTTPConnection
    put_request = connection.putrequest
    get_response = connection.getresponse
    end_headers = connection.endheaders

    def putrequest(self: client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        state = getattr(self, "__dict__", None)
        if state is not None:
            spent = for_calls()
            if spent is not None:
                state[_MARK] = (spent, method, url, perf_counter())
            elif _MARK in state:
                del state[_MARK]  # a call that never got its response: not this one's
        return put_request(self, method, url, *args, **kwargs)

    def endheaders(self: client.HTTPConnection, *args: Any, **kwargs: Any) -> None:
        # Connecting happens here: a refused or timed-out connection never reaches getresponse.
        state = getattr(self, "__dict__", None)
        if state is None or _MARK not in state:
            return end_headers(self, *args, **kwargs)
        try:
            return end_headers(self, *args, **kwargs)
        except BaseException as exc:
            call = state.pop(_MARK, None)
            if call is not None:
                spent, method, url, started = call
                spent.call(method, _origin(self, url), url, type(exc).__name__, perf_counter() - started)
            raise

    def getresponse(self: client.HTTPConnection) -> client.HTTPResponse:
        state = getattr(self, "__dict__", None)
        call = None if state is None else state.pop(_MARK, None)
        if call is None:
            return get_response(self)
        spent, method, url, started = call
        try:
            response = get_response(self)
        except BaseException as exc:
            spent.call(method, _origin(self, url), url, type(exc).__name__, perf_counter() - started)
            raise
        spent.call(method, _origin(self, url), url, response.status, perf_counter() - started)
        return response

    putrequest.__wrapped__ = put_request  # type: ignore[attr-defined]
    getresponse.__wrapped__ = get_response  # type: ignore[attr-defined]
    endheaders.__wrapped__ = end_headers  # type: ignore[attr-defined]
    connection.putrequest = putrequest  # type: ignore[method-assign]
    connection.getresponse = getresponse  # type: ignore[method-assign]
    connection.endheaders = endheaders  # type: ignore[method-assign]
    _installed = True
    return True


def _origin(connection: client.HTTPConnection, url: str) -> str:
    """``scheme://host[:port]`` of the server called (never its credentials), the default port left
    out; worked out once per connection (a kept-alive one makes many calls), the URL's path is the
    fold's to cut (see :func:`wsgimon.recording.dependencies.target_path`)."""
    if "://" in url:  # the absolute form a proxy is sent: the target is in the URL
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower()
        netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2].lower()
        default_suffix = ":443" if scheme == "https" else ":80"
        if netloc.endswith(default_suffix):
            netloc = netloc[: -len(default_suffix)]
        return f"{scheme}://{netloc}"
    state = connection.__dict__
    known = state.get(_ORIGIN)
    if known is not None:
        return known  # type: ignore[no-any-return]
    state[_ORIGIN] = origin = _connection_origin(connection)
    return origin


def _connection_origin(connection: client.HTTPConnection) -> str:
    secure = getattr(client, "HTTPSConnection", None)
    # urllib3's HTTPS connections derive from http.client's HTTPConnection, not HTTPSConnection.
    https = (secure is not None and isinstance(connection, secure)) or getattr(connection, "default_port", 80) == 443
    scheme = "https" if https else "http"
    tunnel = getattr(connection, "_tunnel_host", None)  # CONNECT through a proxy: the target, not the proxy
    host = tunnel if isinstance(tunnel, str) and tunnel else connection.host
    port = getattr(connection, "_tunnel_port", None) if host is tunnel else connection.port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if https else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"
