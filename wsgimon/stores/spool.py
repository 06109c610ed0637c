"""Statistics a process could not write, kept in a private file until a process of the host can.

A worker that exits (HUP, SIGTERM, ``max_requests``) or is killed while the store is locked or
down would otherwise take its unwritten requests with it. So each flush that fails writes what
the process holds (once an interval, off the request thread, the whole unsent batch replacing
the last) to ``<pid>-<id>.batch`` in a spool directory; a write that succeeds removes it. A
process that can write takes the files of processes that are gone (claimed by renaming, so two
never both take one), appends them to the store's journal and removes them.

The directory is private (``0700``, this user's, no symlink) and every file is opened without
following links, checked to be this user's regular file and bounded in size: what is read back
goes into the store, so no other user may plant or read it. The contents are JSON, never pickle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["MAX_SPOOL_BYTES", "Spool", "SpooledBatch", "UnsafeSpool"]

#: a batch larger than this is not kept (counted as lost instead)
MAX_SPOOL_BYTES = 64 * 1024 * 1024
_SUFFIX = ".batch"
_CLAIMED = ".claimed-"


class UnsafeSpool(ValueError):
    """The spool directory or a file in it is not this user's private one."""


@dataclass(frozen=True)
class SpooledBatch:
    """One journal row kept aside: who wrote it, its release and times, the encoded batch."""

    writer: str
    release: str | None
    started: float
    written: float
    payload: bytes
    requests: int


class Spool:
    """One spool directory (created on first use); files named by process id, then a token."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)

    def _ensure(self) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.directory, 0o700)
        status = os.lstat(self.directory)
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
            raise UnsafeSpool(f"{self.directory} is not a private directory of this user (0700, no link)")

    def keep(self, name: str, batch: SpooledBatch) -> int:
        """Replace this process's file with ``batch``; returns its size."""
        document = json.dumps(
            {
                "writer": batch.writer,
                "release": batch.release,
                "started": batch.started,
                "written": batch.written,
                "requests": batch.requests,
                "payload": base64.b64encode(batch.payload).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode()
        if len(document) > MAX_SPOOL_BYTES:
            raise UnsafeSpool(f"a batch of {len(document)} bytes is over the spool's bound of {MAX_SPOOL_BYTES}")
        self._ensure()
        final = os.path.join(self.directory, name + _SUFFIX)
        partial = f"{final}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return len(document)

    def discard(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name + _SUFFIX))

    def orphans(self, alive: Callable[[int], bool]) -> Iterator[str]:
        """Files of processes that are gone, and files claimed by processes that died before finishing.

        Only gone processes: a live one still holds what its file holds and will write it
        itself (taking its file too would count those requests twice).
        """
        if not os.path.isdir(self.directory):
            return  # made by the first batch kept, not before
        try:
            self._ensure()
            names = os.listdir(self.directory)
        except (OSError, UnsafeSpool):
            return
        own = os.getpid()
        for name in sorted(names):
            if _CLAIMED in name:
                owner = name.rsplit(_CLAIMED, 1)[1]
            elif name.endswith(_SUFFIX):
                owner = name.split("-", 1)[0]
            else:
                continue
            if owner.isdigit() and int(owner) != own and not alive(int(owner)):
                yield os.path.join(self.directory, name)

    def claim(self, path: str) -> str | None:
        """Take a file for this process (None when another took it first)."""
        base = path.rsplit(_CLAIMED, 1)[0]
        claimed = f"{base}{_CLAIMED}{os.getpid()}"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def read(self, path: str) -> SpooledBatch:
        """A claimed file's batch; :class:`UnsafeSpool` when it is not ours or not one."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
                raise UnsafeSpool(f"{path} is not a private file of this user")
            if status.st_size > MAX_SPOOL_BYTES:
                raise UnsafeSpool(f"{path} is over the spool's bound")
            data = file.read(MAX_SPOOL_BYTES + 1)
        try:
            document = json.loads(data)
            return SpooledBatch(
                str(document["writer"]),
                None if document["release"] is None else str(document["release"]),
                float(document["started"]),
                float(document["written"]),
                base64.b64decode(document["payload"], validate=True),
                int(document["requests"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsafeSpool(f"{path} is not a spooled batch ({type(exc).__name__})") from None

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def release(self, path: str) -> None:
        """Give a claimed file back (the store refused it): another process takes it later."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, path.rsplit(_CLAIMED, 1)[0])


def _is_ours(path: str) -> bool:
    return os.lstat(path).st_uid == os.geteuid()
