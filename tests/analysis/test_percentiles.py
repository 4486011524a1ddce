"""Exact percentiles against a sorted-list reference, and the coordinated-omission stall fixture."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis.percentiles import (LABELS, exact_percentiles, grouped_order, grouped_percentiles,
                                          percentile_series, rank)
from harness.record import Samples


def reference(values: list[float], label: str) -> float:
    """The smallest value with at least p % of the values at or below it, from a sorted list."""
    ordered = sorted(values)
    p = Fraction(100) if label == "max" else Fraction(label[1:])
    at_or_below = math.ceil(p * len(ordered) / 100)  # exact: Fraction arithmetic
    return ordered[max(at_or_below, 1) - 1]


@pytest.mark.parametrize("values, label, expected", [
    ([1, 2, 3, 4], "p50", 2),  # half of the values are <= 2
    ([1, 2, 3, 4, 5], "p50", 3),
    ([5], "p99.9", 5),
    (list(range(1, 1001)), "p99", 990),  # 990 of 1000 at or below 990
    (list(range(1, 1001)), "p99.9", 999),  # not 1000: 0.999 * 1000 must not round up
    (list(range(1, 1001)), "max", 1000),
    (list(range(1, 101)), "p90", 90),
    (list(range(1, 11)), "p95", 10),  # 9.5 values → the 10th
])
def test_table(values: list[int], label: str, expected: int) -> None:
    assert exact_percentiles(np.array(values, float), (label,))[label] == expected
    assert reference(values, label) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300))
def test_matches_sorted_reference_and_numpy(values: list[float]) -> None:
    got = exact_percentiles(np.array(values), LABELS)
    for label in LABELS:
        assert got[label] == reference(values, label)
        q = 100.0 if label == "max" else float(label[1:])
        assert got[label] == np.percentile(np.array(values), q, method="inverted_cdf")


def test_rank_uses_exact_arithmetic() -> None:
    assert 99.9 / 100 * 1000 > 999  # the trap: 999.0000000000001 would ceil to rank 1000
    assert rank("p99.9", 1000) == 998
    assert rank("p50", 1) == 0 and rank("max", 7) == 6


def test_empty_gives_none() -> None:
    assert exact_percentiles(np.array([]), ("p50", "max")) == {"p50": None, "max": None}


def test_grouped_match_per_group_reference() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 4, 5000)
    groups[groups == 2] = 1  # group 2 empty
    values = rng.exponential(0.05, 5000)
    order, bounds = grouped_order(groups, 4)
    got = grouped_percentiles(values, order, bounds)
    for g in range(4):
        members = values[groups == g].tolist()
        for label in LABELS:
            assert got[g][label] == (reference(members, label) if members else None)


def test_series_matches_per_bucket_reference() -> None:
    rng = np.random.default_rng(4)
    t0 = 1.7e9
    times = t0 + rng.uniform(0, 30, 20000)
    times[times < t0 + 5] += 10  # seconds 0-4 empty
    values = rng.lognormal(-4, 1, 20000)
    counts, series = percentile_series(times, values, t0, 1.0, ("p50", "p95", "p99", "max"))
    assert len(counts) == 30 and counts.sum() == 20000
    for b in range(30):
        members = values[np.floor(times - t0) == b].tolist()
        assert counts[b] == len(members)
        for label, got in series.items():
            if not members:
                assert np.isnan(got[b])
            else:
                assert got[b] == pytest.approx(reference(members, label), abs=0.5e-6)


def test_series_with_negative_values_and_fixed_bucket_count() -> None:
    times = np.array([0.1, 0.2, 1.5, 2.5])
    values = np.array([-0.5, 0.25, 3.0, 7.0])
    counts, series = percentile_series(times, values, 0.0, 1.0, ("p50", "max"), n_buckets=2)
    assert counts.tolist() == [2, 1]  # the sample at 2.5 s is beyond the requested buckets
    assert series["p50"].tolist() == pytest.approx([-0.5, 3.0])
    assert series["max"].tolist() == pytest.approx([0.25, 3.0])


def stall_fixture() -> Samples:
    """HdrHistogram's canonical fixture as samples of a sender planned every 10 ms.

    10,000 calls answered in 1 ms, then one call that stalls 100 s; the 9,999 calls
    planned during the stall go out when it ends (t = 200 s), each answered in 1 ms.
    """
    n_ok, n_late = 10_000, 9_999
    planned = np.concatenate([np.arange(n_ok) * 0.01, [100.0], 100.0 + np.arange(1, n_late + 1) * 0.01])
    sent = np.concatenate([np.arange(n_ok) * 0.01, [100.0], np.full(n_late, 200.0)])
    latency = np.concatenate([np.full(n_ok, 0.001), [100.0], np.full(n_late, 0.001)])
    n = len(planned)
    return Samples(np.zeros(n), np.zeros(n), planned, sent, latency, np.full(n, 200), np.zeros(n), np.zeros(n),
                   op_names=("device.sendState",), key_names=("d",))


def test_stall_corrected_percentiles_reveal_what_response_time_hides() -> None:
    s = stall_fixture()
    labels = ("p50", "p75", "p99", "p99.99", "max")
    response = exact_percentiles(s.latency, labels)
    corrected = exact_percentiles(s.corrected, labels)
    # response time: the stall is one sample in 20,000, invisible below the maximum
    assert response["p99"] == response["p99.99"] == pytest.approx(0.001)
    assert response["max"] == 100.0
    # corrected: half of the calls waited for the stall; p75 is about 50 s (as in HdrHistogram's test)
    assert corrected["p50"] == pytest.approx(0.001)
    assert corrected["p75"] == pytest.approx(50.001, abs=1e-6)
    assert corrected["p99"] > 98.0
    for label in labels:
        assert corrected[label] == reference(s.corrected.tolist(), label)
        assert response[label] == reference(s.latency.tolist(), label)
    lateness = exact_percentiles(s.lateness, ("p50", "max"))
    assert lateness["p50"] == 0.0 and lateness["max"] == pytest.approx(99.99)
