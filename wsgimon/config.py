"""Validated, frozen configuration built from keyword arguments and ``WSGIMON_*`` variables.

Each feature owns its options (a small frozen dataclass that checks itself: recording, store,
API and health, releases, alerts, the report); :class:`Config` composes them, and this module
imports each one way. Every option can come from the environment, so a deployment can turn
wsgimon on or reconfigure it without code changes; an explicit argument always wins, ``None``
included (it turns off an option the environment sets). How a ``WSGIMON_*`` value is read
follows the option's type. A bad value raises ``ValueError`` naming the option at construction,
never at the first request; a ``WSGIMON_*`` variable that names no option (a typo) is warned
about once.

:class:`Options` is the same list for editors and type checkers (``MonitorMiddleware(app,
**options: Unpack[Options])``); a test keeps it equal to :class:`Config`'s fields.
"""

from __future__ import annotations

import importlib
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from .alerts.options import ALERT_RULES, AlertOptions
from .api.options import ApiOptions
from .internal_errors import logger
from .recording.options import DEFAULT_REDACT_KEYS, EndpointFunc, FingerprintFunc, RecordingOptions
from .reporting.options import ReportOptions
from .secret_text import without_passwords
from .stats.options import CheckinOptions, ReleaseOptions, read_checkins
from .stores.options import StoreOptions

__all__ = ["ALERT_RULES", "Config", "DEFAULT_REDACT_KEYS", "Options", "SECRET_OPTIONS"]

#: Options whose values are secrets: hidden in reprs, never logged.
SECRET_OPTIONS = ("password", "token", "smtp_password", "discord_webhook_url", "webhook_url")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_warned_about: set[str] = set()


@dataclass(frozen=True)
class Config(ReportOptions, AlertOptions, CheckinOptions, ReleaseOptions, ApiOptions, StoreOptions, RecordingOptions):
    """All options of the middleware; see the README's configuration table."""

    enabled: bool = True

    @classmethod
    def build(cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
        """Merge arguments over ``WSGIMON_<NAME>`` variables and validate the result."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        _warn_unknown_variables(env, known)
        types_of = _field_types()
        values: dict[str, Any] = {}
        for name in known:
            if name in options:
                values[name] = _coerce(name, types_of[name], options[name], from_env=False)
                continue
            raw = env.get("WSGIMON_" + name.upper())
            if raw is not None:
                values[name] = _coerce(name, types_of[name], raw, from_env=True)
        config = cls(**values)
        config._validate()
        if "alert_cooldown_s" in values:
            logger.warning(
                "wsgimon: alert_cooldown_s is no longer used; alerts are grouped into incidents "
                "(alert_group_wait_s, alert_group_interval_s, alert_repeat_interval_s)"
            )
        return config

    def _validate(self) -> None:
        self.validate_recording()
        self.validate_store()
        self.validate_api()
        self.validate_releases()
        self.validate_checkins()
        self.validate_alerts()
        self.validate_report()

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


class Options(TypedDict, total=False):
    """Every option ``MonitorMiddleware`` takes, with its type (the README's table says what each does)."""

    enabled: bool
    exclude: tuple[str, ...] | list[str] | str
    max_endpoints: int
    endpoint: EndpointFunc | str | None
    fingerprint: FingerprintFunc | str | None
    redact_keys: tuple[str, ...] | list[str] | str
    flush_interval: float
    max_traceback_chars: int
    metrics_buckets: tuple[float, ...] | list[float] | str
    slow_request_ms: float
    slow_sample_interval_ms: float
    stuck_request_s: float
    release: str | None
    capture_db: bool
    capture_http: bool
    slow_query_ms: float
    n_plus_one_repeats: int
    checkins: dict[str, dict[str, Any]] | str
    storage: str
    recent_requests: int
    minute_retention_h: float
    retention_days: float
    max_releases: int
    prefix: str
    health_path: str | None
    username: str | None
    password: str | None
    token: str | None
    allow_remote: bool
    trust_loopback: bool
    allowed_hosts: tuple[str, ...] | list[str] | str
    health_window_s: float
    degraded_error_rate: float
    degraded_p95_ms: float | None
    health_check_timeout: float
    regression_min_requests: int
    regression_p95_ratio: float
    regression_p95_margin_ms: float
    public_url: str | None
    smtp_host: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_starttls: bool
    smtp_ssl: bool
    smtp_ca_file: str | None
    email_from: str | None
    discord_webhook_url: str | None
    webhook_url: str | None
    alert_email_to: tuple[str, ...] | list[str] | str
    alert_rules: tuple[str, ...] | list[str] | str
    alert_cooldown_s: float
    alert_resolve_after_s: float
    alert_for_s: float
    alert_group_wait_s: float
    alert_group_interval_s: float
    alert_repeat_interval_s: float
    alert_group_by: tuple[str, ...] | list[str] | str
    alert_maintenance: str | None
    alert_error_rate: float
    alert_min_requests: int
    alert_window_s: float
    alert_p95_ms: float | None
    alert_interval_s: float
    slo_availability: float | None
    slo_latency_ms: float | None
    slo_latency_target: float | None
    report_email_to: tuple[str, ...] | list[str] | str
    report_schedule: str
    report_timezone: str | None
    report_period: str
    report_discord: bool


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def _warn_unknown_variables(env: Mapping[str, str], known: set[str]) -> None:
    strays = sorted(
        name
        for name in env
        if name.startswith("WSGIMON_") and name[8:].lower() not in known and name not in _warned_about
    )
    if strays:
        _warned_about.update(strays)
        logger.warning("wsgimon: ignoring %s: no such option (a typo?)", ", ".join(strays))


def _coerce(name: str, kind: Any, value: Any, *, from_env: bool) -> Any:
    """``value`` as the option's type; an environment value is text, read by the type's rules."""
    optional = _is_optional(kind)
    base = _without_none(kind)
    if name in _READERS:
        return _READERS[name](() if value is None else value)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} must not be None (it has no 'off' value)")
    if from_env and optional and isinstance(value, str) and not value.strip() and base is not bool:
        return None  # WSGIMON_X= (empty) turns an optional setting off
    origin = typing.get_origin(base)
    if origin is tuple:
        item = typing.get_args(base)[0]
        return _sequence(name, value, item)
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{name} must be a boolean (1/0, true/false), got {value!r}")
    if base in (int, float):
        return _number(name, value, base)
    if base is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        return value
    if _is_callable(base):
        return _import_callable(name, value) if isinstance(value, str) else value
    raise TypeError(f"option {name}: no reading for {kind!r}")  # a new option of a new kind


#: options whose type has its own reading
_READERS: dict[str, Callable[[Any], Any]] = {"checkins": read_checkins}


def _sequence(name: str, value: Any, item: Any) -> tuple[Any, ...]:
    if item is float:
        parts = value.split(",") if isinstance(value, str) else value
        try:
            numbers = tuple(float(part) for part in parts if not isinstance(part, str) or part.strip())
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers, got {value!r}") from None
        return tuple(sorted(set(numbers)))
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be a list of strings or a comma-separated string")


def _is_optional(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)


def _without_none(kind: Any) -> Any:
    if not _is_optional(kind):
        return kind
    rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return rest[0] if len(rest) == 1 else kind


def _is_callable(kind: Any) -> bool:
    return typing.get_origin(kind) is Callable or kind is Callable


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
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
