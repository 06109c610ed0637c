"""What is recorded and how: endpoint naming, grouping of failures, redaction, flushing, slow requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..stats.aggregate import DEFAULT_BUCKETS_S
from ..stores.options import positive_float, positive_int

__all__ = ["DEFAULT_REDACT_KEYS", "EndpointFunc", "FingerprintFunc", "RecordingOptions"]

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


@dataclass(frozen=True)
class RecordingOptions:
    exclude: tuple[str, ...] = ()
    max_endpoints: int = 500
    endpoint: EndpointFunc | None = None
    fingerprint: FingerprintFunc | None = None
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    flush_interval: float = 1.0
    max_traceback_chars: int = 8000
    metrics_buckets: tuple[float, ...] = DEFAULT_BUCKETS_S
    slow_request_ms: float = 1000.0
    slow_sample_interval_ms: float = 100.0
    stuck_request_s: float = 30.0
    release: str | None = None
    #: time and count each request's database queries and outbound HTTP calls
    capture_db: bool = True
    capture_http: bool = True
    #: a query at least this slow has the app frame that ran it looked up
    slow_query_ms: float = 100.0
    #: a statement run this many times in one request is flagged as an N+1
    n_plus_one_repeats: int = 5

    def validate_recording(self) -> None:
        for path in self.exclude:
            if not path.startswith("/"):
                raise ValueError(f"exclude entries must start with '/', got {path!r}")
        positive_int("max_endpoints", self.max_endpoints, maximum=100_000)
        positive_int("max_traceback_chars", self.max_traceback_chars, maximum=1_000_000)
        positive_float("flush_interval", self.flush_interval)
        if self.flush_interval > 60:
            raise ValueError(f"flush_interval must be at most 60 s, got {self.flush_interval!r}")
        positive_float("stuck_request_s", self.stuck_request_s)
        if self.slow_request_ms < 0:
            raise ValueError("slow_request_ms must be 0 (sampling off) or more")
        if not 10 <= self.slow_sample_interval_ms <= 60_000:
            raise ValueError("slow_sample_interval_ms must be between 10 and 60000")
        if not self.metrics_buckets or len(self.metrics_buckets) > 50:
            raise ValueError("metrics_buckets must be 1 to 50 positive, finite numbers of seconds")
        if not all(0 < bound < float("inf") for bound in self.metrics_buckets):
            raise ValueError("metrics_buckets must be 1 to 50 positive, finite numbers of seconds")
        if self.slow_query_ms < 0:
            raise ValueError("slow_query_ms must be 0 or more")
        positive_int("n_plus_one_repeats", self.n_plus_one_repeats, maximum=1000)
        if self.n_plus_one_repeats < 2:
            raise ValueError("n_plus_one_repeats must be at least 2")
        for name in ("endpoint", "fingerprint"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ValueError(f"{name} must be a callable")
