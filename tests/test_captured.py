"""Exceptions kept without their frames still read as Python prints them."""

from __future__ import annotations

import gc
import re
import traceback
import weakref

from wsgimon.wsgi.captured import CapturedException


class Holder:
    pass


def chained() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError("bad value") from exc


def during_handling() -> None:
    try:
        chained()
    except ValueError:
        raise RuntimeError("while handling")  # noqa: B904 - the implicit chain is what is tested


def test_formats_a_chained_traceback_like_python() -> None:
    try:
        during_handling()
    except RuntimeError as exc:
        expected = "".join(traceback.format_exception(exc))
        captured = CapturedException(exc)
    # Python adds caret lines under expressions; the rest is the same text.
    expected = "\n".join(line for line in expected.splitlines() if not re.fullmatch(r"\s+[\^~]+", line))
    assert captured.traceback_text().rstrip("\n") == expected
    assert captured.type is RuntimeError and captured.message == "while handling"


def test_keeps_no_frame_and_no_local() -> None:
    holder = Holder()

    def fail(local: Holder) -> None:
        raise ValueError("x")

    try:
        fail(holder)
    except ValueError as exc:
        captured = CapturedException(exc)
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    assert ref() is None, "the captured exception kept a frame's local alive"
    assert "in fail" in captured.traceback_text()
