"""Channels from the configuration, built in the serving process (the options are checked in :mod:`.options`).

A webhook URL carries its token and the SMTP password is a password: errors
about them never repeat them. Channels hold network clients, so they are made
after a fork, on first use, never at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .model import Alert

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Channel", "configured_channels", "make_channels"]


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


def make_channels(config: Config) -> list[Channel]:
    """The configured channels, each with its own client; call in the serving process."""
    channels: list[Channel] = []
    if config.discord_webhook_url:
        from .discord import DiscordChannel

        channels.append(DiscordChannel(config.discord_webhook_url))
    if config.webhook_url:
        from .webhook import WebhookChannel

        channels.append(WebhookChannel(config.webhook_url))
    settings = config.smtp_settings()
    if config.alert_email_to and settings is not None:
        from .email import EmailChannel
        from .smtp import parse_recipients

        channels.append(EmailChannel(settings, parse_recipients(config.alert_email_to)))
    return channels
