"""The private PostgreSQL server used by the PostgreSQL store tests."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests import postgres
from tests.postgres import PostgresError, PostgresServer, StopMode

postgres_server = postgres.postgres_server
postgres_url = postgres.postgres_url

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.slow


def user_tables(url: str) -> list[str]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize("round", [1, 2])
def test_each_test_gets_an_empty_database(postgres_url: str, round: int) -> None:
    assert user_tables(postgres_url) == []
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE leftover (n integer)")
        conn.execute("INSERT INTO leftover VALUES (%s)", (round,))
    assert user_tables(postgres_url) == ["leftover"]


def test_private_instance_settings(postgres_server: PostgresServer) -> None:
    assert postgres_server.port != 5432
    url = urlsplit(postgres_server.url)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", postgres_server.port, "/wsgimon")
    assert postgres_server.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres_server.psql("SHOW unix_socket_directories") == str(postgres_server.socket_dir)
    assert postgres_server.psql("SHOW fsync") == "off"
    assert postgres_server.psql("SELECT current_database(), current_user") == "wsgimon|wsgimon"
    assert postgres.PASSWORD not in repr(postgres_server)


def test_tcp_login_needs_the_password(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(postgres_url, "wrong"), connect_timeout=10)


def test_psql_returns_rows_of_every_statement(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    try:
        out = postgres_server.psql(
            "CREATE TABLE t (a integer, b text); INSERT INTO t VALUES (1, 'x'), (2, NULL); SELECT * FROM t ORDER BY a",
            database=name,
        )
        assert out == "1|x\n2|"
        with pytest.raises(PostgresError, match="does_not_exist"):
            postgres_server.psql("SELECT * FROM does_not_exist", database=name)
    finally:
        postgres_server.drop_database(name)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_data_survives_stop_and_start(postgres_server: PostgresServer, postgres_url: str, mode: StopMode) -> None:
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE kept (n integer)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 100)")
    port, pid = postgres_server.port, postgres_server.pid
    assert pid is not None

    postgres_server.stop(mode)
    assert not postgres_server.is_running()
    assert postgres_server.pid is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_url, connect_timeout=5)
    postgres_server.stop(mode)  # stopping twice is harmless

    postgres_server.start()
    assert postgres_server.is_running()
    assert postgres_server.port == port
    assert postgres_server.pid not in (None, pid)
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM kept").fetchone() == (100, 5050)


def test_open_connection_breaks_on_stop_and_a_new_one_works_after_start(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    conn = psycopg.connect(postgres_url, autocommit=True, connect_timeout=10)
    try:
        conn.execute("SELECT 1")
        postgres_server.stop("fast")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    postgres_server.start()
    with psycopg.connect(postgres_url, connect_timeout=10) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_failed_start_names_the_log_and_hides_the_password() -> None:
    with PostgresServer(password="not-in-messages") as server:
        log_path, base_dir = server.log_path, server.base_dir
        server.stop()
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", server.port))
            squatter.listen()
            with pytest.raises(PostgresError) as failure:
                server.start()
        message = str(failure.value)
        assert str(log_path) in message
        assert "could not bind" in message
        assert "not-in-messages" not in message
        server.start()  # the port is free again
        assert server.psql("SELECT 41 + 1") == "42"
    assert not server.is_running()
    assert not base_dir.exists()
