"""Who may read and change monitoring data, where it is served, and what makes health degraded."""

from __future__ import annotations

from dataclasses import dataclass

from ..stores.options import positive_float

__all__ = ["ApiOptions"]

_SHORT_SECRET = 16


@dataclass(frozen=True)
class ApiOptions:
    prefix: str = "/monitoring"
    health_path: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    allow_remote: bool = False
    #: trust loopback clients without credentials under any server, not only the development server
    trust_loopback: bool = False
    allowed_hosts: tuple[str, ...] = ()
    health_window_s: float = 300.0
    degraded_error_rate: float = 0.05
    degraded_p95_ms: float | None = None
    health_check_timeout: float = 2.0

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or self.username is not None

    def validate_api(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/") or len(self.prefix) < 2:
            raise ValueError(f"prefix must look like '/monitoring', got {self.prefix!r}")
        if self.health_path is not None and not self.health_path.startswith("/"):
            raise ValueError(f"health_path must start with '/', got {self.health_path!r}")
        positive_float("health_window_s", self.health_window_s)
        positive_float("health_check_timeout", self.health_check_timeout)
        if not 0.0 < self.degraded_error_rate <= 1.0:
            raise ValueError("degraded_error_rate must be in (0, 1]")
        if self.degraded_p95_ms is not None:
            positive_float("degraded_p95_ms", self.degraded_p95_ms)
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        for name in ("username", "password", "token"):
            value = getattr(self, name)
            if value is not None and not value:
                raise ValueError(f"{name} must not be empty")
            if value is not None and value != value.strip():
                # Headers are stripped before comparison: such a secret could never match.
                raise ValueError(f"{name} must not start or end with white space")
        for name in ("password", "token"):
            value = getattr(self, name)
            if value is not None and (len(value) < _SHORT_SECRET or len(set(value)) == 1):
                # Refused, not warned about: a guessable secret opens tracebacks and messages to anyone.
                raise ValueError(
                    f"{name} must be at least {_SHORT_SECRET} characters and not one repeated character "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        if self.username is not None and ":" in self.username:
            raise ValueError("username must not contain ':'")
