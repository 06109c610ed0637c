"""Pytest plugin for Flask's own test suite: optionally wraps every Flask app and records the outcome.

With ``WSGIMON_WRAP=1`` each new ``flask.Flask`` gets
``self.wsgi_app = MonitorMiddleware(self.wsgi_app, storage="memory://")`` right
after its own ``__init__``, the one line the README tells users to add. Without it
``__init__`` is patched too, only to count apps, so both runs report the same
figures. When the pytest run ends the plugin writes a JSON report to
``WSGIMON_SUITE_REPORT``: the node ids by outcome, failure texts, and what is
still alive after garbage collection (threads, Flask apps, RSS), so a leak the
suite itself would not notice still shows.

The module imports nothing from the ``tests`` package: ``run.py`` loads it under a
different top-level name so it cannot collide with Flask's ``tests`` directory.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest

_WRAP = os.environ.get("WSGIMON_WRAP") == "1"
_MAX_TEXT = 4000  # failure text kept per test; enough for the assertion and the last frames

_original_init: Callable[..., None] | None = None
_apps_created = 0
_outcomes: dict[str, str] = {}  # node id -> passed / failed / errored / skipped
_texts: dict[str, str] = {}


def _patched_init(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
    global _apps_created
    assert _original_init is not None
    _original_init(self, *args, **kwargs)
    _apps_created += 1
    if _WRAP:
        from wsgimon import MonitorMiddleware

        self.wsgi_app = MonitorMiddleware(self.wsgi_app, storage="memory://")  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    global _original_init
    if _original_init is None:
        _original_init = flask.Flask.__init__
        flask.Flask.__init__ = _patched_init  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    global _original_init
    if _original_init is not None:
        flask.Flask.__init__ = _original_init  # type: ignore[method-assign]
        _original_init = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the worst phase: a failed setup or teardown makes the test errored, a failed call a failure."""
    nodeid = report.nodeid
    previous = _outcomes.get(nodeid)
    if report.failed:
        outcome = "failed" if report.when == "call" else "errored"
        if previous not in ("failed", "errored"):
            _outcomes[nodeid] = outcome
        _texts[nodeid] = (_texts.get(nodeid, "") + f"[{report.when}]\n" + report.longreprtext)[-_MAX_TEXT:]
    elif report.skipped:
        if previous is None:
            _outcomes[nodeid] = "skipped"
    elif report.when == "call" and previous is None:
        _outcomes[nodeid] = "passed"


def _settle(timeout: float = 5.0) -> None:
    """Collect garbage until wsgimon's own threads are gone or ``timeout`` passes; they exit after an idle spell."""
    deadline = time.monotonic() + timeout
    while True:
        for _ in range(3):
            gc.collect()
        if not any(t.name.startswith("wsgimon-") for t in threading.enumerate()) or time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def _rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("WSGIMON_SUITE_REPORT")
    if not target:
        return
    _settle()
    by_outcome: dict[str, list[str]] = {"passed": [], "failed": [], "errored": [], "skipped": []}
    for nodeid, outcome in _outcomes.items():
        by_outcome[outcome].append(nodeid)
    report = {
        "wrapped": _WRAP,
        "flask_version": _flask_version(),
        "exitstatus": int(exitstatus),
        **{k: sorted(v) for k, v in by_outcome.items()},
        "failure_texts": _texts,
        "threads": threading.active_count(),
        "thread_names": sorted(t.name for t in threading.enumerate()),
        "live_flask_apps": sum(1 for o in gc.get_objects() if isinstance(o, flask.Flask)),
        "rss_mib": _rss_mib(),
        "apps_created": _apps_created,
    }
    Path(target).write_text(json.dumps(report, indent=1, sort_keys=True))


def _flask_version() -> str:
    from importlib.metadata import version

    return version("flask")
