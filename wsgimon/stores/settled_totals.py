"""Totals of settled periods, kept in the process between reads.

A long window is mostly periods that no longer change: a 7-day ``/endpoints`` reads the
hours at its leading edge and six closed days for every endpoint, decoding thousands of
rows to answer what the previous refresh already knew. Those periods' totals per endpoint
are kept here, each with a signature of its rows (how many, their summed count and time,
the latest request) read by the database in one statement: a fold merges requests (the sum
grows), pruning and compaction remove rows (their number falls), so rows that changed never
match a signature taken before. A signature taken before a fold that lands before the rows
are read only makes the next read compute again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator

from ..stats.aggregate import Aggregate
from ..stats.time_windows import DAY, HOUR
from .records import EndpointKey

__all__ = ["MAX_SETTLED_RANGES", "SETTLED_AFTER_S", "SettledTotals", "settled_split"]

#: Ranges kept per process: the hour edge and the closed days of a few windows (each holds one
#: aggregate per endpoint).
MAX_SETTLED_RANGES = 6
#: A range ending this long ago is worth keeping; later ones change with every fold.
SETTLED_AFTER_S = HOUR

Range = tuple[int, int, int]  # (resolution, first, end)


def settled_split(resolution: int, first: int, end: int, now: float) -> Iterator[tuple[Range, bool]]:
    """The range, with whether it is worth keeping; a day range reaching today in two (the days
    before, and today, which changes with every fold)."""
    if resolution == DAY:
        today = int(now // DAY * DAY)
        if first < today < end:
            yield (resolution, first, today), today <= now - SETTLED_AFTER_S
            yield (resolution, today, end), False
            return
    yield (resolution, first, end), resolution >= HOUR and end <= now - SETTLED_AFTER_S


class SettledTotals:
    """A few ranges' totals per endpoint, each valid while its signature is unchanged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[Range, tuple[Hashable, dict[EndpointKey, Aggregate]]] = OrderedDict()

    def get(self, span: Range, signature: Hashable) -> dict[EndpointKey, Aggregate] | None:
        """The totals kept for ``span`` if its rows still have ``signature`` (read them, never change them)."""
        with self._lock:
            kept = self._kept.get(span)
            if kept is None or kept[0] != signature:
                return None
            self._kept.move_to_end(span)
            return kept[1]

    def put(self, span: Range, signature: Hashable, totals: dict[EndpointKey, Aggregate]) -> None:
        with self._lock:
            self._kept[span] = (signature, totals)
            self._kept.move_to_end(span)
            while len(self._kept) > MAX_SETTLED_RANGES:
                self._kept.popitem(last=False)
