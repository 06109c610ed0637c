"""A real SMTP server for tests: aiosmtpd's ``Controller`` on 127.0.0.1, collecting what it receives.

Usage::

    with smtp_server(auth=("alerts", "s3cret")) as server:
        send(SMTPSettings(host=server.host, port=server.port, starttls=False, username="alerts",
                          password="s3cret", sender="a@example.com"), message)
        assert server.received[0].message["Subject"] == "..."

Options: ``auth`` offers AUTH (PLAIN, LOGIN) and refuses mail from a session that did not
log in (530, the way a submission server does); ``tls`` is a server ``SSLContext`` for
STARTTLS (``implicit_tls=True``: SMTPS, TLS from the first byte). :func:`self_signed` makes
a certificate for 127.0.0.1 with ``openssl``, and the client context that trusts it.

AUTH over plain text is offered with ``auth_require_tls=False`` but never *required* by
aiosmtpd itself (``auth_required`` would make it warn, and warnings are errors in this
suite): the handler refuses ``MAIL`` from a session that did not log in instead.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["Received", "SMTPStandIn", "self_signed", "smtp_server"]


class _QuietDeprecation(logging.Filter):
    """aiosmtpd logs its own deprecation of ``Session.login_data`` at every successful AUTH; not ours to fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


logging.getLogger("mail.log").addFilter(_QuietDeprecation())


@dataclass
class Received:
    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    login: str | None  # the user name of a session that logged in
    tls: bool  # whether the session was encrypted (STARTTLS or SMTPS)


class SMTPStandIn:
    """The handler: collects messages, refuses what a test scripts (``rcpt_reply``, ``data_reply``)."""

    def __init__(self, auth: tuple[str, str] | None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.received: list[Received] = []
        self.rcpt_reply: str | None = None  # e.g. "550 5.1.1 No such user" for every recipient
        self.data_reply: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.logins: list[str] = []
        self._auth = auth
        self._arrived = threading.Condition()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self._auth is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self._auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated else None
        received = Received(
            message=message,
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            login=login if isinstance(login, str) else None,
            tls=server.transport is not None and server.transport.get_extra_info("ssl_object") is not None,
        )
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()
        return "250 2.0.0 Message accepted"

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` messages have arrived (a sender's ``send`` returns after the 250 already)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} messages arrived, expected {count} within {timeout} s")
            return list(self.received)


class _BoundController(Controller):  # type: ignore[misc]
    """aiosmtpd's threaded controller serving a socket bound beforehand (``Controller`` takes a port only)."""

    def __init__(self, handler: SMTPStandIn, listener: socket.socket, **options: Any) -> None:
        self._listener = listener
        super().__init__(handler, hostname=handler.host, port=handler.port, **options)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)


@contextmanager
def smtp_server(
    *,
    auth: tuple[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
) -> Iterator[SMTPStandIn]:
    """Run an SMTP server on a free port of 127.0.0.1 for the ``with`` block; always stopped."""
    handler = SMTPStandIn(auth)
    options: dict[str, Any] = {"server_hostname": "standin.test", "ready_timeout": 10.0}
    if auth is not None:
        options.update(authenticator=handler.authenticate, auth_require_tls=tls is not None and not implicit_tls)
    if tls is not None and implicit_tls:
        options["ssl_context"] = tls
    elif tls is not None:
        options.update(tls_context=tls, require_starttls=True)
    listener = socket.socket()
    listener.bind((handler.host, 0))  # bound here: no race for a port between a probe and the bind
    handler.port = int(listener.getsockname()[1])
    controller = _BoundController(handler, listener, **options)
    try:
        controller.start()
    except BaseException:
        listener.close()
        controller.stop(no_assert=True)
        raise
    try:
        yield handler
    finally:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this certificate only (hostname checked too)."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(directory: Path) -> Certificate | None:
    """A certificate for 127.0.0.1 and localhost made with ``openssl`` (None when it is not installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)
