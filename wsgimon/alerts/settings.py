"""Channels from the configuration: validated at start, built in the serving process.

A webhook URL carries its token and the SMTP password is a password: errors
about them never repeat them. Channels hold network clients, so they are made
after a fork, on first use, never at import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from .model import Alert

if TYPE_CHECKING:
    from ..config import Config
    from ..smtp import SMTPSettings

__all__ = ["Channel", "configured_channels", "make_channels", "smtp_settings", "validate_alerting"]


class Channel(Protocol):
    """One way to reach people: a single delivery attempt per ``send``."""

    name: str

    def send(self, alert: Alert, *, patience: float = 1.0) -> float | None:
        """Deliver once, waiting ``patience`` times the usual for an answer; a float is how long to wait
        before the next send. Raises a DeliveryError."""

    def close(self) -> None: ...


def configured_channels(config: Config) -> list[str]:
    names = []
    if config.discord_webhook_url:
        names.append("discord")
    if config.webhook_url:
        names.append("webhook")
    if config.alert_email_to:
        names.append("email")
    return names


def smtp_settings(config: Config) -> SMTPSettings | None:
    """The SMTP settings alerts and the report share, or None when no SMTP host is configured."""
    if not config.smtp_host:
        return None
    from ..smtp import SMTPSettings

    return SMTPSettings(
        host=config.smtp_host,
        port=config.smtp_port,
        username=config.smtp_username,
        password=config.smtp_password,
        starttls=config.smtp_starttls,
        ssl=config.smtp_ssl,
        ca_file=config.smtp_ca_file,
        sender=config.email_from or "",
    )


def validate_alerting(config: Config) -> None:
    """A bad URL, address or rule is a ValueError at start, never at the first alert."""
    from ..config import ALERT_RULES

    unknown = sorted(set(config.alert_rules) - set(ALERT_RULES))
    if unknown:
        raise ValueError(f"alert_rules: unknown rule(s) {', '.join(unknown)}; known: {', '.join(ALERT_RULES)}")
    for name in ("discord_webhook_url", "webhook_url"):
        url = getattr(config, name)
        if url:
            from .http import parse_webhook_url

            try:
                parse_webhook_url(url, service=name)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    needs_smtp = bool(config.alert_email_to or config.report_email_to)
    if needs_smtp:
        from ..smtp import parse_recipients

        settings = smtp_settings(config)
        if settings is None:
            raise ValueError("alert_email_to / report_email_to need smtp_host (and email_from)")
        if not config.email_from:
            raise ValueError("email_from is needed to send e-mail")
        settings.validate()
        for name in ("alert_email_to", "report_email_to"):
            value = getattr(config, name)
            if value:
                parse_recipients(value)
    if config.public_url and not config.public_url.startswith(("https://", "http://")):
        raise ValueError("public_url must start with https:// or http://")
    _fraction_or_percent("alert_error_rate", config.alert_error_rate, 1.0)
    for name in (
        "alert_cooldown_s",
        "alert_resolve_after_s",
        "alert_for_s",
        "alert_group_wait_s",
        "alert_group_interval_s",
        "alert_repeat_interval_s",
    ):
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be 0 or more seconds")
    unknown_groups = sorted(set(config.alert_group_by) - {"endpoint", "issue"})
    if unknown_groups:
        raise ValueError(f"alert_group_by: unknown {', '.join(unknown_groups)}; use endpoint and/or issue")
    if config.alert_maintenance:
        from .maintenance import parse_windows

        parse_windows(config.alert_maintenance)
    if config.smtp_ca_file is not None and not os.path.isfile(config.smtp_ca_file):
        raise ValueError(f"smtp_ca_file: no file at {config.smtp_ca_file!r}")
    for name in ("slo_availability", "slo_latency_target"):
        value = getattr(config, name)
        if value is not None and not 0 < value < 100:
            raise ValueError(f"{name} is a percentage such as 99.9, strictly between 0 and 100; got {value!r}")
    if (config.slo_latency_ms is None) != (config.slo_latency_target is None):
        raise ValueError("slo_latency_ms and slo_latency_target go together")


def make_channels(config: Config) -> list[Channel]:
    """The configured channels, each with its own client; call in the serving process."""
    channels: list[Channel] = []
    if config.discord_webhook_url:
        from .discord import DiscordChannel

        channels.append(DiscordChannel(config.discord_webhook_url))
    if config.webhook_url:
        from .webhook import WebhookChannel

        channels.append(WebhookChannel(config.webhook_url))
    settings = smtp_settings(config)
    if config.alert_email_to and settings is not None:
        from ..smtp import parse_recipients
        from .email import EmailChannel

        channels.append(EmailChannel(settings, parse_recipients(config.alert_email_to)))
    return channels


def _fraction_or_percent(name: str, value: float, maximum: float) -> None:
    if not 0 < value <= maximum:
        raise ValueError(f"{name} must be in (0, {maximum:g}], got {value!r}")
