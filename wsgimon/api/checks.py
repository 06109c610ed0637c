"""Health of the application: built-in checks plus the user's own, each bounded in time.

Status is ``fail`` (HTTP 503) when a user check fails, ``degraded`` when a
built-in threshold is crossed (recent error rate, p95, the store), else ``ok``.
A check runs in a small worker pool so one that hangs reports a timeout instead
of hanging the health endpoint.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckResult", "HealthCheck", "HealthRegistry", "overall_status"]

OK, DEGRADED, FAIL = "ok", "degraded", "fail"
_RANK = {OK: 0, DEGRADED: 1, FAIL: 2}


@dataclass(frozen=True)
class CheckResult:
    status: str
    detail: str
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "duration_ms": self.duration_ms}


@dataclass(frozen=True)
class HealthCheck:
    name: str
    func: Callable[[], object]


class HealthRegistry:
    """User checks by name, run with a timeout in one small pool shared by the process.

    A check still running from an earlier call (it hung) is not submitted again:
    it reports that it is still running, so one hung check neither queues up
    calls without bound nor delays the others.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.checks: dict[str, HealthCheck] = {}
        self._running: dict[str, tuple[Future[CheckResult], float]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, func: Callable[[], object]) -> None:
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ValueError("health check name must be a non-empty string of at most 100 characters")
        if not callable(func):
            raise ValueError(f"health check {name!r} must be callable")
        self.checks[name] = HealthCheck(name, func)

    def run_all(self) -> dict[str, CheckResult]:
        checks = list(self.checks.values())
        if not checks:
            return {}
        started = time.perf_counter()
        futures: list[tuple[HealthCheck, Future[CheckResult], float]] = []
        results: dict[str, CheckResult] = {}
        with self._lock:
            for check in checks:
                running = self._running.get(check.name)
                if running is not None and not running[0].done():
                    since = running[1]
                    results[check.name] = CheckResult(
                        FAIL,
                        f"still running since {started - since:.1f} s (timed out after {self.timeout:g} s)",
                        round((started - since) * 1000, 3),
                    )
                    continue
                future = _executor().submit(_run_one, check)
                self._running[check.name] = (future, started)
                futures.append((check, future, started))
        for check, future, _ in futures:
            remaining = max(0.0, self.timeout - (time.perf_counter() - started))
            try:
                results[check.name] = future.result(timeout=remaining)
            except FutureTimeout:
                results[check.name] = CheckResult(FAIL, f"timed out after {self.timeout:g} s", self.timeout * 1000)
        return {check.name: results[check.name] for check in checks}


_pool: ThreadPoolExecutor | None = None
_pool_pid = -1
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The process's pool for user checks, made on first use and anew after a fork."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wsgimon-health")
            _pool_pid = os.getpid()
        return _pool


def _run_one(check: HealthCheck) -> CheckResult:
    started = time.perf_counter()
    try:
        outcome = check.func()
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        return CheckResult(FAIL, detail, _elapsed_ms(started))
    if outcome is False:
        return CheckResult(FAIL, "check returned False", _elapsed_ms(started))
    detail = "ok" if outcome is None or outcome is True else str(outcome)[:500]
    return CheckResult(OK, detail, _elapsed_ms(started))


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def overall_status(results: dict[str, CheckResult]) -> str:
    worst = OK
    for result in results.values():
        if _RANK[result.status] > _RANK[worst]:
            worst = result.status
    return worst
