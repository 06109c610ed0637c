"""A mergeable quantile sketch with bounded relative error (the DDSketch idea).

Latencies are counted in logarithmic buckets whose width guarantees that any
quantile is within ``relative_accuracy`` of the exact value. Two sketches merge
by adding bucket counts, which is what lets worker processes combine their
percentiles exactly as if one process had seen every request.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from itertools import repeat
from operator import truediv

__all__ = ["QuantileSketch"]

_MIN_VALUE = 1e-6


@lru_cache(maxsize=8)
def _gamma_ln(relative_accuracy: float) -> float:
    return math.log((1.0 + relative_accuracy) / (1.0 - relative_accuracy))


class QuantileSketch:
    """Counts values in log-spaced buckets; memory grows with the value range, not the count."""

    __slots__ = ("_bins", "_zero", "count", "_gamma_ln", "relative_accuracy")

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError("relative_accuracy must be between 0 and 1")
        self.relative_accuracy = relative_accuracy
        self._gamma_ln = _gamma_ln(relative_accuracy)
        self._bins: dict[int, int] = {}
        self._zero = 0
        self.count = 0

    def add(self, value: float, weight: int = 1) -> None:
        if value <= _MIN_VALUE:
            self._zero += weight
        else:
            key = math.ceil(math.log(value) / self._gamma_ln)
            bins = self._bins
            bins[key] = bins.get(key, 0) + weight
        self.count += weight

    def add_many(self, values: list[float]) -> None:
        if not values:
            return
        self.count += len(values)
        if min(values) <= _MIN_VALUE:
            positive = [value for value in values if value > _MIN_VALUE]
            self._zero += len(values) - len(positive)
            values = positive
        # Bucket keys computed and counted in C (map and Counter): the fold's main cost.
        keys = Counter(map(math.ceil, map(truediv, map(math.log, values), repeat(self._gamma_ln))))
        bins = self._bins
        get = bins.get
        for key, n in keys.items():
            bins[key] = get(key, 0) + n

    def merge(self, other: QuantileSketch) -> None:
        if other._gamma_ln != self._gamma_ln:
            raise ValueError("cannot merge sketches of different accuracy")
        bins = self._bins
        if not bins:
            bins.update(other._bins)
        else:
            get = bins.get
            for key, n in other._bins.items():
                bins[key] = get(key, 0) + n
        self._zero += other._zero
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), or None when nothing was added."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles in one pass over the buckets."""
        wanted = list(qs)
        for q in wanted:
            if not 0.0 <= q <= 1.0:
                raise ValueError("quantile must be between 0 and 1")
        if self.count == 0:
            return [None] * len(wanted)
        order = sorted(range(len(wanted)), key=wanted.__getitem__)
        results: list[float | None] = [None] * len(wanted)
        ranks = [wanted[i] * (self.count - 1) for i in order]
        position = 0
        seen = self._zero
        while position < len(order) and ranks[position] < seen:
            results[order[position]] = 0.0
            position += 1
        if position == len(order):
            return results
        bins = self._bins
        gamma = math.exp(self._gamma_ln)
        key = 0
        for key in sorted(bins):
            seen += bins[key]
            while position < len(order) and seen > ranks[position]:
                results[order[position]] = self._value(key, gamma)
                position += 1
            if position == len(order):
                return results
        for index in order[position:]:
            results[index] = self._value(key, gamma)
        return results

    def count_above(self, value: float) -> int:
        """How many values are above ``value`` (within the sketch's relative accuracy)."""
        if value <= _MIN_VALUE:
            return self.count - self._zero
        threshold = math.ceil(math.log(value) / self._gamma_ln)
        return sum(n for key, n in self._bins.items() if key > threshold)

    def _value(self, key: int, gamma: float) -> float:
        # The bucket (gamma^(k-1), gamma^k] is represented by the point whose
        # relative distance to both edges is relative_accuracy.
        return 2.0 * math.exp(key * self._gamma_ln) / (1.0 + gamma)

    def to_bytes(self) -> bytes:
        """Compact little-endian form for stores: accuracy (ppm), zero count, keys, counts."""
        bins = self._bins
        n = len(bins)
        accuracy_ppm = round(self.relative_accuracy * 1_000_000)
        return struct.pack(f"<{3 + 2 * n}q", accuracy_ppm, self._zero, n, *bins.keys(), *bins.values())

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        values = array("q")
        values.frombytes(data)
        if sys.byteorder == "big":
            values.byteswap()
        if len(values) < 3 or len(values) != 3 + 2 * values[2]:
            raise ValueError("malformed sketch")
        accuracy = values[0] / 1_000_000
        sketch = cls.__new__(cls)  # readers decode thousands of these: skip the log() of __init__
        sketch.relative_accuracy = accuracy
        sketch._gamma_ln = _gamma_ln(accuracy)
        n = values[2]
        counts = values[3 + n :]
        sketch._zero = values[1]
        sketch._bins = dict(zip(values[3 : 3 + n], counts, strict=True))
        sketch.count = sketch._zero + sum(counts)
        return sketch

    def __len__(self) -> int:
        return len(self._bins)
