"""One SMTP sender, shared by e-mail alerts and the weekly report.

Usage::

    settings = SMTPSettings(host="smtp.example.com", port=587, username="alerts", password="...",
                            sender="wsgimon <alerts@example.com>")
    settings.validate()  # at configuration time: a bad address fails here, not in a job at 3 a.m.
    send(settings, message)  # one attempt; raises Retry, Permanent or Gone

Certificates are always verified (``ssl.create_default_context()``, for STARTTLS as for
SMTPS: ``smtplib`` verifies nothing without a context), every socket operation has the
settings' timeout (``smtplib`` has none by default), and no error message or repr
contains the password.
"""

from __future__ import annotations

import math
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .model import DeliveryError, Gone, Permanent, Retry

__all__ = ["SMTPSettings", "parse_address", "parse_recipients", "send"]

# A pragmatic addr-spec: dot-atom local part and a domain of letter/digit labels (Unicode allowed,
# sent with SMTPUTF8 when the server offers it). Quoted local parts and IP literals are refused.
_ATOM = r"[^\s@\"(),:;<>\[\]\\.]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_ADDR_SPEC = re.compile(rf"(?:{_ATOM})(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_NAMED = re.compile(r"(?P<name>[^<>\"@,;]*?)\s*<(?P<addr>[^<>]*)>")
_MAX_REASON = 300


def parse_address(text: str, *, what: str = "address") -> str:
    """The addr-spec (``local@domain``) of ``a@example.com`` or ``Name <a@example.com>``; ValueError otherwise.

    CR and LF are refused first: in a header they would start a new one (header injection),
    and ``EmailMessage`` would refuse them only when the message is built, in a background job.
    """
    if not isinstance(text, str):
        raise ValueError(f"the {what} must be a string")
    if any(char in text for char in "\r\n\0"):
        raise ValueError(f"the {what} {text!r} contains a line break (header injection)")
    candidate = text.strip()
    named = _NAMED.fullmatch(candidate)
    if named:
        candidate = named.group("addr").strip()
    local = candidate.rpartition("@")[0]
    if not _ADDR_SPEC.fullmatch(candidate) or len(local) > 64 or len(candidate) > 254:
        raise ValueError(f"the {what} {text!r} is not an e-mail address of the form local@domain")
    return candidate


def parse_recipients(text: str | Iterable[str]) -> tuple[str, ...]:
    """Recipients from ``"a@example.com, Ops <ops@example.com>"`` (or a list), each validated, duplicates dropped.

    Returned as given (a display name kept), in order; ValueError names the first bad one.
    An empty list is an error: a channel without recipients is a configuration mistake.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    recipients: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        address = parse_address(item, what="recipient").lower()
        if address not in seen:
            seen.add(address)
            recipients.append(item.strip())
    if not recipients:
        raise ValueError("no e-mail recipient given (expected a comma-separated list of addresses)")
    return tuple(recipients)


@dataclass(frozen=True, kw_only=True)
class SMTPSettings:
    """Where and how to send mail: ``ssl`` is SMTPS (port 465), ``starttls`` upgrades a plain connection (587)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    ssl: bool = False
    sender: str  # the From address: "alerts@example.com" or "wsgimon <alerts@example.com>"
    timeout_s: float = 10.0
    #: a PEM file of the CA(s) that sign the server's certificate (a private CA), beside the system's
    ca_file: str | None = None

    def validate(self) -> None:
        """Raise ValueError for anything that would fail on every send, naming the setting (never the password)."""
        if not isinstance(self.host, str) or not self.host or any(c.isspace() or c in "/@\0" for c in self.host):
            raise ValueError("the SMTP host must be a host name or address, without spaces, '/' or '@'")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"the SMTP port must be a number from 1 to 65535, not {self.port!r}")
        if self.ssl and self.starttls:
            raise ValueError("SMTP ssl (SMTPS, port 465) and starttls (port 587) exclude each other: set one")
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError("the SMTP timeout_s must be a positive number of seconds")
        parse_address(self.sender, what="sender (From) address")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together: set both or neither")
        for name, value in (("username", self.username), ("password", self.password)):
            if value is not None and (not isinstance(value, str) or not value or any(c in value for c in "\r\n\0")):
                raise ValueError(f"the SMTP {name} must be a non-empty string without line breaks")

    @property
    def envelope_sender(self) -> str:
        """The bare address of ``sender``, for ``MAIL FROM``."""
        return parse_address(self.sender, what="sender (From) address")

    def __repr__(self) -> str:
        password = "'***'" if self.password else repr(self.password)
        return (
            f"SMTPSettings(host={self.host!r}, port={self.port!r}, username={self.username!r}, "
            f"password={password}, starttls={self.starttls!r}, ssl={self.ssl!r}, sender={self.sender!r}, "
            f"timeout_s={self.timeout_s!r}, ca_file={self.ca_file!r})"
        )


def send(settings: SMTPSettings, message: EmailMessage, *, ssl_context: ssl.SSLContext | None = None) -> None:
    """Deliver ``message`` in one SMTP session; raise a delivery error saying why it did not go.

    ``From`` (the settings' sender), ``Date`` and ``Message-ID`` are added when missing;
    recipients are the message's To, Cc and Bcc. ``ssl_context`` replaces the verifying
    default, for tests against a server with a self-signed certificate only.

    - :class:`Retry`: no connection, a timeout, a disconnect, a 4xx reply (greylisting, a full queue).
    - :class:`Gone`: the login was refused or is required, the sender is refused, STARTTLS or AUTH
      is not offered, the certificate does not verify or TLS is misconfigured: nothing will go
      until the settings change.
    - :class:`Permanent`: a 5xx reply to this message (a recipient refused, too large).

    Settings that fail :meth:`SMTPSettings.validate` are :class:`Gone` here (check them at
    configuration time to get the ValueError).
    """
    problem: Gone | None = None
    try:
        settings.validate()
    except ValueError as exc:
        problem = Gone(f"the SMTP settings are invalid: {exc}")
    if problem is not None:
        raise problem  # a background job gets a delivery error, never a ValueError
    if message["From"] is None:
        message["From"] = settings.sender
    if message["Date"] is None:
        message["Date"] = formatdate(localtime=False, usegmt=True)
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=settings.envelope_sender.rpartition("@")[2])
    failure: DeliveryError | None = None
    try:
        context = ssl_context if ssl_context is not None else _context(settings)
    except (OSError, ssl.SSLError) as exc:
        failure = Gone(f"the smtp_ca_file {settings.ca_file!r} cannot be used: {exc.strerror or type(exc).__name__}")
    if failure is not None:
        raise failure
    where = f"{settings.host}:{settings.port}"
    step = "connect"
    try:
        client: smtplib.SMTP
        if settings.ssl:
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_s, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            client.ehlo()
            if settings.starttls:
                step = "starttls"
                client.starttls(context=context)
                client.ehlo()
            if settings.username is not None and settings.password is not None:
                step = "login"
                client.login(settings.username, settings.password)
            step = "send"
            refused = client.send_message(message, from_addr=settings.envelope_sender)
        if refused:
            failure = Permanent(f"SMTP server {where} refused {len(refused)} recipient(s): {_refusals(refused)}")
    except Exception as exc:  # every failure becomes a delivery error with a message safe to show
        failure = _classify(exc, step, where, settings.starttls or settings.ssl)
    if failure is not None:
        if settings.password:
            failure.args = (str(failure).replace(settings.password, "***"),)
        raise failure  # outside the except block: nothing chained


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    words = " ".join(raw.split())
    return f"{code} {words[:_MAX_REASON]}".strip()


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({_reply(code, text)})" for address, (code, text) in list(refused.items())[:5])


def _context(settings: SMTPSettings) -> ssl.SSLContext:
    """The system's trusted CAs, and the settings' own file when a private CA signs the server."""
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    return context


def _classify(exc: Exception, step: str, where: str, encrypted: bool = True) -> DeliveryError:
    """The delivery error for a failure at ``step`` (connect, starttls, login or send)."""
    kind = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        text = f"SMTP server {where} refused every recipient: {_refusals(exc.recipients)}"
        return Retry(text) if codes and all(400 <= code < 500 for code in codes) else Permanent(text)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Gone(
            f"SMTP server {where} refused the login ({_reply(exc.smtp_code, exc.smtp_error)}): check the credentials"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if step == "login" and not encrypted:
            return Gone(
                f"SMTP server {where} offers no login on an unencrypted connection (STARTTLS is off): "
                "set smtp_starttls=1 (or smtp_ssl=1 on port 465)"
            )
        if step in ("starttls", "login"):
            what = "STARTTLS" if step == "starttls" else "AUTH"
            return Gone(f"SMTP server {where} does not offer {what}: {exc}")
        return Permanent(f"SMTP server {where} cannot take this message: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if not encrypted and "starttls" in reply.lower():
            return Gone(f"SMTP server {where} wants STARTTLS first ({reply}): set smtp_starttls=1")
        if 400 <= exc.smtp_code < 500:
            return Retry(f"SMTP server {where} answered {reply} ({step}): try later")
        if exc.smtp_code == 530:
            return Gone(f"SMTP server {where} requires a login ({reply}): set the SMTP username and password")
        if step == "login":
            return Gone(f"SMTP server {where} refused the login ({reply})")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return Gone(f"SMTP server {where} refused the sender {exc.sender} ({reply}): check the From address")
        return Permanent(f"SMTP server {where} answered {reply} ({step})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Retry(f"SMTP server {where} closed the connection ({step}): {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Gone(f"the TLS certificate of SMTP server {where} does not verify: {exc.verify_message}")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return Retry(f"SMTP server {where} dropped the TLS connection ({step}): {kind}")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or kind
        return Gone(f"TLS with SMTP server {where} failed ({reason}): check the ssl/starttls settings and the port")
    if isinstance(exc, TimeoutError):
        return Retry(f"SMTP server {where} did not answer in time ({step})")
    if isinstance(exc, ConnectionRefusedError):
        return Retry(f"cannot connect to SMTP server {where}: connection refused (is it running, is the port right?)")
    if isinstance(exc, socket.gaierror):
        return Retry(f"cannot resolve SMTP host {where}: {exc.strerror or kind}")
    if isinstance(exc, OSError):
        return Retry(f"cannot talk to SMTP server {where} ({step}): {exc.strerror or kind}")
    if isinstance(exc, smtplib.SMTPException):
        return Gone(f"SMTP server {where} ({step}): {' '.join(str(exc).split())[:_MAX_REASON]}")
    if isinstance(exc, (ValueError, UnicodeError)):
        return Permanent(f"the message cannot be sent ({kind}): {' '.join(str(exc).split())[:_MAX_REASON]}")
    return Retry(f"SMTP delivery through {where} failed unexpectedly ({step}): {kind}")
