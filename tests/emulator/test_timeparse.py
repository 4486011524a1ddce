"""timeparse: input times, query times and the ISO form we answer with."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.emulator.timeparse import (
    MAX_MS,
    MIN_MS,
    SECONDS_BELOW,
    format_time,
    parse_input_time,
    resolve_query_time,
)

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z
T = 1_465_790_400_000  # 2016-06-13T04:00:00.000Z
DAY = 1_465_776_000_000  # 2016-06-13T00:00:00.000Z


@pytest.mark.parametrize(
    "value, expected",
    [
        # ISO-8601, every shape Losant's examples and Date.parse use
        ("2016-06-13T04:00:00.000Z", T),
        ("2016-06-13T04:00:00Z", T),
        ("2016-06-13T04:00Z", T),
        ("2016-06-13T04:00:00.123456Z", T + 123),  # beyond ms is truncated
        ("2016-06-13T04:00:00.5Z", T + 500),
        ("2016-06-13t04:00:00z", T),
        ("2016-06-13 04:00:00Z", T),
        ("2016-06-13T06:00:00+02:00", T),
        ("2016-06-13T06:00:00+0200", T),
        ("2016-06-13T06:00:00+02", T),
        ("2016-06-12T23:30:00-04:30", T),
        ("2016-06-13T04:00:00", T),  # no zone: UTC (documented)
        ("2016-06-13", DAY),  # date only: midnight UTC
        ("2016-06", 1_464_739_200_000),
        ("  2016-06-13T04:00:00Z  ", T),
        # other Date.parse forms
        ("Mon, 13 Jun 2016 04:00:00 GMT", T),
        ("Mon, 13 Jun 2016 06:00:00 +0200", T),
        ("13 Jun 2016 04:00:00 +0000", T),
        ("Mon Jun 13 2016 04:00:00 GMT+0000 (Coordinated Universal Time)", T),
        ("Mon Jun 13 2016 00:00:00 GMT-0400 (Eastern Daylight Time)", T),
        ("June 13, 2016", DAY),
        ("Jun 13 2016 04:00:00", T),
        ("2016/06/13", DAY),
        ("2016/6/13 04:00", T),
        # numbers: seconds below 1e11, ms from 1e11, negative = before now
        (1_465_790_400, T),
        (1_465_790_400.25, T + 250),
        (T, T),
        (float(T), T),
        (SECONDS_BELOW - 1, (SECONDS_BELOW - 1) * 1000),
        (SECONDS_BELOW, SECONDS_BELOW),
        (-1000, NOW - 1000),
        (-0.4, NOW),
        (0, NOW),
        (1, 1000),  # one second after the epoch
        # numeric strings, same rules
        ("1465790400", T),
        ("1465790400000", T),
        ("1465790400.5", T + 500),
        ("-60000", NOW - 60000),
        (" 1465790400000 ", T),
        # Mongo-style $date
        ({"$date": "2016-06-13T04:00:00.000Z"}, T),
        ({"$date": T}, T),
        ({"$date": {"$numberLong": str(T)}}, T),
    ],
)
def test_parse_input_time_reads(value, expected):
    assert parse_input_time(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        "",
        "   ",
        "now",
        "yesterday",
        "nan",
        "Infinity",
        "2016-13-01",  # month 13
        "2016-02-30",  # no such day
        "2016-06-13T25:00:00Z",
        "2016-06-13T04:61:00Z",
        "2016-06-13T04:00:00+25:00",
        "13/06/2016",
        "0000-01-01T00:00:00Z",  # year 0 is outside 1..9999
        MAX_MS + 1,
        1e300,
        -1e300,  # relative, but lands before year 1
        [T],
        {"time": T},
        {"$date": "garbage"},
        {"$date": T, "extra": 1},
        {"$date": {"$oid": "x"}},
        object(),
    ],
)
def test_parse_input_time_rejects(value):
    assert parse_input_time(value, NOW) is None


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (T, "2016-06-13T04:00:00.000Z"),
        (T + 7, "2016-06-13T04:00:00.007Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (MAX_MS, "9999-12-31T23:59:59.999Z"),
        (MIN_MS, "0001-01-01T00:00:00.000Z"),
    ],
)
def test_format_time(ms, text):
    assert format_time(ms) == text


@pytest.mark.parametrize("ms", [MAX_MS + 1, MIN_MS - 1])
def test_format_time_out_of_range(ms):
    with pytest.raises(ValueError):
        format_time(ms)


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_format_then_parse_round_trips(ms):
    assert parse_input_time(format_time(ms), NOW) == ms


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_format_time_agrees_with_datetime(ms):
    # Slow reference: datetime arithmetic plus isoformat.
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    expected = stamp.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + f".{ms % 1000:03d}Z"
    assert format_time(ms) == expected


@given(st.integers(min_value=1, max_value=SECONDS_BELOW - 1))
def test_small_positive_numbers_are_seconds(seconds):
    assert parse_input_time(seconds, NOW) == seconds * 1000
    assert parse_input_time(str(seconds), NOW) == seconds * 1000


@given(st.integers(min_value=SECONDS_BELOW, max_value=MAX_MS))
def test_large_positive_numbers_are_ms(ms):
    assert parse_input_time(ms, NOW) == ms


@given(st.integers(min_value=1, max_value=10**12))
def test_negative_numbers_are_ms_before_now(before):
    assert parse_input_time(-before, NOW) == NOW - before


@given(st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=30), st.integers()))
def test_parse_input_time_never_raises(value):
    result = parse_input_time(value, NOW)
    assert result is None or (isinstance(result, int) and MIN_MS <= result <= MAX_MS)


@pytest.mark.parametrize(
    "value, default, expected",
    [
        (None, 0, NOW),  # default 0 = now
        (None, 1, 1),  # composite state's default start: 1 ms after the epoch
        (None, -2_592_000_000, NOW - 2_592_000_000),  # payload counts' default start
        ("", 0, NOW),
        (0, 123, NOW),
        ("0", 123, NOW),
        (-60_000, 0, NOW - 60_000),
        ("-60000", 0, NOW - 60_000),
        (-0.5, 0, NOW),
        (T, 0, T),
        (float(T), 0, T),
        (str(T), 0, T),
        (1_465_790_400, 0, 1_465_790_400),  # positive = ms, never seconds
        (T + 0.6, 0, T + 1),
        ("2016-06-13T04:00:00.000Z", 0, T),
        ("2016-06-13", 0, DAY),
        ({"$date": "2016-06-13T04:00:00Z"}, 0, T),
    ],
)
def test_resolve_query_time(value, default, expected):
    assert resolve_query_time(value, NOW, default) == expected


@pytest.mark.parametrize(
    "value",
    [True, False, float("nan"), float("inf"), "soon", "12abc", [1], {"a": 1}, 1e300, -1e300, {"$date": "x"}],
)
def test_resolve_query_time_rejects_garbage(value):
    with pytest.raises(ValueError) as info:
        resolve_query_time(value, NOW, 0)
    assert repr(value)[:10] in str(info.value)  # the message names the value


@given(st.integers(min_value=-(10**12), max_value=MAX_MS))
def test_resolve_query_time_rule(value):
    expected = NOW if value == 0 else NOW + value if value < 0 else value
    assert resolve_query_time(value, NOW, 0) == expected
    assert resolve_query_time(str(value), NOW, 0) == expected


def test_no_float_precision_loss_for_big_integers():
    assert parse_input_time(MAX_MS, NOW) == MAX_MS
    assert resolve_query_time(MAX_MS, NOW, 0) == MAX_MS
    assert not math.isnan(resolve_query_time(-1, NOW, 0))
