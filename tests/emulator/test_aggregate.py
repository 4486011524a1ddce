"""aggregate: buckets, aggregations, NONE, limit/order and last values."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.emulator.aggregate import Aggregation, last_values, time_series, validate_aggregation

MIN = 60_000
# One device, deliberately out of order. Bucket [0, 60000): v = 1, 3, "n/a", True;
# bucket [60000, 120000): v = 10, 20; bucket [180000, ...): v = 7 and s only.
POINTS = [
    (61_000, {"v": 10, "s": "x"}),
    (1_000, {"v": 1, "s": "a"}),
    (30_000, {"v": "n/a"}),
    (2_000, {"v": 3, "s": "b"}),
    (59_999, {"v": True}),
    (119_999, {"v": 20}),
    (180_000, {"v": 7}),
    (200_000, {"s": "z"}),
]


def run(agg, resolution=MIN, start=0, end=240_000, attributes=None, limit=None, order="asc", points=POINTS):
    return time_series(points, start, end, resolution, agg, attributes, limit, order)


def values(result, name="v"):
    return [(p["time"], p["data"].get(name)) for p in result]


@pytest.mark.parametrize(
    "agg, expected",
    [
        # numeric aggregations: booleans count as 1/0, strings are skipped
        ("MEAN", [(0, statistics.fmean([1, 3, 1])), (60_000, 15.0), (180_000, 7.0)]),
        ("SUM", [(0, 5), (60_000, 30), (180_000, 7)]),
        ("MAX", [(0, 3), (60_000, 20), (180_000, 7)]),
        ("MIN", [(0, 1), (60_000, 10), (180_000, 7)]),
        ("MEDIAN", [(0, statistics.median([1, 3, 1])), (60_000, statistics.median([10, 20])), (180_000, 7)]),
        (
            "STD_DEV",
            [(0, statistics.pstdev([1, 3, 1])), (60_000, statistics.pstdev([10, 20])), (180_000, 0.0)],
        ),
        # any-type aggregations see every value in time order
        ("FIRST", [(0, 1), (60_000, 10), (180_000, 7)]),
        ("LAST", [(0, True), (60_000, 20), (180_000, 7)]),
        ("COUNT", [(0, 4), (60_000, 2), (180_000, 1)]),
        # object forms
        ({"type": "MEAN", "options": {}}, [(0, statistics.fmean([1, 3, 1])), (60_000, 15.0), (180_000, 7.0)]),
        ({"type": "COUNT"}, [(0, 4), (60_000, 2), (180_000, 1)]),
        (None, [(0, statistics.fmean([1, 3, 1])), (60_000, 15.0), (180_000, 7.0)]),  # default MEAN
    ],
)
def test_aggregations_per_bucket(agg, expected):
    got = values(run(agg, attributes=["v"]))
    assert [t for t, _ in got] == [t for t, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        if isinstance(b, float):
            assert isinstance(a, float) and a == pytest.approx(b)
        else:
            assert a == b and type(a) is type(b)


def test_string_attribute_buckets():
    result = run("LAST", attributes=["s"])
    assert values(result, "s") == [(0, "b"), (60_000, "x"), (180_000, "z")]
    # numeric aggregation of strings: no value, so no bucket at all
    assert run("MEAN", attributes=["s"]) == []


def test_all_attributes_when_none_given():
    result = run("COUNT")
    assert result[0] == {"time": 0, "data": {"s": 2, "v": 4}}
    assert result[2] == {"time": 180_000, "data": {"s": 1, "v": 1}}


def test_attribute_without_numeric_values_is_left_out_of_its_bucket():
    result = run("MEAN")
    assert result[0]["data"] == {"v": pytest.approx(5 / 3)}
    assert result[-1] == {"time": 180_000, "data": {"v": 7.0}}


def test_empty_buckets_are_omitted():
    assert [p["time"] for p in run("COUNT", attributes=["v"])] == [0, 60_000, 180_000]


def test_window_is_inclusive_and_buckets_aligned_to_epoch():
    # window [59_999, 119_999]: the first bucket starts before the window
    result = run("COUNT", start=59_999, end=119_999, attributes=["v"])
    assert values(result) == [(0, 1), (60_000, 2)]


def test_no_resolution_is_one_bucket_at_start():
    result = run("COUNT", resolution=None, start=1_500, end=119_999, attributes=["v"])
    assert values(result) == [(1_500, 5)]


def test_order_and_limit():
    assert [p["time"] for p in run("MAX", order="desc")] == [180_000, 60_000, 0]
    assert [p["time"] for p in run("MAX", order="desc", limit=2)] == [180_000, 60_000]
    assert [p["time"] for p in run("MAX", limit=1)] == [0]
    assert [p["time"] for p in run("MAX", limit=0)] == [0, 60_000, 180_000]  # 0: no limit


def test_none_returns_raw_points():
    result = run("NONE", start=1_000, end=61_000)
    assert result == [
        {"time": 1_000, "data": {"v": 1, "s": "a"}},
        {"time": 2_000, "data": {"v": 3, "s": "b"}},
        {"time": 30_000, "data": {"v": "n/a"}},
        {"time": 59_999, "data": {"v": True}},
        {"time": 61_000, "data": {"v": 10, "s": "x"}},
    ]
    assert [p["time"] for p in run("NONE", order="desc", limit=2)] == [200_000, 180_000]
    only_s = run("NONE", attributes=["s"])
    assert [p["time"] for p in only_s] == [1_000, 2_000, 61_000, 200_000]  # points without s dropped
    assert all(set(p["data"]) == {"s"} for p in only_s)


def test_time_at_value():
    # on: True from 0, False at 600, True at 900; window [0, 1999], buckets of 1000
    pts = [(0, {"on": True}), (600, {"on": False}), (900, {"on": True}), (1_500, {"on": False})]
    agg = {"type": "TIMEATVALUE", "options": {"value": True}}
    assert run(agg, resolution=1_000, end=1_999, points=pts) == [
        {"time": 0, "data": {"on": 600 + 100}},
        {"time": 1_000, "data": {"on": 500}},  # True carried in from 900 until 1500
    ]
    off = {"type": "TIMEATVALUE", "options": {"value": False}}
    assert values(run(off, resolution=None, end=1_999, points=pts), "on") == [(0, 300 + 500)]


def test_time_at_value_carries_in_from_before_the_window():
    pts = [(0, {"mode": "run"}), (5_000, {"mode": "stop"})]
    agg = {"type": "TIMEATVALUE", "options": {"value": "run"}}
    assert values(run(agg, resolution=None, start=2_000, end=9_999, points=pts), "mode") == [(2_000, 3_000)]


def test_time_at_value_numbers_match_across_int_and_float():
    pts = [(0, {"v": 2}), (10, {"v": 2.0}), (20, {"v": 3})]
    agg = {"type": "TIMEATVALUE", "options": {"value": 2}}
    assert values(run(agg, resolution=None, end=29, points=pts)) == [(0, 20)]
    agg_true = {"type": "TIMEATVALUE", "options": {"value": True}}
    assert values(run(agg_true, resolution=None, end=29, points=[(0, {"v": 1})])) == [(0, 0)]


@pytest.mark.parametrize(
    "agg, expected",
    [
        ("mean", Aggregation("MEAN")),
        ("STD_DEV", Aggregation("STD_DEV")),
        ({"type": "NONE", "options": {}}, Aggregation("NONE")),
        ({"type": "TIMEATVALUE", "options": {"value": "on"}}, Aggregation("TIMEATVALUE", "on")),
        ({"type": "TIMEATVALUE", "options": {"value": 0}}, Aggregation("TIMEATVALUE", 0)),
    ],
)
def test_validate_aggregation(agg, expected):
    assert validate_aggregation(agg) == expected


@pytest.mark.parametrize(
    "agg",
    [
        "AVG",
        "",
        5,
        ["MEAN"],
        {"type": "MODE"},
        {"kind": "MEAN"},
        {"type": "MEAN", "options": {"x": 1}},
        {"type": "MEAN", "options": []},
        {"type": "MEAN", "extra": 1},
        "TIMEATVALUE",  # needs its value
        {"type": "TIMEATVALUE"},
        {"type": "TIMEATVALUE", "options": {}},
        {"type": "TIMEATVALUE", "options": {"value": None}},
        {"type": "TIMEATVALUE", "options": {"value": [1]}},
        {"type": "TIMEATVALUE", "options": {"value": 1, "other": 2}},
    ],
)
def test_validate_aggregation_rejects(agg):
    with pytest.raises(ValueError, match="aggregation"):
        validate_aggregation(agg)
    with pytest.raises(ValueError):
        run(agg)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"resolution": 0}, "resolution"),
        ({"resolution": -5}, "resolution"),
        ({"resolution": float("nan")}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"limit": -1}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"order": "up"}, "order"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("MEAN", **kwargs)


def test_empty_inputs():
    assert run("MEAN", points=[]) == []
    assert run("MEAN", start=500_000, end=600_000) == []
    assert run("MEAN", start=10, end=5) == []


def test_last_values():
    assert last_values(POINTS, "v", 240_000) == (180_000, {"v": 7})
    assert last_values(POINTS, "s", 240_000) == (200_000, {"s": "z"})
    assert last_values(POINTS, "s", 199_999) == (61_000, {"s": "x"})
    assert last_values(POINTS, None, 240_000) == (200_000, {"s": "z"})
    assert last_values(POINTS, "v", 60_000) == (59_999, {"v": True})
    assert last_values(POINTS, "v", 999) is None
    assert last_values(POINTS, "missing", 240_000) is None
    assert last_values([], None, 0) is None
    # equal times: the later one in the list wins
    assert last_values([(5, {"a": 1}), (5, {"a": 2})], "a", 5) == (5, {"a": 2})


def test_tens_of_thousands_of_points_are_quick():
    import time

    pts = [(i * 1_000, {"v": i % 97, "w": float(i)}) for i in range(50_000)]
    began = time.perf_counter()
    result = time_series(pts, 0, 50_000_000, 60_000, "MEAN", None, None)
    assert time.perf_counter() - began < 2.0
    assert len(result) == math.ceil(50_000_000 / 60_000)


# Property tests against numpy and plain counting over the same subsets.
point_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),
        st.fixed_dictionaries(
            {},
            optional={
                "x": st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6), st.booleans(), st.text(max_size=2)),
            },
        ),
    ),
    max_size=60,
)
windows = st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(sorted)
resolutions = st.one_of(st.none(), st.integers(1, 3_000))


def _subsets(points, start, end, resolution):
    """bucket start -> numeric x values, the slow way."""
    width, origin = (resolution, 0) if resolution else (end - start + 1, start)
    out: dict[int, list[float]] = {}
    for t, data in sorted(points, key=lambda p: p[0]):
        if start <= t <= end and "x" in data:
            out.setdefault(origin + (t - origin) // width * width, []).append(data["x"])
    return out


@settings(max_examples=150)
@given(point_lists, windows, resolutions)
def test_mean_matches_numpy_per_bucket(points, window, resolution):
    start, end = window
    expected = {}
    for bucket, xs in _subsets(points, start, end, resolution).items():
        nums = [float(x) for x in xs if not isinstance(x, str)]
        if nums:
            expected[bucket] = float(np.mean(nums))
    got = {p["time"]: p["data"]["x"] for p in time_series(points, start, end, resolution, "MEAN", ["x"], None)}
    assert got.keys() == expected.keys()
    for bucket, mean in expected.items():
        assert got[bucket] == pytest.approx(mean, rel=1e-9, abs=1e-9)


@settings(max_examples=150)
@given(point_lists, windows, resolutions)
def test_count_sums_to_points_in_window(points, window, resolution):
    start, end = window
    result = time_series(points, start, end, resolution, "COUNT", ["x"], None)
    in_window = sum(1 for t, d in points if start <= t <= end and "x" in d)
    assert sum(p["data"]["x"] for p in result) == in_window
    times = [p["time"] for p in result]
    assert times == sorted(set(times))


@settings(max_examples=100)
@given(point_lists, windows, resolutions, st.sampled_from(["MIN", "MAX", "SUM", "MEDIAN", "STD_DEV"]))
def test_numeric_aggregations_match_statistics(points, window, resolution, kind):
    start, end = window
    reference = {
        "MIN": min,
        "MAX": max,
        "SUM": math.fsum,
        "MEDIAN": statistics.median,
        "STD_DEV": statistics.pstdev,
    }[kind]
    result = {p["time"]: p["data"]["x"] for p in time_series(points, start, end, resolution, kind, ["x"], None)}
    for bucket, xs in _subsets(points, start, end, resolution).items():
        nums = [float(x) for x in xs if not isinstance(x, str)]
        if nums:
            assert result[bucket] == pytest.approx(reference(nums), rel=1e-9, abs=1e-6)
        else:
            assert bucket not in result


@settings(max_examples=100)
@given(point_lists, windows, st.integers(1, 3_000), st.sampled_from([True, False, 0, 1]))
def test_time_at_value_buckets_sum_to_window_total(points, window, resolution, target):
    start, end = window
    agg = {"type": "TIMEATVALUE", "options": {"value": target}}
    total = sum(p["data"]["x"] for p in time_series(points, start, end, resolution, agg, ["x"], None))
    # Slow reference: walk every ms of the buckets that hold data.
    series = sorted(((t, d["x"]) for t, d in points if "x" in d and t <= end), key=lambda p: p[0])
    held = set(_subsets(points, start, end, resolution))

    def same(a):
        if isinstance(a, bool) or isinstance(target, bool):
            return isinstance(a, bool) and isinstance(target, bool) and a == target
        return not isinstance(a, str) and a == target

    expected, i, current = 0, 0, None
    for ms in range(start, end + 1):
        while i < len(series) and series[i][0] <= ms:
            current, i = series[i], i + 1
        if ms // resolution * resolution in held and current is not None and same(current[1]):
            expected += 1
    assert total == expected


@settings(max_examples=100)
@given(point_lists, windows, st.integers(1, 3_000), st.integers(1, 5), st.sampled_from(["asc", "desc"]))
def test_limit_keeps_the_first_buckets_in_order(points, window, resolution, limit, order):
    start, end = window
    full = time_series(points, start, end, resolution, "LAST", None, None, order)
    assert time_series(points, start, end, resolution, "LAST", None, limit, order) == full[:limit]
    assert [p["time"] for p in full] == sorted((p["time"] for p in full), reverse=order == "desc")
