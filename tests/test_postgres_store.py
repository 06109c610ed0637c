"""The PostgreSQL store: several hosts, one picture; a database that goes away costs the app nothing.

Every test runs against a private PostgreSQL server started for the session
(tests/postgres.py), each in a fresh database.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import postgres
from tests.helpers import call, get_json
from tests.seeding import batch_of, process
from tests.servers import gunicorn_server, wait_until
from wsgimon import MonitorMiddleware
from wsgimon.stores.contract import StoreUnavailable
from wsgimon.stores.postgres import PostgresStore, parse_url

postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url

FLUSH = 0.3


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def password_of(url: str) -> str:
    password = parse_url(url)[2]
    assert password
    return password


def test_the_url_names_a_schema_and_is_shown_without_its_password() -> None:
    conninfo, schema, password, shown = parse_url(
        "postgresql://app:s3cr%2Ft@db.example:6432/prod?schema=mon&sslmode=require"
    )
    assert schema == "mon" and password == "s3cr/t"
    assert "schema" not in conninfo and "sslmode=require" in conninfo
    assert shown == "postgresql://app@db.example:6432/prod (schema mon)"
    with pytest.raises(ValueError, match="schema name"):
        parse_url("postgresql://h/db?schema=x;drop")


def test_schema_created_on_first_use_in_its_own_schema_and_versioned(
    postgres_url: str, postgres_server: postgres.PostgresServer
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.psql("CREATE TABLE public.buckets (id int); INSERT INTO public.buckets VALUES (42)", database)
    store = PostgresStore(postgres_url, recent_requests=10)
    store.write(batch_of([(time.time(), "/a", "GET", 200, 1.0)]), process())
    store.close()
    tables = postgres_server.psql(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN ('public', 'wsgimon') ORDER BY 1",
        database,
    ).split()
    assert "public.buckets" in tables and "wsgimon.buckets" in tables and "wsgimon.meta" in tables
    assert postgres_server.psql("SELECT id FROM public.buckets", database).strip() == "42", "another table untouched"
    assert postgres_server.psql("SELECT value FROM wsgimon.meta WHERE key = 'schema_version'", database).strip()

    postgres_server.psql("UPDATE wsgimon.meta SET value = '99' WHERE key = 'schema_version'", database)
    with pytest.raises(ValueError, match="newer than this wsgimon supports"):
        PostgresStore(postgres_url, recent_requests=10)

    postgres_server.psql("CREATE SCHEMA other; CREATE TABLE other.orders (id int)", database)
    with pytest.raises(ValueError, match="another application"):
        PostgresStore(postgres_url + "?schema=other", recent_requests=10)
    assert (
        postgres_server.psql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'other'", database
        ).strip()
        == "1"
    )


@pytest.mark.internal_errors
def test_a_database_that_is_down_at_start_is_retried_and_the_password_never_shows(
    postgres_url: str, postgres_server: postgres.PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = password_of(postgres_url)
    postgres_server.stop("immediate")
    caplog.set_level(logging.WARNING, logger="wsgimon")
    monitor = MonitorMiddleware(_hello, storage=postgres_url, flush_interval=FLUSH)
    client_requests = [_call(monitor, f"/down/{n}") for n in range(20)]
    assert set(client_requests) == {"200 OK"}
    health = _health(monitor)
    assert health["checks"]["store"]["status"] == "degraded"
    assert secret not in str(health) and secret not in repr(monitor.config)
    assert secret not in caplog.text and "unavailable" in caplog.text
    with pytest.raises(StoreUnavailable) as raised:
        monitor.store.recent_requests(1)
    assert secret not in str(raised.value)
    postgres_server.start()
    wait_until(lambda: _stored(monitor) == 20, timeout=15)
    assert _health(monitor)["checks"]["store"]["status"] == "ok"
    monitor.close()


def test_an_inherited_connection_is_never_used_or_closed_by_the_child(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, recent_requests=10)
    store.write(batch_of([(time.time(), "/parent", "GET", 200, 1.0)]), process())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            store.write(batch_of([(time.time(), "/child", "GET", 200, 1.0)]), process())
            os._exit(0 if store.overall(None, time.time()).count == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's session was not ended by the child: it goes on writing.
    store.write(batch_of([(time.time(), "/parent", "GET", 200, 1.0)]), process())
    assert store.overall(None, time.time()).count == 3
    store.close()


@pytest.mark.slow
def test_two_hosts_give_one_exact_picture_through_an_outage_and_restarts(
    postgres_url: str, postgres_server: postgres.PostgresServer, tmp_path: Path
) -> None:
    env = {"WSGIMON_STORAGE": postgres_url, "WSGIMON_FLUSH_INTERVAL": str(FLUSH)}
    args = ("-w", "2", "-k", "gthread", "--threads", "4")
    secret = password_of(postgres_url)
    sent = 0
    with (
        gunicorn_server("demo_app:app", *args, env=env) as (host_a, _),
        gunicorn_server("demo_app:app", *args, env=env) as (host_b, _),
    ):
        sent += _load([host_a, host_b], 300)
        for url in (host_a, host_b):
            wait_until(lambda url=url: _every_view_is(url, sent), 20)

        # PostgreSQL stops in the middle of the load: the application does not notice.
        before = _latencies([host_a, host_b], 100)
        sent += 100
        stopper = threading.Timer(0.2, postgres_server.stop, kwargs={"mode": "immediate"})
        stopper.start()
        during = _latencies([host_a, host_b], 400)
        stopper.join()
        sent += 400
        assert not postgres_server.is_running()
        health = httpx.get(host_a + "/monitoring/health", timeout=10).json()
        assert health["checks"]["store"]["status"] == "degraded" and secret not in str(health)
        assert len(during) == 400 and len(before) == 100, "every request answered 200 while the database was down"
        postgres_server.start()
        for url in (host_a, host_b):
            wait_until(lambda url=url: _every_view_is(url, sent), 30)

    # Both hosts restarted: the history is the database's.
    with gunicorn_server("demo_app:app", *args, env=env) as (host_a, _):
        assert _total(host_a) == sent
        sent += _load([host_a], 50)
        wait_until(lambda: _every_view_is(host_a, sent), 20)


def _hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"hello"]


def _call(monitor: MonitorMiddleware, path: str) -> str:
    return call(monitor, path).status


def _health(monitor: MonitorMiddleware) -> Any:
    return get_json(monitor, "/monitoring/health")


def _stored(monitor: MonitorMiddleware) -> int:
    try:
        return monitor.store.overall(None, time.time()).count
    except StoreUnavailable:
        return -1


def _load(hosts: list[str], count: int) -> int:
    paths = [
        f"{hosts[n % len(hosts)]}/items/{n}" if n % 3 else f"{hosts[n % len(hosts)]}/test/normal" for n in range(count)
    ]

    def send(chunk: list[str]) -> None:
        with httpx.Client(timeout=10) as client:
            for url in chunk:
                assert client.get(url).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [paths[i::8] for i in range(8)]))
    return count


def _latencies(hosts: list[str], count: int) -> list[float]:
    out: list[float] = []
    lock = threading.Lock()

    def send(chunk: list[int]) -> None:
        with httpx.Client(timeout=10) as client:
            for n in chunk:
                started = time.perf_counter()
                response = client.get(f"{hosts[n % len(hosts)]}/items/{n}")
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.status_code
                with lock:
                    out.append(elapsed)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [list(range(count))[i::4] for i in range(4)]))
    return out


def _total(url: str) -> int:
    answer = httpx.get(url + "/monitoring/stats?window=all", timeout=10)
    if answer.status_code == 503:  # the store cannot be read this moment
        return -1
    assert answer.status_code == 200, answer.text
    return int(answer.json()["requests"])


def _every_view_is(url: str, requests: int) -> bool:
    return all(_total(url) == requests for _ in range(6))


@pytest.mark.internal_errors
def test_a_database_that_blocks_every_write_costs_requests_nothing_and_loses_nothing(postgres_url: str) -> None:
    import psycopg

    monitor = MonitorMiddleware(_hello, storage=postgres_url, flush_interval=FLUSH)
    assert _call(monitor, "/warm") == "200 OK"
    wait_until(lambda: _stored(monitor) == 1, timeout=10)
    # Another session holds the table every flush appends to: every write waits until its statement timeout.
    blocker = psycopg.connect(postgres_url)
    blocker.execute("LOCK TABLE wsgimon.journal IN ACCESS EXCLUSIVE MODE")
    try:
        assert {_call(monitor, f"/blocked/{n}") for n in range(50)} == {"200 OK"}
        wait_until(lambda: monitor.recorder.store_error is not None, timeout=15)
        assert _health(monitor)["checks"]["store"]["status"] == "degraded"
    finally:
        blocker.rollback()
        blocker.close()
    wait_until(lambda: _stored(monitor) == 51, timeout=15)
    assert _health(monitor)["checks"]["store"]["status"] == "ok"
    monitor.close()
