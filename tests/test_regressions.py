"""Comparing releases: a real slowdown or a real rise in failures is reported, noise never is.

The aggregates are built the way the recorder builds them, from request durations and
statuses through ``Aggregate.add_many``, so the p95 comes from the same sketch the
dashboard shows.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgimon.stats.aggregate import Aggregate
from wsgimon.stats.releases import Regression, find_regressions, new_error_types
from wsgimon.stores.records import ALL

WALL = 1_700_000_000.0
CHECKOUT = ("/checkout", "POST")
SEARCH = ("/search", "GET")
PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=60)


def latencies(n: int, median_ms: float, seed: int) -> list[float]:
    """Latency-like durations: log-normal around ``median_ms`` with a long right tail."""
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(median_ms), 0.5) for _ in range(n)]


def served(
    durations: list[float], *, failures: int = 0, client_errors: int = 0, error_type: str = "RuntimeError"
) -> Aggregate:
    """An aggregate of these requests: the first ones answered 200, then ``failures`` 500s, then 404s."""
    agg = Aggregate()
    ok = len(durations) - failures - client_errors
    groups = (
        (durations[:ok], 200, False, False, None),
        (durations[ok : ok + failures], 500, True, False, error_type),
        (durations[ok + failures :], 404, False, True, "Not Found"),
    )
    for part, status, is_error, is_client_error, kind in groups:
        if part:
            agg.add_many(part, status, is_error, is_client_error, kind, WALL)
    return agg


def _failed(rng: random.Random, n: int, chance: float) -> int:
    return sum(rng.random() < chance for _ in range(n))


def test_an_endpoint_twenty_times_slower_is_a_p95_regression() -> None:
    before = {SEARCH: served(latencies(1000, 20.0, seed=1))}
    after = {SEARCH: served([d * 20 for d in latencies(1000, 20.0, seed=2)])}
    [regression] = find_regressions(before, after)
    assert (regression.endpoint, regression.method, regression.metric) == ("/search", "GET", "p95")
    assert (regression.requests_before, regression.requests_after) == (1000, 1000)
    assert regression.before == before[SEARCH].latency_ms()["p95"]
    assert regression.after == after[SEARCH].latency_ms()["p95"]
    assert 15 < regression.ratio < 25


def test_the_same_behaviour_on_both_sides_is_no_regression() -> None:
    # Fresh samples of the same latencies and the same 1 % failure chance: only noise differs.
    rng = random.Random(5)
    before, after = {}, {}
    for i, median in enumerate((3.0, 20.0, 150.0, 900.0)):
        key = (f"/e{i}", "GET")
        before[key] = served(latencies(2000, median, seed=10 + i), failures=_failed(rng, 2000, 0.01))
        after[key] = served(latencies(2000, median, seed=20 + i), failures=_failed(rng, 2000, 0.01))
    assert find_regressions(before, after) == []


def test_too_few_requests_on_either_side_say_nothing() -> None:
    slow = served([d * 20 for d in latencies(199, 20.0, seed=2)], failures=100)
    fast = served(latencies(1000, 20.0, seed=1))
    assert find_regressions({SEARCH: fast}, {SEARCH: slow}) == []
    assert find_regressions({SEARCH: served(latencies(199, 20.0, seed=1))}, {SEARCH: served([200.0] * 1000)}) == []
    assert find_regressions({SEARCH: fast}, {SEARCH: slow}, min_requests=150) != []


def test_a_p95_change_below_the_margin_or_the_ratio_is_no_regression() -> None:
    doubled_but_tiny = find_regressions(
        {SEARCH: served(latencies(1000, 2.0, seed=1))}, {SEARCH: served(latencies(1000, 4.0, seed=2))}
    )
    assert doubled_but_tiny == []  # 2 ms -> 4 ms: twice as slow, a few ms nobody feels
    slightly_slower = find_regressions(
        {SEARCH: served(latencies(1000, 1000.0, seed=1))}, {SEARCH: served(latencies(1000, 1100.0, seed=1))}
    )
    assert slightly_slower == []  # +10 %, well over the margin but under the 1.25 ratio
    tighter = find_regressions(
        {SEARCH: served(latencies(1000, 2.0, seed=1))},
        {SEARCH: served(latencies(1000, 4.0, seed=2))},
        p95_margin_ms=1.0,
    )
    assert [r.metric for r in tighter] == ["p95"]


def test_error_rate_from_1_to_5_percent_over_1000_requests_is_a_regression() -> None:
    before = {CHECKOUT: served(latencies(1000, 50.0, seed=1), failures=10)}
    after = {CHECKOUT: served(latencies(1000, 50.0, seed=2), failures=50)}
    [regression] = find_regressions(before, after)
    assert regression == Regression("/checkout", "POST", "error_rate", 0.01, 0.05, 1000, 1000)
    assert regression.ratio == pytest.approx(5.0)


def test_error_rate_from_1_to_1_3_percent_over_300_requests_is_noise() -> None:
    before = {CHECKOUT: served(latencies(300, 50.0, seed=1), failures=3)}
    after = {CHECKOUT: served(latencies(300, 50.0, seed=2), failures=4)}
    assert find_regressions(before, after) == []


def test_the_error_test_is_the_one_sided_pooled_z_test() -> None:
    # 3 % -> 5 % of 1000: pooled one-sided p = 0.01124 (unpooled 0.01115, two-sided 0.0225).
    before = {CHECKOUT: served(latencies(1000, 50.0, seed=1), failures=30)}
    after = {CHECKOUT: served(latencies(1000, 50.0, seed=2), failures=50)}
    assert find_regressions(before, after) == []
    assert [r.metric for r in find_regressions(before, after, p_value=0.0113)] == ["error_rate"]
    assert find_regressions(before, after, p_value=0.0112) == []


def test_client_errors_are_not_failures_of_the_release() -> None:
    before = {SEARCH: served(latencies(1000, 20.0, seed=1), client_errors=10)}
    after = {SEARCH: served(latencies(1000, 20.0, seed=2), client_errors=300)}
    assert find_regressions(before, after) == []


def test_an_endpoint_that_never_failed_and_now_does_is_infinitely_worse() -> None:
    before = {CHECKOUT: served(latencies(1000, 50.0, seed=1))}
    after = {CHECKOUT: served(latencies(1000, 50.0, seed=2), failures=20)}
    [regression] = find_regressions(before, after)
    assert (regression.metric, regression.before, regression.after) == ("error_rate", 0.0, 0.02)
    assert regression.ratio == math.inf


def test_nothing_varies_when_both_sides_never_or_always_fail() -> None:
    for failures in (0, 1000):
        before = {CHECKOUT: served(latencies(1000, 50.0, seed=1), failures=failures)}
        after = {CHECKOUT: served(latencies(1000, 50.0, seed=2), failures=failures)}
        assert find_regressions(before, after) == []


def test_a_significant_but_negligible_rise_on_huge_traffic_is_no_regression() -> None:
    # 1.00 % -> 1.08 % of 500 000 requests: p = 0.00004, yet under one more failure per 1000 requests.
    before = {SEARCH: served([20.0] * 500_000, failures=5000)}
    after = {SEARCH: served([20.0] * 500_000, failures=5400)}
    assert find_regressions(before, after) == []
    [regression] = find_regressions(before, after, error_rate_margin=0.0)
    assert (regression.before, regression.after) == (0.01, 0.0108)


def test_improvements_are_not_regressions() -> None:
    before = {CHECKOUT: served([d * 20 for d in latencies(1000, 50.0, seed=1)], failures=50)}
    after = {CHECKOUT: served(latencies(1000, 50.0, seed=2), failures=10)}
    assert find_regressions(before, after) == []
    assert len(find_regressions(after, before)) == 2


def test_the_all_endpoints_key_is_left_out_unless_asked_for() -> None:
    before = {ALL: served(latencies(1000, 20.0, seed=1))}
    after = {ALL: served(latencies(1000, 400.0, seed=2))}
    assert find_regressions(before, after) == []
    [regression] = find_regressions(before, after, include_all=True)
    assert (regression.endpoint, regression.method) == ALL


def test_an_endpoint_on_one_side_only_has_nothing_to_compare_with() -> None:
    before = {SEARCH: served(latencies(1000, 20.0, seed=1))}
    after = {CHECKOUT: served(latencies(1000, 900.0, seed=2), failures=500)}
    assert find_regressions(before, after) == []


def test_worst_first_failures_before_slowness_and_always_in_the_same_order() -> None:
    base = latencies(1000, 20.0, seed=1)
    before = {
        ("/a", "GET"): served(base, failures=10),
        ("/b", "GET"): served(base, failures=10),
        ("/c", "GET"): served(base),
        ("/d", "GET"): served(base),
        ("/e", "GET"): served(base),
    }
    after = {
        ("/a", "GET"): served(base, failures=30),  # 3x the failures
        ("/b", "GET"): served(base, failures=80),  # 8x the failures
        ("/c", "GET"): served([d * 50 for d in base]),  # 50x slower
        ("/d", "GET"): served([d * 3 for d in base]),  # 3x slower
        ("/e", "GET"): served([d * 3 for d in base]),  # the same, tie broken by name
    }
    expected = [("/b", "error_rate"), ("/a", "error_rate"), ("/c", "p95"), ("/d", "p95"), ("/e", "p95")]
    assert [(r.endpoint, r.metric) for r in find_regressions(before, after)] == expected
    reversed_input = dict(reversed(list(after.items())))
    assert [(r.endpoint, r.metric) for r in find_regressions(before, reversed_input)] == expected


def test_one_endpoint_can_regress_in_both_ways() -> None:
    before = {CHECKOUT: served(latencies(1000, 50.0, seed=1), failures=10)}
    after = {CHECKOUT: served([d * 10 for d in latencies(1000, 50.0, seed=2)], failures=80)}
    assert [r.metric for r in find_regressions(before, after)] == ["error_rate", "p95"]


@pytest.mark.parametrize(
    "option",
    [
        {"min_requests": 0},
        {"p95_ratio": 0.9},
        {"p95_ratio": math.nan},
        {"p95_margin_ms": -1.0},
        {"p_value": 0.0},
        {"p_value": 1.0},
        {"error_rate_margin": -0.01},
    ],
)
def test_a_meaningless_threshold_is_refused(option: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        find_regressions({}, {}, **option)  # type: ignore[arg-type]


def test_new_error_types_are_those_no_previous_release_had() -> None:
    current = {"KeyError": 3, "TimeoutError": 1, "ValueError": 7}
    assert new_error_types(current, ["ValueError", "OSError"]) == ["KeyError", "TimeoutError"]
    assert new_error_types(["ValueError", "ValueError"], ["ValueError"]) == []
    assert new_error_types(["b", "a", "a"], []) == ["a", "b"]


# -- properties ------------------------------------------------------------------------------------

_durations = st.lists(st.floats(0.0, 60_000.0, allow_nan=False), min_size=1, max_size=400)


@PROPERTY
@given(durations=_durations, failure_share=st.floats(0.0, 1.0), copies=st.integers(1, 5))
def test_identical_releases_never_regress(durations: list[float], failure_share: float, copies: int) -> None:
    requests = durations * copies
    failures = round(failure_share * len(requests))
    before = {SEARCH: served(requests, failures=failures)}
    after = {SEARCH: served(requests, failures=failures)}
    assert find_regressions(before, after, min_requests=1) == []
    lenient = find_regressions(
        before, after, min_requests=1, p95_ratio=1.0, p95_margin_ms=0.0, p_value=0.99, error_rate_margin=0.0
    )
    assert lenient == []  # however lenient the thresholds, worse means strictly worse


@PROPERTY
@given(durations=_durations, factor=st.floats(1.3, 1000.0), extra_ms=st.floats(10.5, 10_000.0))
def test_every_request_slower_by_ratio_and_margin_is_a_p95_regression(
    durations: list[float], factor: float, extra_ms: float
) -> None:
    before = {SEARCH: served(durations)}
    after = {SEARCH: served([d * factor + extra_ms for d in durations])}
    found = find_regressions(before, after, min_requests=1)
    assert [r.metric for r in found] == ["p95"]
    assert found[0].after >= found[0].before


@PROPERTY
@given(
    n_before=st.integers(200, 5000),
    n_after=st.integers(200, 5000),
    share_before=st.floats(0.0, 1.0),
    share_after=st.floats(0.0, 1.0),
)
def test_a_release_is_never_worse_than_itself_and_better(
    n_before: int, n_after: int, share_before: float, share_after: float
) -> None:
    """A rise in failures is reported in one direction at most, and never as a fall."""
    old = {CHECKOUT: served([10.0] * n_before, failures=round(share_before * n_before))}
    new = {CHECKOUT: served([10.0] * n_after, failures=round(share_after * n_after))}
    forward, backward = find_regressions(old, new), find_regressions(new, old)
    assert not (forward and backward)
    for regression in forward + backward:
        assert regression.after > regression.before


def test_releases_that_changed_nothing_are_flagged_about_as_rarely_as_p_value_says() -> None:
    rng = random.Random(11)
    durations = latencies(300, 20.0, seed=3)
    flagged = 0
    for _ in range(400):
        before = {CHECKOUT: served(durations, failures=_failed(rng, 300, 0.03))}
        after = {CHECKOUT: served(durations, failures=_failed(rng, 300, 0.03))}
        flagged += bool(find_regressions(before, after))
    assert flagged <= 12  # 1 % of 400 is 4; the margin allows for chance, not for a miscalibrated test
