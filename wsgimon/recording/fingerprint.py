"""Which failures are the same bug: a fingerprint from where the code broke, not from where the request entered.

For each exception of a chain (``__cause__``, ``__context__``) the fingerprint takes
its type and the innermost frame of the application's own code: the module, the
function and the source line with its white space folded. Not the line number, so an
edit elsewhere in the file keeps the issue; not the caller, so one helper failing
under ten routes is one issue; not the message, so ``bad id 41`` and ``bad id 42``
are one issue. Code is the application's when it is not the standard library, not an
installed package (``site-packages``, ``dist-packages``) and not wsgimon.

An exception with no frame of the application's code anywhere in its chain is told
apart by its type and its message, with numbers, hex, UUIDs and quoted strings
replaced by placeholders. A 5xx answered without an exception is its endpoint and
status. A user's ``fingerprint`` callable may say better: its string is used as is.

All of it runs off the request thread, once per distinct stack shape: the result is
cached by the shape (frames with their line numbers), and source lines come from
:mod:`linecache`.
"""

from __future__ import annotations

import hashlib
import linecache
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache

from ..wsgi.captured import CapturedException, qualified_name

__all__ = [
    "AppFrame",
    "Fingerprinter",
    "Grouping",
    "is_in_app",
    "normalize_message",
    "status_grouping",
    "title_of",
]

_ID_CHARS = 12
_MAX_CACHED = 4096
_MAX_TITLE = 200
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INSTALLED = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class AppFrame:
    """A frame of the application's own code: what the dashboard highlights in a traceback."""

    file: str
    line: int
    function: str
    module: str
    source: str


@dataclass(frozen=True)
class Grouping:
    """An issue's identity: ``fingerprint`` (hex), its short ``id``, and the frame it points at."""

    fingerprint: str
    kind: str  # "stack", "message", "status" or "custom"
    culprit: AppFrame | None = None

    @property
    def id(self) -> str:
        return self.fingerprint[:_ID_CHARS]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def status_grouping(status: int, endpoint: str, method: str) -> Grouping:
    """A 5xx with no exception: its endpoint and status are all there is to tell it by."""
    return Grouping(_digest(f"status\n{status}\n{method} {endpoint}"), "status")


class Fingerprinter:
    """Fingerprints of failures, cached by what decides them; use from one thread at a time.

    The cache key is, per exception of the chain, its type and the file, line and function of
    its innermost frame of the app's code: found by walking from the innermost frame out, which
    stops after the few frames of the library that raised. A failure already seen costs that
    walk and one lookup; the fingerprint itself (source lines read) is made once per key.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[object, ...], Grouping | str] = {}

    def group(self, exc: BaseException | CapturedException) -> Grouping:
        if isinstance(exc, CapturedException) and exc.fingerprint is not None:
            return Grouping(_digest("custom\n" + exc.fingerprint), "custom")
        key = _key(exc)
        known = self._by_key.get(key)
        if known is None:
            if len(self._by_key) >= _MAX_CACHED:
                self._by_key.clear()
            captured = exc if isinstance(exc, CapturedException) else CapturedException(exc)
            known = self._by_key[key] = _from_stack(captured)
        if isinstance(known, Grouping):
            return known
        # No frame of the app's code: the types (``known``) and the messages, normalised.
        captured = exc if isinstance(exc, CapturedException) else CapturedException(exc)
        messages = "\n".join(normalize_message(message) for _kind, message, _frames, _link in captured.chain)
        return Grouping(_digest(f"message\n{known}\n{messages}"), "message")


_MAX_CHAIN = 5


def _key(exc: BaseException | CapturedException) -> tuple[object, ...]:
    """Per exception of the chain (innermost cause first): its type and its innermost frame of the app."""
    key: list[object] = []
    if isinstance(exc, CapturedException):
        for kind, _message, frames, _link in exc.chain:
            key.append(kind)
            key.append(next((frame for frame in reversed(frames) if is_in_app(frame[0])), None))
        return tuple(key)
    current: BaseException | None = exc
    seen: list[BaseException] = []
    while current is not None and len(seen) < _MAX_CHAIN and all(current is not other for other in seen):
        seen.append(current)
        found = None
        tb = current.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if is_in_app(code.co_filename):
                found = (code.co_filename, tb.tb_lineno, code.co_name)
            tb = tb.tb_next
        key.append(found)
        key.append(type(current))
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    key.reverse()  # innermost cause first, as a captured chain
    return tuple(key)


def _from_stack(exc: CapturedException) -> Grouping | str:
    """The stack grouping, or (no frame of the app's code) the chain's types to add the messages to."""
    parts: list[str] = []
    culprit: AppFrame | None = None
    for kind, _message, frames, _link in exc.chain:
        parts.append(qualified_name(kind))
        frame = innermost_app_frame(frames)
        if frame is not None:
            parts.append(f"{frame.module}:{frame.function}:{frame.source}")
            culprit = culprit or frame
    if culprit is None:
        return "\n".join(parts)
    # The chain is innermost cause first: the culprit shown is the outermost exception's.
    culprit = innermost_app_frame(exc.chain[-1][2]) or culprit
    return Grouping(_digest("stack\n" + "\n".join(parts)), "stack", culprit)


def innermost_app_frame(frames: list[tuple[str, int, str]]) -> AppFrame | None:
    for filename, lineno, function in reversed(frames):
        if is_in_app(filename):
            return AppFrame(filename, lineno, function, module_name(filename), source_line(filename, lineno))
    return None


def source_line(filename: str, lineno: int) -> str:
    """The line as written, white space folded: indentation and spacing edits keep the fingerprint."""
    return " ".join(linecache.getline(filename, lineno).split())


@lru_cache(maxsize=2048)
def is_in_app(filename: str) -> bool:
    """Whether a frame's file is the application's own code."""
    if not filename or filename.startswith("<"):
        return False  # <frozen ...>, <string>, <stdin>: no file of the app
    path = os.path.normcase(os.path.abspath(filename))
    parts = path.split(os.sep)
    if any(name in parts for name in _INSTALLED):
        return False
    return not path.startswith(_library_roots())


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    roots = {_PACKAGE_DIR}
    paths = sysconfig.get_paths()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            roots.add(paths[name])
    return tuple(os.path.normcase(os.path.abspath(root)) + os.sep for root in roots)


@lru_cache(maxsize=2048)
def module_name(filename: str) -> str:
    """The dotted module a file is imported as, from the longest ``sys.path`` entry holding it.

    Not the path itself: each deploy into a new directory (``/srv/releases/1234/``) would
    otherwise make every issue new.
    """
    path = os.path.abspath(filename)
    best = ""
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir)
        if path.startswith(root + os.sep) and len(root) > len(best):
            best = root
    relative = path[len(best) + 1 :] if best else os.path.basename(path)
    stem = os.path.splitext(relative)[0]
    dotted = stem.replace(os.sep, ".")
    return dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted


# Most specific first: a UUID holds hex and digits, a quoted string may hold anything.
_PLACEHOLDERS = (
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])|\d+"), "<num>"),
)
_MAX_NORMALIZED_INPUT = 2000


@lru_cache(maxsize=1024)
def normalize_message(message: str) -> str:
    """What varies between occurrences of one failure (ids, numbers, quoted values) as placeholders."""
    text = " ".join(message[:_MAX_NORMALIZED_INPUT].split())
    for pattern, placeholder in _PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return text


def title_of(type_name: str, message: str) -> str:
    """The message's first line, normalised (what stays the same across occurrences), bounded."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    text = normalize_message(first) if first else type_name
    return text if len(text) <= _MAX_TITLE else text[: _MAX_TITLE - 1] + "…"
