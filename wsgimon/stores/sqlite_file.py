"""The SQLite store's file: what may be opened, created, trusted and restored.

The store holds paths, exception messages and tracebacks. In a directory that
other users can write, another user could pre-create a database for wsgimon to
trust, swap the file while it runs, or point a symlink at one of the victim's
own databases. So, before every open: the path must not be a symlink, an
existing file must belong to this user and not be writable by group or others,
and a world-writable directory needs the sticky bit. A new file is created
``0600`` (SQLite gives ``-wal`` and ``-shm`` the database's mode). A file that
others can read is used, with one warning.

A file deleted while processes still have it open is not lost: the first
process to notice copies its open connection (SQLite's online backup) into a
new file, linked into place atomically so that concurrent restorers cannot
overwrite each other.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat

from ..internal_errors import logger
from .contract import StoreUnavailable

__all__ = ["UnsafeStoreFile", "check_path", "create_private", "restore_into"]


class UnsafeStoreFile(ValueError):
    """The path is not safe to open (symlink, another owner, writable by others)."""


def check_path(path: str) -> os.stat_result | None:
    """The file's status when it is safe to open, None when it does not exist.

    Raises UnsafeStoreFile for what must never be opened and StoreUnavailable
    for what may pass (a directory where the file should be).
    """
    directory = os.path.dirname(path)
    try:
        dir_status = os.stat(directory)
    except OSError as exc:
        raise StoreUnavailable(f"cannot reach the directory of {path}: {exc.strerror}") from None
    if dir_status.st_mode & stat.S_IWOTH and not dir_status.st_mode & stat.S_ISVTX:
        raise UnsafeStoreFile(
            f"storage {path!r}: the directory {directory!r} is writable by every user and has no sticky bit, "
            "so another user could replace the file; choose a private directory"
        )
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreUnavailable(f"cannot inspect {path}: {exc.strerror}") from None
    if stat.S_ISLNK(status.st_mode):
        raise UnsafeStoreFile(f"storage {path!r} is a symbolic link; give the real path of the file")
    if not stat.S_ISREG(status.st_mode):
        raise StoreUnavailable(f"{path} is not a regular file")
    if status.st_uid != os.geteuid():
        raise UnsafeStoreFile(
            f"storage {path!r} belongs to user id {status.st_uid}, not to this process's user ({os.geteuid()}); "
            "another user could have planted it"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeStoreFile(f"storage {path!r} is writable by other users (mode {stat.filemode(status.st_mode)})")
    return status


def warn_if_readable_by_others(path: str, status: os.stat_result) -> None:
    if status.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning(
            "wsgimon: the store %s can be read by other users (mode %s) and holds paths and tracebacks; "
            "consider chmod 600 (its -wal and -shm files get the same mode)",
            path,
            stat.filemode(status.st_mode),
        )


def create_private(path: str) -> None:
    """Create an empty file readable by this user only (no-op when it appeared meanwhile)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)


def restore_into(path: str, source: sqlite3.Connection) -> bool:
    """Copy the still-open ``source`` into a new file at ``path``; False when another file is there already."""
    temporary = f"{path}.restore-{os.getpid()}"
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary + suffix)
    create_private(temporary)
    try:
        target = sqlite3.connect(temporary, isolation_level=None)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"cannot restore {path}: {exc.strerror}") from None
        return True
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot restore {path}: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary + suffix)
