"""The SQLite store's file: what may be opened, created, trusted and restored.

The store holds paths, exception messages and tracebacks. In a directory that
other users can write, another user could pre-create a database for wsgimon to
trust, swap the file while it runs, or point a symlink at one of the victim's
own databases. So, before every open: the path must not be a symlink, an
existing file must belong to this user, have no other hard link and not be
writable by group or others, and a directory that group or others can write
needs the sticky bit. A new file is created ``0600``. A file that others can
read is used, with one warning.

SQLite writes every record through the companions too (``-wal``, ``-shm``,
``-journal``), and opens whatever file is at their paths. A companion planted by
another user, with a descriptor kept open, would receive every record (and a
planted hot ``-journal`` would be rolled into the database); ``chmod`` or
``chown`` later closes no descriptor. So each companion gets the same checks
before every open; one that fails them is removed and made anew (``0600``,
``O_EXCL``), or, when it cannot be removed (another user's file in a sticky
directory), the store is refused. Missing ``-wal`` and ``-shm`` are made by
wsgimon (empty, ``0600``) rather than by SQLite, so there is no moment when another
user could plant them first.

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

__all__ = [
    "COMPANIONS",
    "UnsafeStoreFile",
    "check_companions",
    "check_path",
    "create_private",
    "restore_into",
    "secure_companions",
]

#: The files SQLite keeps beside the database, and writes records into.
COMPANIONS = ("-wal", "-shm", "-journal")
# Made by wsgimon when missing (an empty WAL or shared-memory file is what SQLite starts from);
# a -journal exists only during a rollback-mode write, and an empty one would just linger.
_MADE_IN_ADVANCE = ("-wal", "-shm")


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
    if dir_status.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not dir_status.st_mode & stat.S_ISVTX:
        who = "every user" if dir_status.st_mode & stat.S_IWOTH else "its group"
        raise UnsafeStoreFile(
            f"storage {path!r}: the directory {directory!r} is writable by {who} and has no sticky bit, "
            "so another user could replace the file or its -wal, -shm and -journal; choose a private directory"
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
    if status.st_nlink > 1:
        # Not refused for good: a store being restored has two names for a moment (see restore_into).
        raise StoreUnavailable(
            f"storage {path!r} has {status.st_nlink} hard links; another name could be another file's"
        )
    return status


def _companion_fault(path: str, status: os.stat_result) -> str | None:
    """Why the companion file at ``path`` must not be used, None when it may."""
    if stat.S_ISLNK(status.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    if status.st_uid != os.geteuid():
        return f"belongs to user id {status.st_uid}, not to this process's user ({os.geteuid()})"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by other users (mode {stat.filemode(status.st_mode)})"
    if status.st_nlink > 1:
        return f"has {status.st_nlink} hard links"
    return None


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreUnavailable(f"cannot inspect {path}: {exc.strerror}") from None


def check_companions(path: str) -> None:
    """Raise UnsafeStoreFile when a ``-wal``, ``-shm`` or ``-journal`` of ``path`` must not be used (no change made)."""
    for suffix in COMPANIONS:
        companion = path + suffix
        status = _lstat(companion)
        if status is not None:
            fault = _companion_fault(companion, status)
            if fault is not None:
                raise UnsafeStoreFile(
                    f"storage {path!r}: {companion!r} {fault}; another user could read or write every record through it"
                )


def secure_companions(path: str) -> None:
    """Make the companions of ``path`` safe to open before SQLite opens them.

    A companion that fails the checks is removed and made anew (empty, ``0600``); missing
    ``-wal`` and ``-shm`` are made now. Raises UnsafeStoreFile when a bad companion cannot be
    removed (another user's, in a sticky directory) or was planted again at once.
    """
    for suffix in COMPANIONS:
        companion = path + suffix
        status = _lstat(companion)
        if status is not None:
            fault = _companion_fault(companion, status)
            if fault is None:
                continue
            _remove_unsafe(path, companion, fault)
            logger.warning(
                "wsgimon: %s %s; it was removed and made anew (a descriptor another process kept on it "
                "now points to a file wsgimon never writes)",
                companion,
                fault,
            )
        elif suffix not in _MADE_IN_ADVANCE:
            continue
        if _create_new(companion):
            continue
        # Made meanwhile: by another process of this deployment (fine) or planted again (refused).
        status = _lstat(companion)
        fault = None if status is None else _companion_fault(companion, status)
        if fault is not None:
            raise UnsafeStoreFile(
                f"storage {path!r}: {companion!r} {fault}, and was made again as soon as it was removed: "
                "another user is racing for it; choose a private directory"
            )


def _remove_unsafe(path: str, companion: str, fault: str) -> None:
    try:
        os.unlink(companion)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeStoreFile(
            f"storage {path!r}: {companion!r} {fault}, and cannot be removed ({exc.strerror}): another user "
            "could read or write every record through it; have it removed (by its owner or root) "
            "or choose a private directory"
        ) from None


def _create_new(path: str) -> bool:
    """Create an empty ``0600`` file; False when something is at ``path`` already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)
    return True


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
    _create_new(path)


def restore_into(path: str, source: sqlite3.Connection) -> bool:
    """Copy the still-open ``source`` into a new file at ``path``; False when another file is there already."""
    temporary = f"{path}.restore-{os.getpid()}"
    for suffix in ("", *COMPANIONS):
        try:
            os.remove(temporary + suffix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreUnavailable(f"cannot restore {path}: {temporary + suffix}: {exc.strerror}") from None
    if not _create_new(temporary):
        raise StoreUnavailable(f"cannot restore {path}: {temporary} was made by someone else meanwhile")
    try:
        try:
            secure_companions(temporary)
        except UnsafeStoreFile as exc:
            raise StoreUnavailable(f"cannot restore {path}: {exc}") from None
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
        for suffix in ("", *COMPANIONS):
            with contextlib.suppress(OSError):
                os.remove(temporary + suffix)
