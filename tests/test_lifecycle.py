"""Many apps in one process, as app factories and test suites make them: nothing is left behind."""

from __future__ import annotations

import atexit
import gc
import os
import sqlite3
import threading
import weakref
from pathlib import Path

import pytest
from flask import Flask
from flask.signals import got_request_exception

from tests import wsgi_apps
from tests.helpers import call
from tests.servers import wait_until
from wsgimon import MonitorMiddleware
from wsgimon.recording import flusher as background

APPS = 300


def create_app(**options: object) -> Flask:
    """The factory Flask's documentation teaches, wrapped as the README says."""
    app = Flask(f"factory-{id(options)}")
    app.logger.disabled = True

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    app.wsgi_app = MonitorMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


def flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wsgimon-flusher"]


def wsgimon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("wsgimon")}


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hundreds_of_factory_apps_leave_no_thread_app_receiver_or_file(tmp_path: Path) -> None:
    create_app()  # process-wide, once: weakref.finalize's own exit hook, the API's route map
    gc.collect()
    # Middlewares other tests keep alive (in their servers' objects) are not this test's.
    recorders_before = len(background._flusher.live)
    receivers_before = len(got_request_exception.receivers)
    connections_before = _connections()
    atexit_before = atexit._ncallbacks()
    files_before = open_files()
    threads_before = wsgimon_threads()
    alive: list[weakref.ref[Flask]] = []
    for n in range(APPS):
        # Every tenth app keeps its statistics in a SQLite file of its own.
        options = {"storage": f"sqlite:///{tmp_path}/app{n}.sqlite3"} if n % 10 == 0 else {}
        app = create_app(**options)
        client = app.test_client()
        assert client.get(f"/items/{n}").json == {"id": n}
        assert client.get("/boom").status_code == 500
        alive.append(weakref.ref(app))
        if n == 0:
            assert flushers(), "a request starts the process's flusher"
        del app, client
    assert len(flushers()) <= 1, "one flusher thread serves every app of the process"
    # Apps and their middlewares form reference cycles (app.wsgi_app = M(app.wsgi_app)):
    # the cyclic garbage collector frees them, once their last records are flushed.
    wait_until(lambda: gc.collect() >= 0 and len(background._flusher.live) <= recorders_before, timeout=15)
    if recorders_before == 0:
        wait_until(lambda: not flushers(), timeout=15)
    gc.collect()
    assert wsgimon_threads() <= threads_before | set(flushers()) and len(flushers()) <= 1
    assert [ref for ref in alive if ref() is not None] == []
    # One receiver for the process; its connection to each app went with the app.
    assert len(got_request_exception.receivers) <= receivers_before + 1
    assert _connections() == connections_before
    assert atexit._ncallbacks() == atexit_before
    assert open_files() <= files_before


def test_apps_whose_responses_were_never_closed_are_freed_and_the_sampler_ends() -> None:
    """Some tests call ``app.wsgi_app(environ, start_response)`` and drop the body unclosed.

    That request stays in flight and refers to its middleware; nothing process-wide
    may hold it, or every such app lives for ever (and the sampler with it).
    """
    from werkzeug.test import EnvironBuilder

    from wsgimon.recording.sampler import sampler

    alive: list[weakref.ref[Flask]] = []
    for n in range(20):
        app = create_app()
        environ = EnvironBuilder(path=f"/items/{n}").get_environ()
        body = app.wsgi_app(environ, lambda status, headers, exc_info=None: lambda data: None)
        assert b"".join(body) == b'{"id":%d}\n' % n  # iterated, never closed
        alive.append(weakref.ref(app))
        del app, body
    wait_until(lambda: gc.collect() >= 0 and all(ref() is None for ref in alive), timeout=15)
    wait_until(lambda: sampler().watching() == 0, timeout=5)
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "wsgimon-sampler"], timeout=5)


def test_an_app_dropped_without_close_gets_its_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "dropped.sqlite3"
    app = create_app(storage=f"sqlite:///{path}", flush_interval=60)
    for n in range(5):
        app.test_client().get(f"/items/{n}")
    del app
    wait_until(lambda: gc.collect() >= 0 and _stored_requests(path) == 5, timeout=15)


def test_close_flushes_is_idempotent_and_turns_the_middleware_into_a_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "closed.sqlite3"
    app = create_app(storage=f"sqlite:///{path}", flush_interval=60)
    monitor = app.wsgi_app
    assert isinstance(monitor, MonitorMiddleware)
    client = app.test_client()
    client.get("/items/1")
    monitor.close()
    monitor.close()
    assert _stored_requests(path) == 1
    assert client.get("/items/2").json == {"id": 2}
    assert client.get("/monitoring/stats").status_code == 404, "the app answers its own 404"
    assert _stored_requests(path) == 1
    assert monitor.recorder not in background._flusher.live, "a closed middleware is not flushed any more"


def test_disabled_is_a_pass_through_with_no_thread_and_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WSGIMON_ENABLED", "0")
    monkeypatch.delenv("WSGIMON_STORAGE")
    app = create_app()
    client = app.test_client()
    assert client.get("/items/3").json == {"id": 3}
    assert client.get("/boom").status_code == 500
    assert client.get("/monitoring/stats").status_code == 404
    assert app.wsgi_app.recorder not in background._flusher.live  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []
    assert app.wsgi_app.recorder.pending == type(app.wsgi_app.recorder.pending)()  # type: ignore[attr-defined]


def test_disabled_by_argument_even_with_a_store_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monitor = MonitorMiddleware(wsgi_apps.list_app, enabled=False, storage="sqlite:///x.db")
    assert call(monitor, "/monitoring/stats").body == b"hello"
    assert list(tmp_path.iterdir()) == []


def test_reading_statistics_in_a_users_test() -> None:
    """What the README's "Testing your app" section shows.

    A request is recorded when the server closes its body; a test client's response
    is closed by ``with`` (a response to a failed request is otherwise kept alive by
    the exception's frames until the garbage collector runs).
    """
    app = create_app(storage="memory://")
    client = app.test_client()
    with client.get("/items/1"):
        pass
    with client.get("/boom") as response:
        assert response.status_code == 500
    stats = client.get("/monitoring/stats").json
    assert stats is not None
    assert stats["requests"] == 2 and stats["errors"] == 1
    assert stats["error_types"] == {"ValueError": 1}


def _connections() -> int:
    return sum(len(receivers) for receivers in got_request_exception._by_sender.values())


def _stored_requests(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT sum(count) FROM buckets WHERE resolution = 0 AND endpoint = '*'").fetchone()
    finally:
        conn.close()
    return int(row[0] or 0)
