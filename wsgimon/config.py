"""Validated, frozen configuration built from keyword arguments and ``WSGIMON_*`` variables.

Every option can come from the environment so a deployment can turn wsgimon on
or reconfigure it without code changes; an explicit argument always wins. A bad
value raises ``ValueError`` naming the option at construction, never at the
first request.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .aggregate import DEFAULT_BUCKETS_S
from .guard import logger
from .redaction import without_passwords

__all__ = ["ALERT_RULES", "Config", "DEFAULT_REDACT_KEYS", "SECRET_OPTIONS"]

EndpointFunc = Callable[[dict[str, Any]], str]
#: ``(exception, environ) -> str | None``: an issue's fingerprint, or None for wsgimon's own
FingerprintFunc = Callable[[BaseException, dict[str, Any]], "str | None"]

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "session",
    "signature",
    "sig",
    "jwt",
    "credential",
    "code",
)

#: Every alert rule; each can be left out of ``alert_rules``.
ALERT_RULES: tuple[str, ...] = ("exception", "error_rate", "latency_p95", "health", "slo", "regression", "new_error")
#: Options whose values are secrets: hidden in reprs, never logged.
SECRET_OPTIONS = ("password", "token", "smtp_password", "discord_webhook_url", "webhook_url")
_BOOLEANS = ("enabled", "allow_remote", "smtp_starttls", "smtp_ssl", "report_discord")
_LISTS = (
    "exclude",
    "redact_keys",
    "allowed_hosts",
    "alert_email_to",
    "alert_rules",
    "report_email_to",
    "alert_group_by",
)
_INTS = (
    "recent_requests",
    "max_endpoints",
    "max_traceback_chars",
    "smtp_port",
    "alert_min_requests",
    "max_releases",
    "regression_min_requests",
)
_FLOATS = (
    "flush_interval",
    "minute_retention_h",
    "retention_days",
    "health_window_s",
    "degraded_error_rate",
    "degraded_p95_ms",
    "health_check_timeout",
    "alert_cooldown_s",
    "alert_resolve_after_s",
    "alert_for_s",
    "alert_group_wait_s",
    "alert_group_interval_s",
    "alert_repeat_interval_s",
    "alert_error_rate",
    "alert_window_s",
    "alert_p95_ms",
    "alert_interval_s",
    "slow_request_ms",
    "slow_sample_interval_ms",
    "stuck_request_s",
    "slo_availability",
    "slo_latency_ms",
    "slo_latency_target",
    "regression_p95_ratio",
    "regression_p95_margin_ms",
)
_SHORT_SECRET = 16
_OPTIONAL_TEXT = (
    "health_path",
    "public_url",
    "discord_webhook_url",
    "webhook_url",
    "smtp_host",
    "smtp_username",
    "smtp_password",
    "email_from",
    "report_timezone",
    "release",
    "alert_maintenance",
    "smtp_ca_file",
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """All options of the middleware; see the README's configuration table."""

    enabled: bool = True
    prefix: str = "/monitoring"
    storage: str = "sqlite:///wsgimon.sqlite3"
    health_path: str | None = None
    exclude: tuple[str, ...] = ()
    recent_requests: int = 1000
    max_endpoints: int = 500
    endpoint: EndpointFunc | None = None
    fingerprint: FingerprintFunc | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    allow_remote: bool = False
    allowed_hosts: tuple[str, ...] = ()
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    flush_interval: float = 1.0
    minute_retention_h: float = 48.0
    retention_days: float = 90.0
    health_window_s: float = 300.0
    degraded_error_rate: float = 0.05
    degraded_p95_ms: float | None = None
    health_check_timeout: float = 2.0
    max_traceback_chars: int = 8000
    metrics_buckets: tuple[float, ...] = DEFAULT_BUCKETS_S
    slow_request_ms: float = 1000.0
    slow_sample_interval_ms: float = 100.0
    stuck_request_s: float = 30.0
    # -- releases ----------------------------------------------------------------------
    release: str | None = None
    max_releases: int = 20
    regression_min_requests: int = 200
    regression_p95_ratio: float = 1.25
    regression_p95_margin_ms: float = 10.0
    # -- alerts ------------------------------------------------------------------------
    public_url: str | None = None
    discord_webhook_url: str | None = None
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_ca_file: str | None = None
    email_from: str | None = None
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
    # -- weekly report -----------------------------------------------------------------
    report_email_to: tuple[str, ...] = ()
    report_schedule: str = "mon 09:00"
    report_timezone: str | None = None
    report_period: str = "week"
    report_discord: bool = False

    @classmethod
    def build(cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
        """Merge arguments over ``WSGIMON_<NAME>`` variables and validate the result."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name in known:
            if name in options and options[name] is not None:
                values[name] = _coerce(name, options[name])
                continue
            raw = env.get("WSGIMON_" + name.upper())
            if raw is not None:
                values[name] = _coerce(name, raw, from_env=True)
        config = cls(**values)
        config._validate()
        if "alert_cooldown_s" in values:
            logger.warning(
                "wsgimon: alert_cooldown_s is no longer used; alerts are grouped into incidents "
                "(alert_group_wait_s, alert_group_interval_s, alert_repeat_interval_s)"
            )
        return config

    def _validate(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/") or len(self.prefix) < 2:
            raise ValueError(f"prefix must look like '/monitoring', got {self.prefix!r}")
        if self.health_path is not None and not self.health_path.startswith("/"):
            raise ValueError(f"health_path must start with '/', got {self.health_path!r}")
        for path in self.exclude:
            if not path.startswith("/"):
                raise ValueError(f"exclude entries must start with '/', got {path!r}")
        if "://" not in self.storage:
            raise ValueError(f"storage must be a URL such as 'memory://', got {without_passwords(self.storage)!r}")
        _positive_int("recent_requests", self.recent_requests, maximum=1_000_000)
        _positive_int("max_endpoints", self.max_endpoints, maximum=100_000)
        _positive_int("max_traceback_chars", self.max_traceback_chars, maximum=1_000_000)
        _positive_float("flush_interval", self.flush_interval)
        if self.flush_interval > 60:
            raise ValueError(f"flush_interval must be at most 60 s, got {self.flush_interval!r}")
        _positive_float("minute_retention_h", self.minute_retention_h)
        _positive_float("retention_days", self.retention_days)
        if self.minute_retention_h > self.retention_days * 24:
            raise ValueError("minute_retention_h must not exceed retention_days")
        _positive_float("health_window_s", self.health_window_s)
        _positive_float("stuck_request_s", self.stuck_request_s)
        _positive_int("max_releases", self.max_releases, maximum=1000)
        _positive_int("regression_min_requests", self.regression_min_requests, maximum=10**9)
        if not self.regression_p95_ratio >= 1.0:
            raise ValueError("regression_p95_ratio must be 1 or more")
        if not self.regression_p95_margin_ms >= 0.0:
            raise ValueError("regression_p95_margin_ms must be 0 or more")
        if self.slow_request_ms < 0:
            raise ValueError("slow_request_ms must be 0 (sampling off) or more")
        if not 10 <= self.slow_sample_interval_ms <= 60_000:
            raise ValueError("slow_sample_interval_ms must be between 10 and 60000")
        _positive_float("health_check_timeout", self.health_check_timeout)
        if not 0.0 < self.degraded_error_rate <= 1.0:
            raise ValueError("degraded_error_rate must be in (0, 1]")
        if self.degraded_p95_ms is not None:
            _positive_float("degraded_p95_ms", self.degraded_p95_ms)
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
            if value is not None and len(value) < _SHORT_SECRET:
                logger.warning(
                    "wsgimon: the %s is %d characters long; use at least %d random characters "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                    name,
                    len(value),
                    _SHORT_SECRET,
                )
        if self.username is not None and ":" in self.username:
            raise ValueError("username must not contain ':'")
        if self.endpoint is not None and not callable(self.endpoint):
            raise ValueError("endpoint must be a callable environ -> str")
        if self.fingerprint is not None and not callable(self.fingerprint):
            raise ValueError("fingerprint must be a callable (exception, environ) -> str | None")
        from .alerts.settings import validate_alerting
        from .report_schedule import validate_report

        validate_alerting(self)
        validate_report(self)

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or self.username is not None

    def __repr__(self) -> str:
        # Secrets never reach logs or tracebacks through a repr.
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_OPTIONS and value is not None:
                value = "***"
            elif f.name == "storage":
                value = without_passwords(value)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"


def _coerce(name: str, value: Any, from_env: bool = False) -> Any:
    if name in _LISTS:
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",")]
            return tuple(item for item in items if item)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError(f"{name} must be a list of strings or a comma-separated string")
    if name == "metrics_buckets":
        items = value.split(",") if isinstance(value, str) else value
        try:
            bounds = tuple(float(item) for item in items if not isinstance(item, str) or item.strip())
        except (TypeError, ValueError):
            raise ValueError(f"metrics_buckets must be numbers of seconds, got {value!r}") from None
        if not bounds or not all(0 < b < float("inf") for b in bounds) or len(bounds) > 50:
            raise ValueError("metrics_buckets must be 1 to 50 positive, finite numbers of seconds")
        return tuple(sorted(set(bounds)))
    if name in _BOOLEANS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{name} must be a boolean (1/0, true/false), got {value!r}")
    if name in _INTS:
        return _to_number(name, value, int)
    if name in _FLOATS:
        if from_env and isinstance(value, str) and not value.strip():
            return None
        return _to_number(name, value, float)
    if name in ("endpoint", "fingerprint"):
        return _import_callable(name, value) if isinstance(value, str) else value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if from_env and not value and name in _OPTIONAL_TEXT:
        return None
    return value


def _to_number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if kind is int and isinstance(value, float):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _import_callable(name: str, spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{name} must be 'module:function', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{name} {spec!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise ValueError(f"{name} {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def _positive_int(name: str, value: int, maximum: int) -> None:
    if not isinstance(value, int) or not 0 < value <= maximum:
        raise ValueError(f"{name} must be an integer between 1 and {maximum}, got {value!r}")


def _positive_float(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
