"""The HTTP delivery Discord and the webhook share: one POST, a deadline, and no secret in any message.

A webhook URL is a credential (Slack's and Discord's carry their token in the path), so it
never reaches an exception message or a repr, and a filter on the ``httpx`` and ``httpcore``
loggers masks every open channel's URL in their records (their levels are the application's
business). Delivery errors are raised outside the ``except`` block so they chain no httpx
exception (whose request holds the URL).

httpx's timeouts bound each read: a receiver that drips a byte every two seconds would hold a
delivery for as long as it likes. Every read and write here also stops at the delivery's
deadline (a network backend that bounds each call by the time left), so one delivery takes at
most ``deadline_s``. A timeout after the request went out leaves the outcome unknown (the
message may have been posted): :class:`UnknownOutcome`, which the dispatcher retries once,
with more patience, instead of blindly.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .model import Gone, Permanent, Retry, UnknownOutcome
from .text import fit, parse_seconds

__all__ = ["HTTPDelivery", "mask", "parse_webhook_url"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_REASON = 300
_USER_AGENT = "wsgimon"
_CONNECT_TIMEOUT_S = 5.0


# Secrets (URL paths and queries) of open channels, masked in any record of the httpx logger.
_secrets_lock = threading.Lock()
_secrets: dict[str, int] = {}


class _MaskSecrets(logging.Filter):
    """Masks registered webhook URLs in httpx's own records, in case its level is lowered again."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(_secrets)
        if not secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:
            return True
        if any(secret in text for secret in secrets):
            record.msg, record.args = mask(text, secrets), None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_MaskSecrets())


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, longest first (a token is part of its path)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def parse_webhook_url(url: str, *, service: str) -> httpx.URL:
    """Check a webhook URL at construction; errors name ``service`` ("Discord webhook"), never the URL.

    https only, or http to this machine (a local relay or a test stand-in), a host, and no
    ``user:password@`` (httpx would carry it into its log lines).
    """
    problem = None
    if not isinstance(url, str) or not url:
        problem = "is empty"
    elif url != url.strip() or any(char.isspace() or ord(char) < 0x20 for char in url):
        problem = "contains white space or control characters"
    else:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            problem = "cannot be parsed"
        else:
            if parts.scheme not in ("https", "http"):
                problem = "must start with https://"
            elif not host:
                problem = "has no host"
            elif parts.scheme == "http" and host not in _LOCAL_HOSTS:
                problem = "must use https:// (http:// is accepted for 127.0.0.1 and localhost only)"
            elif parts.username is not None or parts.password is not None:
                problem = "must not contain user:password@"
    if problem is None:
        try:
            return httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            problem = "cannot be parsed"
    raise ValueError(f"the {service} URL {problem} (the URL is not shown: it may hold a secret token)")


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


def _bounded(timeout: float | None) -> float | None:
    """The call's own timeout, cut to what is left of this thread's delivery deadline."""
    at = _deadline.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the delivery's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, every call bounded by the delivery's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _bounded(timeout), local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _bounded(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport() -> httpx.BaseTransport:
    """httpx's transport on the deadline backend (httpx keeps its pool as ``_pool``; without it, plain)."""
    transport = httpx.HTTPTransport(retries=0)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        transport._pool = httpcore.ConnectionPool(  # noqa: SLF001 - the one seam httpx has for a backend
            ssl_context=httpx.create_ssl_context(), network_backend=_DeadlineBackend(), retries=0
        )
    return transport


class HTTPDelivery:
    """One POST per call on a client of its own, with every failure turned into a delivery error.

    Shared by the webhook and Discord channels: the client has the channel's timeouts, no
    redirects (a redirected webhook is a misconfigured one, and a ``Location`` may hold a
    token), and the URL is held here only.
    """

    def __init__(
        self,
        url: httpx.URL,
        *,
        service: str,
        timeout_s: float,
        transport: httpx.BaseTransport | None,
        deadline_s: float | None = None,
    ) -> None:
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"the {service} timeout_s must be a positive number of seconds")
        self.service = service
        self.host = url.host if url.port is None else f"{url.host}:{url.port}"
        self.timeout_s = float(timeout_s)
        #: the most one delivery may take, every read and write included
        self.deadline_s = float(deadline_s if deadline_s is not None else 2 * timeout_s)
        self._url = url
        raw = url.raw_path.decode("ascii", "replace")
        self._secrets = tuple({raw, raw.split("?", 1)[0], str(url)} | {s for s in raw.split("/") if len(s) >= 16})
        with _secrets_lock:
            for secret in self._secrets:
                _secrets[secret] = _secrets.get(secret, 0) + 1
        self._client = httpx.Client(
            transport=transport if transport is not None else _deadline_transport(),
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, _CONNECT_TIMEOUT_S)),
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT},
        )
        self._closed = False

    def scrub(self, text: str) -> str:
        """``text`` bounded and free of this channel's URL, path and token."""
        return fit(mask(text, self._secrets), _MAX_REASON)

    def post(self, payload: dict[str, Any], patience: float = 1.0) -> httpx.Response:
        """POST ``payload`` as JSON once, within the deadline (times ``patience``).

        Raises :class:`Retry` when it surely did not arrive (no connection, refused, a connect
        timeout) and :class:`UnknownOutcome` when it went out and no answer came in time.
        """
        if self._closed:
            raise Gone(f"the {self.service} channel is closed")
        # Lone surrogates (from undecodable input) would make the encoder raise: replace them.
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8", "replace")
        failure: Retry | None = None
        timeout = self.timeout_s * patience
        _deadline.at = time.monotonic() + self.deadline_s * patience
        try:
            response = self._client.post(
                self._url,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_S)),
            )
        except (httpx.ConnectTimeout, httpx.ConnectError, httpx.PoolTimeout) as exc:
            detail = self.scrub(str(exc)) or "no detail"
            failure = Retry(f"cannot reach {self.service} at {self.host}: {_kind(exc)}: {detail}")
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            failure = UnknownOutcome(
                f"{self.service} at {self.host} gave no answer within {timeout:g} s ({_kind(exc)}); it may have arrived"
            )
        except httpx.RequestError as exc:  # protocol, decoding: all before a usable answer
            detail = self.scrub(str(exc)) or "no detail"
            failure = Retry(f"cannot reach {self.service} at {self.host}: {_kind(exc)}: {detail}")
        finally:
            _deadline.at = None
        if failure is not None:
            raise failure  # outside the except block: the httpx error (and its URL) is not chained
        return response

    def raise_for_outcome(
        self,
        response: httpx.Response,
        *,
        gone: frozenset[int],
        retry_after: Callable[[httpx.Response], float | None] | None = None,
        explain: Callable[[httpx.Response], str] | None = None,
    ) -> None:
        """Map a non-2xx answer to a delivery error; return for a 2xx.

        429 and 5xx (and 408) are :class:`Retry` with the service's wait when it gives one;
        ``gone`` statuses and redirects are :class:`Gone` (the URL is dead or wrong);
        any other 4xx is :class:`Permanent` with the service's own explanation, bounded.
        """
        status = response.status_code
        if 200 <= status < 300:
            return
        label = self.scrub(f"{self.service} answered {status} {fit(response.reason_phrase, 60)}".rstrip())
        if status == 429 or status == 408 or status >= 500:
            wait = retry_after(response) if retry_after is not None else None
            if wait is None:
                wait = parse_seconds(response.headers.get("Retry-After"))
            if status == 429:
                label = f"{self.service} rate limit (429)"
            raise Retry(f"{label}: retry after {wait:g} s" if wait is not None else label, wait)
        if status in gone:
            raise Gone(f"{label}: the webhook is deleted or its token is wrong; stop using it")
        if 300 <= status < 400:
            raise Gone(f"{label} (a redirect): configure the final webhook URL")
        detail = self.scrub(explain(response) if explain is not None else _body_text(response))
        raise Permanent(f"{label}: {detail}" if detail else label)

    def close(self) -> None:
        """Close the client and stop masking this channel's secrets."""
        if self._closed:
            return
        self._closed = True
        self._client.close()
        with _secrets_lock:
            for secret in self._secrets:
                left = _secrets.get(secret, 1) - 1
                if left > 0:
                    _secrets[secret] = left
                else:
                    _secrets.pop(secret, None)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _body_text(response: httpx.Response) -> str:
    """The answer's own words: a JSON ``message``/``error`` or the start of the text, on one line."""
    try:
        text = response.text[:2000]
    except Exception:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return " ".join(str(data[key]).split())
    return " ".join(text.split())
