"""The store file against another user on the same host: modes, symlinks, planted and swapped files.

The other user is real: ``nobody``, reached by a subprocess that drops root after its imports.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import wsgi_apps
from tests.helpers import call, get_json
from tests.servers import ROOT
from wsgimon import MonitorMiddleware

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

_AS_NOBODY = textwrap.dedent(
    """
    import os, pwd, sys
    import encodings.idna, wsgimon.api.app, wsgimon.stores.sqlite  # imported as root
    from wsgimon import MonitorMiddleware
    from tests import wsgi_apps
    from tests.helpers import call

    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="sqlite:///" + sys.argv[1])
    call(monitor, "/planted-by-nobody")
    monitor.close()
    """
)


def as_nobody(store: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    subprocess.run([sys.executable, "-c", _AS_NOBODY, str(store)], env=env, check=True, timeout=60)


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """Like /tmp: every user may create files, the sticky bit keeps them from touching others'."""
    directory = Path(tempfile.mkdtemp(prefix="wsgimon-shared-", dir="/tmp"))
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{tmp_path}/store.sqlite3")
        call(monitor, "/a")
        monitor.flush()
    finally:
        os.umask(previous)
    for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    monitor.close()


def test_an_existing_store_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.sqlite3"
    MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}").close()
    path.chmod(0o644)
    MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{path}").close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "wsgimon"]
    assert any("can be read by other users" in message for message in warnings)


def test_a_symlink_at_the_path_is_refused_and_its_target_left_as_it_was(tmp_path: Path) -> None:
    victim = tmp_path / "app.db"
    conn = sqlite3.connect(victim)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = victim.read_bytes()
    link = tmp_path / "wsgimon.sqlite3"
    link.symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{link}")
    assert victim.read_bytes() == before, "the target was not converted to WAL or touched"


def test_a_store_planted_by_another_user_is_refused(shared_directory: Path) -> None:
    store = shared_directory / "wsgimon.sqlite3"
    as_nobody(store)
    assert store.stat().st_uid != os.geteuid()
    with pytest.raises(ValueError, match="belongs to user id"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{store}")


def test_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(ValueError, match="no sticky bit"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{directory}/store.sqlite3")


@pytest.mark.internal_errors
def test_a_file_swapped_in_while_running_is_never_written(shared_directory: Path) -> None:
    store = shared_directory / "wsgimon.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{store}", flush_interval=60)
    call(monitor, "/mine")
    monitor.flush()
    # Replaced by a valid wsgimon store of another user (the swap an attacker would make).
    planted = shared_directory / "planted"
    planted.mkdir()
    shutil.chown(planted, "nobody")
    as_nobody(planted / "wsgimon.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    os.rename(planted / "wsgimon.sqlite3", store)
    planted_bytes = store.read_bytes()
    call(monitor, "/secret-path")
    monitor.flush()
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["store"]["status"] == "degraded"
    assert "belongs to user id" in health["checks"]["store"]["detail"]
    assert store.read_bytes() == planted_bytes and b"secret-path" not in store.read_bytes()
    assert monitor.recorder.unsent_requests == 1
    monitor.close()


# -- the companions: <store>-wal, -shm and -journal -----------------------------------------------

_PLANT_AND_HOLD = textwrap.dedent(
    """
    import os, pwd, sys
    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    os.umask(0)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    print("planted", flush=True)
    sys.stdin.readline()  # until the victim has run
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    print(data.hex(), flush=True)
    """
)


class Planter:
    """Another user's process that plants a world-writable file and keeps a descriptor on it."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PLANT_AND_HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "planted"
        status = path.lstat()
        assert status.st_uid != os.geteuid() and stat.S_IMODE(status.st_mode) == 0o666

    def received(self) -> bytes:
        """Every byte written into the planted inode, read through the kept descriptor."""
        out, _ = self.process.communicate("done\n", timeout=30)
        assert self.process.returncode == 0
        return bytes.fromhex(out.strip())


_VICTIM = textwrap.dedent(
    """
    import os, sys
    import encodings.idna, wsgimon.api.app, wsgimon.stores.sqlite  # imported as root
    from wsgimon import MonitorMiddleware
    from tests import wsgi_apps
    from tests.helpers import call

    os.setgid(4242)
    os.setuid(4242)  # a user of its own: neither root nor the planter
    try:
        monitor = MonitorMiddleware(wsgi_apps.list_app, storage="sqlite:///" + sys.argv[1])
    except ValueError as exc:
        print("refused:", exc)
        raise SystemExit(0)
    call(monitor, "/secret-of-the-victim")
    monitor.close()
    print("opened")
    """
)


def as_victim(store: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    done = subprocess.run(
        [sys.executable, "-c", _VICTIM, str(store)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def raising_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    raise RuntimeError("card 4111-1111 declined for /secret-path")


@pytest.mark.internal_errors
@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_planted_companion_is_replaced_and_its_kept_descriptor_receives_nothing(
    shared_directory: Path, suffix: str
) -> None:
    store = shared_directory / "wsgimon-x.sqlite3"
    planter = Planter(Path(f"{store}{suffix}"))
    try:
        monitor = MonitorMiddleware(raising_app, storage=f"sqlite:///{store}", flush_interval=60)
        for _ in range(3):
            call(monitor, "/secret-path")
        monitor.flush()
        rows = get_json(monitor, "/monitoring/endpoints?window=all")["endpoints"]
        assert sum(row["requests"] for row in rows) == 3
        companion = Path(f"{store}{suffix}")
        if companion.exists():
            status = companion.lstat()
            assert status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) == 0o600
        monitor.close()
    finally:
        received = planter.received()
    assert received == b"", f"{len(received)} bytes landed in the planted {suffix}"
    assert b"secret-path" in store.read_bytes(), "the records went to the store itself"


def test_a_planted_wal_that_cannot_be_removed_refuses_the_store(shared_directory: Path) -> None:
    """Not root: another user's file in a sticky directory cannot be removed, so the store is refused."""
    store = shared_directory / "wsgimon-x.sqlite3"
    planter = Planter(Path(f"{store}-wal"))
    try:
        out = as_victim(store)
    finally:
        received = planter.received()
    assert out.startswith("refused:") and "-wal" in out and "cannot be removed" in out, out
    assert received == b""
    assert not store.exists() or b"secret-of-the-victim" not in store.read_bytes()


def test_the_victim_opens_the_store_when_nothing_is_planted(shared_directory: Path) -> None:
    assert as_victim(shared_directory / "wsgimon-x.sqlite3").strip() == "opened"


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_a_linked_companion_is_replaced_and_the_other_file_left_as_it_was(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "other-app.db"
    victim.write_bytes(b"the other application's data")
    victim.chmod(0o600)
    store = tmp_path / "store.sqlite3"
    MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{store}").close()  # an existing store, in WAL mode
    wal = Path(f"{store}-wal")
    assert not wal.exists()
    if kind == "symlink":
        wal.symlink_to(victim)
    else:
        os.link(victim, wal)
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{store}", flush_interval=60)
    call(monitor, "/a")
    monitor.flush()
    assert not wal.is_symlink() and wal.stat().st_ino != victim.stat().st_ino
    monitor.close()
    assert victim.read_bytes() == b"the other application's data" and victim.stat().st_nlink == 1


def test_a_group_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "group"
    directory.mkdir()
    directory.chmod(0o770)
    with pytest.raises(ValueError, match="writable by its group and has no sticky bit"):
        MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{directory}/store.sqlite3")


def test_health_says_when_a_companion_is_unsafe(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage=f"sqlite:///{store}", flush_interval=60)
    journal = Path(f"{store}-journal")
    journal.write_bytes(b"")
    journal.chmod(0o666)
    health = get_json(monitor, "/monitoring/health")
    assert health["checks"]["store"]["status"] == "degraded"
    assert "-journal" in health["checks"]["store"]["detail"]
    journal.unlink()
    monitor.close()
