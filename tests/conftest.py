from __future__ import annotations

import logging
import os
from collections.abc import Iterator

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
