"""The command line against another user: the preview file it writes, and the token it prints."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ROOT
from wsgimon.cli import main
from wsgimon.stores.sqlite import SQLiteStore

HTML_START = "<!doctype html"


@pytest.fixture(autouse=True)
def no_wsgimon_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WSGIMON_"):
            monkeypatch.delenv(name)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store.sqlite3"
    SQLiteStore(str(path), recent_requests=10).close()
    monkeypatch.setenv("WSGIMON_STORAGE", f"sqlite:///{path}")
    return path


def preview(*args: str) -> int:
    return main(["report", "--preview", *args])


# -- report --preview FILE ------------------------------------------------------------------------


def test_the_preview_is_a_new_file_readable_by_its_owner_only(store: Path, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert preview(str(tmp_path / "report.html")) == 0
    finally:
        os.umask(previous)
    written = tmp_path / "report.html"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert written.read_text().lower().lstrip().startswith(HTML_START)


def test_an_existing_file_is_refused_without_force(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert preview(str(existing)) == 2
    assert existing.read_text() == "keep me"
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("force", [False, True])
def test_a_symlink_is_refused_and_its_target_left_as_it_was(store: Path, tmp_path: Path, force: bool) -> None:
    target = tmp_path / "authorized_keys"
    target.write_text("ssh-ed25519 AAAA... me")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    assert preview(str(link), *(["--force"] if force else [])) == 2
    assert target.read_text() == "ssh-ed25519 AAAA... me" and link.is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_a_dangling_symlink_creates_nothing_at_its_target(store: Path, tmp_path: Path, force: bool) -> None:
    link = tmp_path / "report.html"
    link.symlink_to(tmp_path / "created-through-the-link")
    assert preview(str(link), *(["--force"] if force else [])) == 2
    assert not (tmp_path / "created-through-the-link").exists()


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="wsgimon-shared-", dir="/tmp"))
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_file_is_not_replaced_even_with_force(
    store: Path, shared_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = shared_directory / "report.html"
    theirs.write_text("theirs")
    theirs.chmod(0o666)
    shutil.chown(theirs, "nobody")
    before = theirs.stat()
    assert preview(str(theirs), "--force") == 2
    after = theirs.stat()
    assert theirs.read_text() == "theirs" and (after.st_ino, after.st_uid) == (before.st_ino, before.st_uid)
    assert "belongs to user id" in capsys.readouterr().err


def test_force_replaces_a_file_of_ours_with_a_new_private_one(store: Path, tmp_path: Path) -> None:
    old = tmp_path / "report.html"
    old.write_text("last week's")
    old.chmod(0o644)
    with open(old, encoding="utf-8") as kept:  # someone who opened the old file
        assert preview(str(old), "--force") == 0
        assert kept.read() == "last week's"
    assert old.read_text().lower().lstrip().startswith(HTML_START)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_force_goes_with_preview_only(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--send", "--force"]) == 2
    assert "--force goes with --preview" in capsys.readouterr().err


# -- token ----------------------------------------------------------------------------------------


def test_the_token_is_the_same_every_time_and_in_every_process(
    store: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{store}"
    assert main(["token", "--storage", url]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["token", "--storage", url]) == 0
    assert capsys.readouterr().out.strip() == first
    assert len(first) >= 43 and first.isascii() and " " not in first
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGIMON_")}
    env.update(PYTHONPATH=str(ROOT), WSGIMON_STORAGE=url)
    other = subprocess.run(
        [sys.executable, "-m", "wsgimon", "token"], env=env, capture_output=True, text=True, timeout=60
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == first and first not in other.stderr
    assert not any(first in record.getMessage() for record in caplog.records), "the token was logged"
    opened = SQLiteStore(str(store), recent_requests=10)
    try:
        assert opened.access_token(lambda: "never-made-here-0123456789") == first  # what the app reads
    finally:
        opened.close()


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_a_memory_store_has_no_token_to_print(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "argument":
        code = main(["token", "--storage", "memory://"])
    else:
        monkeypatch.setenv("WSGIMON_STORAGE", "memory://")
        code = main(["token"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "memory://" in err and "WSGIMON_TOKEN" in err and len(err.strip().splitlines()) == 1


def test_no_token_is_made_for_a_store_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--storage", f"sqlite:///{tmp_path}/typo.sqlite3"]) == 2
    assert "no store at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite3").exists()
