"""An app wrapped twice (a factory that ran its setup twice, a wsgi.py wrap plus another) counts once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware


def passing(app: Any) -> Any:
    """Another middleware in between, so the outer wrap cannot see the inner one."""

    def wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        return app(environ, start_response)

    return wrapper


@pytest.mark.parametrize("between", [False, True], ids=["directly", "through-another-middleware"])
def test_two_nested_middlewares_on_one_store_count_each_request_once(
    between: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = f"sqlite:///{tmp_path}/twice.sqlite3"
    inner = MonitorMiddleware(wsgi_apps.list_app, storage=storage)
    outer = MonitorMiddleware(passing(inner) if between else inner, storage=storage)
    for _ in range(10):
        assert call(outer, "/orders").body == b"hello"
    for monitor in (inner, outer):
        monitor.flush()
    for monitor in (inner, outer):
        assert get_json(monitor, "/monitoring/stats")["requests"] == 10
        assert get_json(monitor, "/monitoring/endpoints")["endpoints"][0]["requests"] == 10
    told = [r for r in caplog.records if "wrapped in MonitorMiddleware twice" in r.getMessage()]
    assert len(told) == 1
    outer.close()
    inner.close()
