"""The alerting options (and the mail settings alerts and the report share), each checked at start.

A bad URL, address or rule is a ``ValueError`` when the middleware is created, never at the
first alert. Webhook URLs carry their token and the SMTP password is a password: errors about
them never repeat them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .smtp import SMTPSettings

__all__ = ["ALERT_RULES", "AlertOptions", "MailOptions"]

#: Every alert rule; each can be left out of ``alert_rules``.
ALERT_RULES: tuple[str, ...] = (
    "exception",
    "error_rate",
    "latency_p95",
    "health",
    "slo",
    "regression",
    "new_error",
    "n_plus_one",
    "checkin",
)


@dataclass(frozen=True)
class MailOptions:
    """Where people reach the app, and how mail goes out (alerts and the report)."""

    public_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_ca_file: str | None = None
    email_from: str | None = None

    def smtp_settings(self) -> SMTPSettings | None:
        """The SMTP settings, or None when no SMTP host is configured."""
        if not self.smtp_host:
            return None
        from .smtp import SMTPSettings

        return SMTPSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            username=self.smtp_username,
            password=self.smtp_password,
            starttls=self.smtp_starttls,
            ssl=self.smtp_ssl,
            ca_file=self.smtp_ca_file,
            sender=self.email_from or "",
        )

    def check_mail_to(self, option: str, recipients: tuple[str, ...]) -> None:
        """Mail to ``recipients`` (``option`` names them) can be sent with these settings."""
        if not recipients:
            return
        from .smtp import parse_recipients

        settings = self.smtp_settings()
        if settings is None:
            raise ValueError(f"{option} needs smtp_host (and email_from)")
        if not self.email_from:
            raise ValueError("email_from is needed to send e-mail")
        settings.validate()
        parse_recipients(recipients)

    def validate_mail(self) -> None:
        if self.public_url and not self.public_url.startswith(("https://", "http://")):
            raise ValueError("public_url must start with https:// or http://")
        if self.smtp_ca_file is not None and not os.path.isfile(self.smtp_ca_file):
            raise ValueError(f"smtp_ca_file: no file at {self.smtp_ca_file!r}")


@dataclass(frozen=True)
class AlertOptions(MailOptions):
    """Channels, rules, incidents, silences and SLOs."""

    discord_webhook_url: str | None = None
    webhook_url: str | None = None
    alert_email_to: tuple[str, ...] = ()
    alert_rules: tuple[str, ...] = ALERT_RULES
    alert_cooldown_s: float = 300.0  # no longer used: see alert_group_interval_s
    alert_resolve_after_s: float = 300.0
    alert_for_s: float = 0.0
    alert_group_wait_s: float = 30.0
    alert_group_interval_s: float = 300.0
    alert_repeat_interval_s: float = 14400.0
    alert_group_by: tuple[str, ...] = ()
    alert_maintenance: str | None = None
    alert_error_rate: float = 0.05
    alert_min_requests: int = 20
    alert_window_s: float = 300.0
    alert_p95_ms: float | None = None
    alert_interval_s: float = 15.0
    slo_availability: float | None = None
    slo_latency_ms: float | None = None
    slo_latency_target: float | None = None

    def validate_alerts(self) -> None:
        unknown = sorted(set(self.alert_rules) - set(ALERT_RULES))
        if unknown:
            raise ValueError(f"alert_rules: unknown rule(s) {', '.join(unknown)}; known: {', '.join(ALERT_RULES)}")
        for name in ("discord_webhook_url", "webhook_url"):
            url = getattr(self, name)
            if url:
                from .http import parse_webhook_url

                try:
                    parse_webhook_url(url, service=name)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        self.validate_mail()
        self.check_mail_to("alert_email_to", self.alert_email_to)
        if not 0 < self.alert_error_rate <= 1.0:
            raise ValueError(f"alert_error_rate must be in (0, 1], got {self.alert_error_rate!r}")
        for name in (
            "alert_cooldown_s",
            "alert_resolve_after_s",
            "alert_for_s",
            "alert_group_wait_s",
            "alert_group_interval_s",
            "alert_repeat_interval_s",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more seconds")
        if not self.alert_interval_s > 0:
            raise ValueError("alert_interval_s must be positive")
        unknown_groups = sorted(set(self.alert_group_by) - {"endpoint", "issue"})
        if unknown_groups:
            raise ValueError(f"alert_group_by: unknown {', '.join(unknown_groups)}; use endpoint and/or issue")
        if self.alert_maintenance:
            from .maintenance import parse_windows

            parse_windows(self.alert_maintenance)
        for name in ("slo_availability", "slo_latency_target"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 100:
                raise ValueError(f"{name} is a percentage such as 99.9, strictly between 0 and 100; got {value!r}")
        if (self.slo_latency_ms is None) != (self.slo_latency_target is None):
            raise ValueError("slo_latency_ms and slo_latency_target go together")
