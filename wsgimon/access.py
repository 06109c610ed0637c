"""Who may read ``/monitoring/*``.

Secure by default: with no credentials configured only a direct loopback client
(no proxy header in between) gets in. Configured Basic credentials or a bearer
token are compared in constant time, as bytes, so a non-ASCII header is a 401,
never a crash.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any

from .config import Config

__all__ = ["Denial", "check_access"]

_PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


@dataclass(frozen=True)
class Denial:
    status: int
    message: str
    challenge: str | None = None


def check_access(environ: dict[str, Any], config: Config) -> Denial | None:
    """None when the request may read monitoring data, else why not."""
    if config.has_credentials:
        return _check_credentials(environ, config)
    if config.allow_remote:
        return None
    if _is_direct_loopback(environ):
        return None
    return Denial(
        403,
        "monitoring data is only served to local clients by default; set WSGIMON_TOKEN "
        "(or WSGIMON_USERNAME and WSGIMON_PASSWORD) to allow authenticated remote access, "
        "or WSGIMON_ALLOW_REMOTE=1 to open it deliberately",
    )


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


def _is_direct_loopback(environ: dict[str, Any]) -> bool:
    if any(environ.get(name) for name in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(str(environ.get("REMOTE_ADDR", "")).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
