"""The quantile sketch keeps every percentile within 1% of the exact value and merges exactly."""

from __future__ import annotations

import math
import random

import pytest

from wsgimon.stats.sketch import QuantileSketch

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def exact_quantile(sorted_values: list[float], q: float) -> float:
    # The same rank definition as the sketch: the value at index floor(q * (n - 1)).
    return sorted_values[math.floor(q * (len(sorted_values) - 1))]


@pytest.mark.parametrize(
    "distribution",
    [
        lambda rng: rng.lognormvariate(0.0, 1.5),  # latency-like, long tail
        lambda rng: rng.uniform(0.05, 5000.0),
        lambda rng: rng.expovariate(0.01),
    ],
)
def test_percentiles_within_one_percent_on_100k_samples(distribution: object) -> None:
    rng = random.Random(1234)
    values = [distribution(rng) for _ in range(100_000)]  # type: ignore[operator]
    sketch = QuantileSketch(0.01)
    for value in values:
        sketch.add(value)
    values.sort()
    for q in QUANTILES:
        exact = exact_quantile(values, q)
        estimate = sketch.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact) <= 0.01 * exact, (q, exact, estimate)


def test_merged_sketches_equal_one_sketch_of_everything() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(1.0, 1.0) for _ in range(20_000)]
    whole = QuantileSketch()
    parts = [QuantileSketch() for _ in range(4)]
    for i, value in enumerate(values):
        whole.add(value)
        parts[i % 4].add(value)
    merged = QuantileSketch()
    for part in parts:
        merged.merge(part)
    assert merged.count == whole.count == len(values)
    assert merged.quantiles(QUANTILES) == whole.quantiles(QUANTILES)


def test_memory_is_bounded_by_value_range_not_count() -> None:
    sketch = QuantileSketch()
    rng = random.Random(3)
    for _ in range(200_000):
        sketch.add(rng.uniform(0.1, 60_000.0))
    # 0.1 ms .. 60 s at 1% accuracy spans about 670 buckets.
    assert len(sketch) < 700


def test_empty_and_invalid() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    with pytest.raises(ValueError):
        sketch.quantile(1.5)
    with pytest.raises(ValueError):
        QuantileSketch(0.0)
    with pytest.raises(ValueError):
        sketch.merge(QuantileSketch(0.05))


def test_round_trip_through_bytes_keeps_everything() -> None:
    sketch = QuantileSketch()
    for value in (0.0, 0.002, 1.0, 10.0, 250.0, 250.0, 99_999.0):
        sketch.add(value)
    copy = QuantileSketch.from_bytes(sketch.to_bytes())
    assert copy.quantiles(QUANTILES) == sketch.quantiles(QUANTILES)
    assert copy.count == sketch.count and copy.relative_accuracy == sketch.relative_accuracy
    with pytest.raises(ValueError):
        QuantileSketch.from_bytes(b"\x00" * 8)


def test_adding_many_at_once_equals_adding_one_by_one() -> None:
    rng = random.Random(9)
    values = [0.0] + [rng.lognormvariate(1.0, 2.0) for _ in range(5000)]
    one_by_one, at_once = QuantileSketch(), QuantileSketch()
    for value in values:
        one_by_one.add(value)
    at_once.add_many(values)
    assert at_once.to_bytes() == one_by_one.to_bytes()
    assert at_once.quantiles(QUANTILES) == one_by_one.quantiles(QUANTILES)
    assert at_once.count == one_by_one.count == len(values)
