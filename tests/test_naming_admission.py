"""Plain WSGI apps (no route matcher): made-up paths cannot take the places of the app's real paths."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers import call, get_json
from wsgimon import MonitorMiddleware
from wsgimon.recording import naming
from wsgimon.recording.naming import OTHER, UNMATCHED, EndpointNamer

REAL = ("/", "/about", "/pricing", "/products/12", "/contact")
REAL_NAMES = {"/", "/about", "/pricing", "/products/<int>", "/contact"}


def plain_app(junk_status: str) -> Any:
    """No framework: its own paths answer 200, anything else ``junk_status``."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        known = path in REAL or path.startswith("/products/")
        start_response("200 OK" if known else junk_status, [("Content-Type", "text/plain")])
        return [b"ok" if known else b"no"]

    return app


def endpoints(monitor: MonitorMiddleware) -> dict[str, int]:
    rows = get_json(monitor, "/monitoring/endpoints?window=all")["endpoints"]
    return {row["endpoint"]: row["requests"] for row in rows}


@pytest.mark.parametrize(
    "junk_status", ["404 Not Found", "400 Bad Request", "403 Forbidden", "405 Method Not Allowed", "401 Unauthorized"]
)
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_junk_paths_sent_twice_leave_the_real_paths_their_names(junk_status: str, storage: str, tmp_path: Path) -> None:
    # max_endpoints=50: 10 path-derived names; before, 1,000 junk paths sent twice took them all.
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path}/store.sqlite3"
    monitor = MonitorMiddleware(plain_app(junk_status), storage=url, max_endpoints=50, flush_interval=60)
    for n in range(1000):
        for _ in range(2):
            call(monitor, f"/wp-admin/junk-{n}.php")
    monitor.flush()
    for _ in range(3):
        for path in REAL:
            assert call(monitor, path).status == "200 OK"
    names = endpoints(monitor)
    assert names == {UNMATCHED: 2000, **dict.fromkeys(REAL_NAMES, 3)}
    assert OTHER not in names
    monitor.close()


def test_junk_the_app_fails_on_names_one_endpoint_per_interval_at_most() -> None:
    monitor = MonitorMiddleware(plain_app("500 Internal Server Error"), storage="memory://", max_endpoints=100)
    for n in range(1000):
        for _ in range(2):
            call(monitor, f"/junk-{n}")
    for path in REAL:
        call(monitor, path)
    names = endpoints(monitor)
    assert set(names) >= REAL_NAMES and OTHER not in names
    assert len(set(names) - REAL_NAMES - {UNMATCHED}) == 1  # the first failing path: one per 30 s


def test_a_known_path_keeps_its_name_when_it_fails() -> None:
    failing = {"on": False}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("503 Service Unavailable" if failing["on"] else "200 OK", [("Content-Type", "text/plain")])
        return [b""]

    monitor = MonitorMiddleware(app, storage="memory://")
    call(monitor, "/checkout")
    monitor.flush()
    failing["on"] = True
    call(monitor, "/checkout")
    assert endpoints(monitor) == {"/checkout": 2}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(naming, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def test_past_half_the_path_budget_new_names_come_slowly(clock: Clock) -> None:
    namer = EndpointNamer(max_endpoints=50)  # 10 path-derived names; the first 5 at once
    assert [namer.name("GET", f"/junk-{n}", 200, None, seen=2) for n in range(5)] == [f"/junk-{n}" for n in range(5)]
    # A burst the app answers 200, each path twice: one more name, not the whole budget.
    burst = [namer.name("GET", f"/more-{n}", 200, None, seen=2) for n in range(1000)]
    assert burst.count(UNMATCHED) == 999 and OTHER not in burst
    clock.now += naming._PATH_NAME_EVERY_S
    assert namer.name("GET", "/real/page", 200, None, seen=2) == "/real/page"
    assert namer.name("GET", "/real/other", 200, None, seen=2) == UNMATCHED  # until the next interval


def test_path_names_not_seen_for_a_day_leave_a_full_budget(clock: Clock) -> None:
    namer = EndpointNamer(max_endpoints=10)  # 2 path-derived names
    assert namer.name("GET", "/junk-a", 200, None, seen=2) == "/junk-a"
    clock.now += naming._PATH_NAME_EVERY_S
    assert namer.name("GET", "/real", 200, None, seen=2) == "/real"
    clock.now += naming._PATH_NAME_EVERY_S
    assert namer.name("GET", "/new", 200, None, seen=2) == OTHER  # full
    clock.now += naming._PATH_NAME_IDLE_S - 1000
    assert namer.name("GET", "/real", 200, None) == "/real"  # seen: it stays
    clock.now += 1000
    assert namer.name("GET", "/new", 200, None, seen=2) == "/new"  # /junk-a left
    assert namer.name("GET", "/real", 200, None) == "/real"


def test_a_4xx_never_makes_a_new_path_name(clock: Clock) -> None:
    namer = EndpointNamer(max_endpoints=500)
    for status in (400, 401, 403, 404, 405, 410, 414, 429):
        assert namer.name("GET", f"/scan/{status}/x", status, None, seen=50) == UNMATCHED
    assert namer.name("GET", "/scan/ok", 200, None) == "/scan/ok"
    assert namer.name("GET", "/scan/ok", 403, None) == "/scan/ok"
