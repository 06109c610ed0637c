"""Where a slow request spent its time: stack samples folded into a collapsed profile.

The sampler samples the stack of a request's thread while it runs, only once
the request is already slow. A sample is a tuple of frames (file, line,
function), outermost first: no locals, no arguments, nothing of the request's
data. A profile keeps each distinct stack with how often it was seen (the
input of a flame graph), each frame with the share of samples it was on the
stack, and the innermost frame of the application's own code: the line a
person wants to look at first.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = ["Frame", "Profile", "collapse", "stack_of"]

Frame = tuple[str, int, str]  # (file, line, function)
MAX_DEPTH = 64

# Frames of these are not the application's: the standard library, installed packages (the
# server, the framework), and wsgimon itself.
_NOT_THE_APP = tuple(
    sorted(
        {
            os.path.dirname(os.__file__),
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
            os.path.dirname(os.path.abspath(__file__)),
            "<frozen ",
        }
    )
)


def stack_of(frame: FrameType | None) -> tuple[Frame, ...]:
    """The stack from ``frame`` outwards, outermost first, at most MAX_DEPTH frames (innermost kept)."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < MAX_DEPTH:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def is_app_frame(frame: Frame) -> bool:
    return not frame[0].startswith(_NOT_THE_APP) and "site-packages" not in frame[0]


@dataclass
class Profile:
    samples: int
    stacks: list[tuple[tuple[Frame, ...], int]]  # distinct stacks, most seen first
    frames: list[tuple[Frame, float]] = field(default_factory=list)  # frame, share of samples on the stack
    app_frame: Frame | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "app_frame": None if self.app_frame is None else _frame_json(self.app_frame),
            "frames": [{**_frame_json(frame), "share": share} for frame, share in self.frames],
            "stacks": [{"frames": [_frame_json(f) for f in stack], "count": count} for stack, count in self.stacks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        """The inverse of :meth:`to_json`, for a profile kept in a store."""
        app = data.get("app_frame")
        return cls(
            samples=int(data["samples"]),
            stacks=[(tuple(_frame(f) for f in stack["frames"]), int(stack["count"])) for stack in data["stacks"]],
            frames=[(_frame(f), float(f["share"])) for f in data["frames"]],
            app_frame=None if app is None else _frame(app),
        )


def _frame(data: dict[str, Any]) -> Frame:
    return (str(data["file"]), int(data["line"]), str(data["function"]))


def _frame_json(frame: Frame) -> dict[str, object]:
    return {"file": frame[0], "line": frame[1], "function": frame[2]}


def collapse(samples: list[tuple[Frame, ...]], max_stacks: int = 50, max_frames: int = 60) -> Profile:
    """Fold stack samples: distinct stacks with counts, frame shares, the innermost app frame."""
    stacks = Counter(samples)
    on_stack: Counter[Frame] = Counter()
    for stack, count in stacks.items():
        for frame in set(stack):
            on_stack[frame] += count
    total = len(samples)
    frames = [(frame, round(n / total, 4)) for frame, n in on_stack.most_common(max_frames)] if total else []
    app_frames: Counter[Frame] = Counter()  # the innermost app frame of each sample
    for stack, count in stacks.items():
        innermost = next((frame for frame in reversed(stack) if is_app_frame(frame)), None)
        if innermost is not None:
            app_frames[innermost] += count
    app_frame = app_frames.most_common(1)[0][0] if app_frames else None
    return Profile(total, stacks.most_common(max_stacks), frames, app_frame)


def current_frames() -> dict[int, FrameType]:
    """Every thread's current frame (one call: the sampler's only look at other threads)."""
    return sys._current_frames()
