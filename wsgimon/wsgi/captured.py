"""Exceptions an app handled itself, kept without their frames.

A framework hook (Flask's ``got_request_exception``, Django's, a user's code)
hands wsgimon an exception while the request is still running. Kept as it is,
the exception's traceback would hold every frame of the call stack, the
server's included, and with them the response body wsgimon follows. A
:class:`CapturedException` keeps the type, the message and, per frame, only
file, line and function: no locals, and no file system access on the request
thread (the standard library's ``TracebackException`` stats every file of the
stack). Source lines are looked up when the traceback is formatted, off the
request thread.
"""

from __future__ import annotations

import builtins
import linecache
from types import FrameType, TracebackType

__all__ = [
    "EXCEPTION_KEY",
    "CapturedException",
    "Chain",
    "Frames",
    "capture",
    "exception_type",
    "qualified_name",
    "want_originals",
    "was_handled",
]

#: The environ key through which any code may hand an exception to wsgimon.
EXCEPTION_KEY = "wsgimon.exception"

_MAX_CHAIN = 5
_MAX_FRAMES = 200
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

# (file, line, function) per frame, outermost first
Frames = list[tuple[str, int, str]]
# (type, message, frames, how it led to the next one out) per exception, innermost cause first
Chain = list[tuple[type[BaseException], str, Frames, str]]


class CapturedException:
    """``handled``: the app's own error handler turned it into its response (a 409, say): the
    request counts by its status, and the exception is still kept with its type and traceback.

    ``original`` is the exception itself, kept only while some middleware of the process has a
    ``fingerprint`` callable (which is handed the real exception) and only until the request's
    record is made; ``fingerprint`` is what that callable said, if anything."""

    __slots__ = ("type", "message", "handled", "original", "fingerprint", "_chain")

    def __init__(self, exc: BaseException, *, handled: bool = False) -> None:
        self.type: type[BaseException] = type(exc)
        self.handled = handled
        self.original: BaseException | None = exc if _originals_wanted else None
        self.fingerprint: str | None = None
        self.message = _safe_str(exc)
        chain: Chain = []
        link = ""
        current: BaseException | None = exc
        seen: set[int] = set()
        while current is not None and id(current) not in seen and len(chain) < _MAX_CHAIN:
            seen.add(id(current))
            message = self.message if current is exc else _safe_str(current)
            chain.append((type(current), message, _frames(current.__traceback__), link))
            if current.__cause__ is not None:
                current, link = current.__cause__, _CAUSE
            elif current.__context__ is not None and not current.__suppress_context__:
                current, link = current.__context__, _CONTEXT
            else:
                current = None
        chain.reverse()
        self._chain = chain

    @classmethod
    def at(cls, exc: BaseException, frame: FrameType | None, *, skip: tuple[str, ...] = ()) -> CapturedException:
        """An exception never raised, placed where a thread's stack stands now (a request a timeout
        stops): its frames are that stack's, without the innermost ones from files under ``skip``
        and the outermost ones from there (the server's loop), as a raised one's would start."""
        captured = cls(exc)
        stack: Frames = []
        while frame is not None and len(stack) < _MAX_FRAMES:
            code = frame.f_code
            stack.append((code.co_filename, frame.f_lineno, code.co_name))
            frame = frame.f_back
        while stack and stack[0][0].startswith(skip):
            del stack[0]
        stack.reverse()
        while stack and (stack[0][0].startswith(skip) or stack[0][0].startswith("<frozen")):
            del stack[0]
        captured._chain = [(type(exc), captured.message, stack, "")]
        return captured

    @property
    def chain(self) -> Chain:
        """(type, message, frames, link) per exception, innermost cause first."""
        return self._chain

    def traceback_text(self) -> str:
        """Formatted as Python prints it; reads source lines, so call it off the request thread."""
        parts: list[str] = []
        for index, (kind, message, frames, _) in enumerate(self._chain):
            if frames:
                parts.append("Traceback (most recent call last):\n")
                for filename, lineno, name in frames:
                    parts.append(f'  File "{filename}", line {lineno}, in {name}\n')
                    line = linecache.getline(filename, lineno).strip()
                    if line:
                        parts.append(f"    {line}\n")
            parts.append(f"{qualified_name(kind)}: {message}\n" if message else f"{qualified_name(kind)}\n")
            if index + 1 < len(self._chain):
                parts.append(self._chain[index][3])
        return "".join(parts)


_originals_wanted = 0


def want_originals(more: int) -> None:
    """A middleware with a ``fingerprint`` callable started (+1) or closed (-1)."""
    global _originals_wanted
    _originals_wanted = max(0, _originals_wanted + more)


def capture(exc: BaseException | CapturedException) -> CapturedException:
    return exc if isinstance(exc, CapturedException) else CapturedException(exc)


def exception_type(exc: BaseException | CapturedException) -> type[BaseException]:
    return exc.type if isinstance(exc, CapturedException) else type(exc)


def was_handled(exc: BaseException | CapturedException) -> bool:
    return isinstance(exc, CapturedException) and exc.handled


def _frames(tb: TracebackType | None) -> Frames:
    frames: Frames = []
    while tb is not None and len(frames) < _MAX_FRAMES:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def qualified_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    if module in ("builtins", "__main__") or getattr(builtins, kind.__qualname__, None) is kind:
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"
