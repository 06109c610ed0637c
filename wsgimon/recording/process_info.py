"""Resource use of the serving process, read cheaply from the OS."""

from __future__ import annotations

import os
import resource
import sys
import threading

__all__ = ["pid_exists", "process_info"]


def process_info() -> dict[str, int | float]:
    times = os.times()
    return {
        "pid": os.getpid(),
        "rss_bytes": _rss_bytes(),
        "cpu_s": round(times.user + times.system, 3),
        "threads": threading.active_count(),
    }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes; without /proc this is the peak, the best available.
        return peak if sys.platform == "darwin" else peak * 1024


def pid_exists(pid: int) -> bool:
    """Whether a process of this host runs (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
