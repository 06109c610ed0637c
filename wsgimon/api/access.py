"""Who may read ``/monitoring/*``.

Secure by default. Configured credentials (a token, or Basic) are required when given. Without
them, a direct loopback client gets in only where that is safe by construction: werkzeug's
development server and in-process test clients, or wherever ``trust_loopback`` says so. "Direct"
is checked as far as a server can see it: no forwarding-style header of any kind (a same-host
proxy connects from 127.0.0.1 too), a ``Host`` that names this machine's loopback or an
``allowed_hosts`` entry (a page on another site that rebinds its name to 127.0.0.1 sends its own
name), and no cross-site ``Origin`` or ``Sec-Fetch-Site``. A TCP relay or a proxy that adds no
header cannot be told apart from a local client, so under a production server (gunicorn, uWSGI,
waitress, mod_wsgi, …) everyone else needs the deployment's token: made once and kept in the
store (every worker and host shares it), printed by ``wsgimon token``.

Configured Basic credentials or a bearer token are compared in constant time,
as bytes, so a non-ASCII header is a 401, never a crash. Failed attempts are
counted (``/monitoring/health`` shows them) and logged at most once a minute.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from ..internal_errors import logger

__all__ = ["Denial", "check_access", "cross_site_write", "failed_attempts"]

# Any header like these means a proxy (or a client pretending to be one) is in between: the
# named ones, and any whose name has one of the parts (X-Original-Forwarded-For, Fly-Client-IP, …).
_PROXY_HEADERS = ("HTTP_VIA", "HTTP_CF_CONNECTING_IP")
_PROXY_HEADER_PARTS = ("FORWARDED", "CLIENT_IP", "REAL_IP", "CONNECTING_IP")
_PROXY_HEADER_STARTS = ("HTTP_X_ORIGINAL_", "HTTP_X_ENVOY_EXTERNAL", "HTTP_X_ENVOY_INTERNAL")
# Keys that only production servers put in the environ.
_SERVER_KEYS = ("gunicorn.", "uwsgi.", "mod_wsgi.", "waitress.", "bjoern.", "meinheld.", "cheroot.")
_CROSS_SITE = "a page of another site sent the request"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_FAILED_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class Denial:
    status: int
    message: str
    challenge: str | None = None


class _Failures:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.logged_at = 0.0
        self.since_log = 0

    def add(self, remote: str) -> None:
        with self.lock:
            self.count += 1
            self.since_log += 1
            now = time.monotonic()
            if now - self.logged_at < _FAILED_LOG_EVERY_S:
                return
            self.logged_at, attempts, self.since_log = now, self.since_log, 0
        logger.warning(
            "wsgimon: %d failed authentication attempt(s) on the monitoring API (latest from %s)", attempts, remote
        )


_failures = _Failures()


def failed_attempts() -> int:
    """Failed authentication attempts on the monitoring API in this process."""
    return _failures.count


def check_access(environ: dict[str, Any], config: Config, deployment_token: Callable[[], str | None]) -> Denial | None:
    """None when the request may read monitoring data, else why not. ``deployment_token``: the
    token kept in the store (asked only when a request needs it; None when it cannot be read)."""
    if config.has_credentials:
        return _check_credentials(environ, config)
    if config.allow_remote:
        return None
    why = _not_direct_loopback(environ, config)
    if why is None:
        if config.trust_loopback or is_development_server(environ):
            return None
        why = "under a production server loopback clients need the token too"
    elif why == _CROSS_SITE:
        return Denial(403, f"refused: {why}")
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        expected = deployment_token()
        if expected is not None and _same(value.strip(), expected):
            return None
    if header:
        _failures.add(str(environ.get("REMOTE_ADDR", "?"))[:64])
    return Denial(
        401,
        f"monitoring data needs the deployment's token ({why}): run `wsgimon token` on the server "
        "(with the same WSGIMON_STORAGE) and send 'Authorization: Bearer <token>', or set WSGIMON_TOKEN "
        "(or WSGIMON_USERNAME and WSGIMON_PASSWORD) yourself",
        "Bearer",
    )


def is_development_server(environ: dict[str, Any]) -> bool:
    """werkzeug's development server (``flask run``) or an in-process test client: a server that
    names itself Werkzeug, or none at all with an in-memory body and no production server's keys."""
    software = str(environ.get("SERVER_SOFTWARE", ""))
    if software.startswith("Werkzeug/"):
        return True
    if software or not isinstance(environ.get("wsgi.input"), io.BytesIO):
        return False
    return not any(key.startswith(_SERVER_KEYS) for key in environ)


def _check_credentials(environ: dict[str, Any], config: Config) -> Denial | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and config.token is not None:
        if _same(value, config.token):
            return None
    elif scheme == "basic" and config.username is not None and config.password is not None:
        user, password = _decode_basic(value)
        if user is not None and password is not None:
            user_ok = _same_bytes(user, config.username.encode())
            password_ok = _same_bytes(password, config.password.encode())
            if user_ok and password_ok:
                return None
    if header:
        _failures.add(str(environ.get("REMOTE_ADDR", "?"))[:64])
    challenge = 'Basic realm="wsgimon", charset="UTF-8"' if config.username is not None else "Bearer"
    return Denial(
        401,
        "authentication required: send HTTP Basic credentials or 'Authorization: Bearer <token>' "
        "as configured by WSGIMON_USERNAME/WSGIMON_PASSWORD or WSGIMON_TOKEN",
        challenge,
    )


def _decode_basic(value: str) -> tuple[bytes | None, bytes | None]:
    try:
        decoded = base64.b64decode(value.encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None, None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None, None
    return user, password


def _same(given: str, expected: str) -> bool:
    try:
        given_bytes = given.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return _same_bytes(given_bytes, expected.encode())


def _same_bytes(given: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(given, expected)


def _not_direct_loopback(environ: dict[str, Any], config: Config) -> str | None:
    """None for a direct local client, else what says otherwise."""
    for name in environ:
        if name.startswith("HTTP_") and (
            name in _PROXY_HEADERS
            or any(part in name for part in _PROXY_HEADER_PARTS)
            or name.startswith(_PROXY_HEADER_STARTS)
        ):
            return f"a {name[5:].replace('_', '-').title()} header says a proxy is in between"
    if not _is_loopback_address(str(environ.get("REMOTE_ADDR", ""))):
        return "the client is not on this machine"
    host = _host_name(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
    if not (_is_loopback_name(host) or host in config.allowed_hosts):
        return f"the Host {host[:64]!r} is not a loopback name; add it to WSGIMON_ALLOWED_HOSTS if it is yours"
    if environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        return _CROSS_SITE
    origin = environ.get("HTTP_ORIGIN")
    if origin and origin != "null":
        origin_host = _host_name(urlsplit(origin).netloc)
        if origin_host != host:
            return _CROSS_SITE
    return None


def _host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:8000`` -> ``::1``), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _is_loopback_name(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.endswith(".localhost") or _is_loopback_address(host)


def _is_loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


_SAME_SITE_FETCHES = ("same-origin", "none")


def cross_site_write(environ: dict[str, Any]) -> str | None:
    """Why a write (a POST) may have been sent by another site's page, or None.

    A browser attaches remembered Basic credentials (and a loopback address) to a form or
    ``fetch`` from any page, so credentials alone do not prove the user meant it. A write
    must be JSON (a form cannot send ``application/json`` to another origin without a
    preflight, which this API never grants), and when the browser says where it came from
    (``Sec-Fetch-Site``, ``Origin``) that must be this very site.
    """
    site = environ.get("HTTP_SEC_FETCH_SITE", "").lower()
    if site and site not in _SAME_SITE_FETCHES:
        return f"the browser says another site sent it (Sec-Fetch-Site: {site[:32]})"
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        # Names only: behind a TLS proxy the page is https://site and the app sees http://site.
        host = _host_name(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
        if origin == "null" or _host_name(urlsplit(origin).netloc) != host:
            return "the Origin is not this site"
    return None
