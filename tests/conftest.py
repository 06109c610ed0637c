from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from wsgimon import internal_errors as guard


@pytest.fixture(autouse=True)
def no_internal_errors(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test when wsgimon swallowed an internal error it did not expect."""
    guard.reset_seen()
    before = guard.internal_error_count()
    caplog.set_level(logging.WARNING, logger="wsgimon")
    yield
    if request.node.get_closest_marker("internal_errors"):
        return
    swallowed = guard.internal_error_count() - before
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("wsgimon") and r.levelno >= logging.ERROR]
    assert swallowed == 0 and not messages, f"wsgimon swallowed internal errors: {messages}"


# Tests choose their store explicitly; the default (a SQLite file in the working
# directory) is for users.
os.environ["WSGIMON_STORAGE"] = "memory://"
# The suite's servers (gunicorn, waitress) run on this machine for their tests: loopback clients are
# trusted there as a developer would set it. The tests of credentials under production servers
# turn it off (tests/test_access.py).
os.environ["WSGIMON_TRUST_LOOPBACK"] = "1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one per module of the dashboard's browser tests."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.test_dashboard_browser import CHROMIUM

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
