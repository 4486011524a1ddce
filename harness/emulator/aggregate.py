"""Time-series bucketing and aggregation for the data query endpoints.

One device at a time: ``time_series`` turns that device's stored states,
``(time_ms, {attribute: value})`` in any order, into the ``points`` of a
``timeSeriesData.json`` answer (times still as epoch ms; the caller formats
them); ``last_values`` answers the last-value query. Pure Python: the work is
one sort plus one pass, fast enough for tens of thousands of states.

Rules (REFERENCE.md §5.7; Losant's aggregation reference page [N]; our
choices [I]):

- Window ``[start_ms, end_ms]``, both ends inclusive.
- Buckets are ``resolution_ms`` wide and aligned to multiples of it since the
  epoch; a point's time is its bucket's start, which for the first bucket can
  lie before ``start_ms`` (only points inside the window count) [I].
  ``resolution_ms=None`` makes the whole window one bucket, timed
  ``start_ms`` [I].
- Buckets without data are left out, as Losant does; so is an attribute
  whose bucket holds no value the aggregation can use.
- FIRST, LAST and COUNT take any value. MAX, MIN, MEDIAN, MEAN, SUM and
  STD_DEV take numbers, with booleans as 1/0 [N]; strings are skipped
  (converting by declared data type is the store's job).
- STD_DEV is the population deviation (divide by n), so a single value
  gives 0 rather than nothing [I].
- TIMEATVALUE is the total ms within the bucket (clipped to the window)
  that the attribute equalled ``options.value`` [N]: each state holds until
  the attribute's next state, and a state before the bucket carries in.
- NONE returns the raw points in the window, no bucketing.
- ``order`` sorts by time, then ``limit`` keeps the first ``limit`` points
  (``None`` or 0: all [I]); so ``desc`` + limit gives the newest.

>>> pts = [(1000, {"v": 1}), (2000, {"v": 3}), (61000, {"v": 10})]
>>> time_series(pts, 0, 120000, 60000, "MEAN", None, None)
[{'time': 0, 'data': {'v': 2.0}}, {'time': 60000, 'data': {'v': 10.0}}]
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

__all__ = ["AGGREGATION_TYPES", "Aggregation", "validate_aggregation", "time_series", "last_values"]

Point = tuple[int, dict[str, Any]]

AGGREGATION_TYPES = (
    "FIRST", "LAST", "COUNT", "MAX", "MIN", "MEDIAN", "MEAN", "SUM", "STD_DEV", "NONE", "TIMEATVALUE",
)


@dataclass(frozen=True)
class Aggregation:
    """A checked aggregation: its type and, for TIMEATVALUE, the value to time."""

    type: str
    value: Any = None


def validate_aggregation(agg: str | dict[str, Any] | None) -> Aggregation:
    """Normalise a ``timeSeriesQuery`` aggregation; ValueError when it is not one.

    Accepts a type name (any case; None means MEAN), ``{"type": T, "options":
    {}}`` and ``{"type": "TIMEATVALUE", "options": {"value": v}}`` with v a
    string, number or boolean.

    >>> validate_aggregation({"type": "TIMEATVALUE", "options": {"value": True}})
    Aggregation(type='TIMEATVALUE', value=True)
    """
    if agg is None:
        return Aggregation("MEAN")
    options: Any = {}
    if isinstance(agg, dict):
        extra = set(agg) - {"type", "options"}
        if extra:
            raise ValueError(f"aggregation: unknown field {sorted(extra)[0]!r} (allowed: type, options)")
        options = agg.get("options", {})
        agg = agg.get("type")
        if not isinstance(options, dict):
            raise ValueError(f"aggregation: options must be an object, got {options!r}")
    if not isinstance(agg, str) or agg.upper() not in AGGREGATION_TYPES:
        raise ValueError(f"aggregation {agg!r} is not one of {', '.join(AGGREGATION_TYPES)}")
    kind = agg.upper()
    if kind != "TIMEATVALUE":
        if options:
            raise ValueError(f"aggregation {kind} takes no options, got {sorted(options)}")
        return Aggregation(kind)
    if set(options) != {"value"}:
        raise ValueError("aggregation TIMEATVALUE needs options {'value': <string|number|boolean>} only")
    value = options["value"]
    if not isinstance(value, (str, int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"aggregation TIMEATVALUE: value {value!r} must be a string, number or boolean")
    return Aggregation(kind, value)


def _number(value: Any) -> float | int | None:
    """The numeric reading of a value: booleans are 1/0, strings and NaN are skipped."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON equality for TIMEATVALUE: true is not 1, 2 is 2.0, "2" is not 2."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b or _number(a) is not None and _number(b) is not None and a == b


def _median(nums: list[float | int]) -> float | int:
    ordered = sorted(nums)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _sum(nums: list[float | int]) -> float | int:
    # Exact for integers; fsum keeps float sums from drifting with order.
    return sum(nums) if all(isinstance(n, int) for n in nums) else math.fsum(nums)


def _std_dev(nums: list[float | int]) -> float:
    """Population standard deviation, two-pass: sqrt(sum((x - mean)^2) / n)."""
    mean = math.fsum(nums) / len(nums)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in nums) / len(nums))


_NUMERIC: dict[str, Callable[[list[Any]], Any]] = {
    "MAX": max,
    "MIN": min,
    "MEDIAN": _median,
    "MEAN": lambda nums: math.fsum(nums) / len(nums),
    "SUM": _sum,
    "STD_DEV": _std_dev,
}
_ANY: dict[str, Callable[[list[Any]], Any]] = {
    "FIRST": itemgetter(0),
    "LAST": itemgetter(-1),
    "COUNT": len,
}


def _check_number(name: str, value: Any, *, positive: bool) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of ms, got {value!r}")
    number = round(value)
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'zero or more'}, got {value!r}")
    return number


def _time_at_value(
    series: list[tuple[int, Any]], times: list[int], lo: int, hi: int, target: Any
) -> int:
    """ms in [lo, hi) during which the step function ``series`` equals ``target``.

    ``series`` is one attribute's (time, value) in time order; a value holds
    from its time until the next one's. ``times`` is the time column of it.
    """
    i = bisect_right(times, lo) - 1  # state in effect at lo (-1: none yet)
    total, cursor = 0, lo
    j = i + 1
    while j < len(series) and times[j] < hi:
        if i >= 0 and _same(series[i][1], target):
            total += times[j] - cursor
        cursor, i = times[j], j
        j += 1
    if i >= 0 and _same(series[i][1], target):
        total += hi - cursor
    return total


def time_series(
    points: Sequence[Point],
    start_ms: int,
    end_ms: int,
    resolution_ms: int | None,
    aggregation: str | dict[str, Any] | None,
    attributes: list[str] | None,
    limit: int | None,
    order: str = "asc",
) -> list[dict[str, Any]]:
    """Aggregated points ``[{"time": ms, "data": {attr: value}}]`` of one device.

    ``attributes`` None (or empty) means every attribute found in the window.
    Raises ValueError for an unknown aggregation, a resolution that is not a
    positive number, a negative limit or an order other than asc/desc.
    See the module docstring for the rules.

    >>> pts = [(0, {"on": True}), (600, {"on": False}), (900, {"on": True})]
    >>> time_series(pts, 0, 999, None, {"type": "TIMEATVALUE", "options": {"value": True}}, ["on"], None)
    [{'time': 0, 'data': {'on': 700}}]
    """
    agg = validate_aggregation(aggregation)
    width = _check_number("resolution", resolution_ms, positive=True)
    keep = _check_number("limit", limit, positive=False) or None
    if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    descending = order.lower() == "desc"
    if end_ms < start_ms:
        return []

    ordered = sorted(points, key=itemgetter(0))  # stable: equal times keep input order
    times = [t for t, _ in ordered]
    lo, hi = bisect_left(times, start_ms), bisect_right(times, end_ms)
    wanted = list(dict.fromkeys(attributes)) if attributes else None
    wanted_set = set(wanted) if wanted is not None else None

    if agg.type == "NONE":
        raw: list[dict[str, Any]] = []
        for t, data in ordered[lo:hi]:
            picked = {k: v for k, v in data.items() if v is not None and (wanted_set is None or k in wanted_set)}
            if picked:
                raw.append({"time": t, "data": picked})
        if descending:
            raw.reverse()
        return raw[:keep] if keep else raw

    if width is None:
        width, origin = end_ms - start_ms + 1, start_ms
    else:
        origin = 0
    # bucket start -> attribute -> values in time order
    buckets: dict[int, dict[str, list[Any]]] = {}
    for t, data in ordered[lo:hi]:
        bucket = buckets.setdefault(origin + (t - origin) // width * width, {})
        for name, value in data.items():
            if value is not None and (wanted_set is None or name in wanted_set):
                bucket.setdefault(name, []).append(value)

    series: dict[str, tuple[list[tuple[int, Any]], list[int]]] = {}
    if agg.type == "TIMEATVALUE":
        # Each attribute's full history up to the window end, for carry-in.
        for t, data in ordered[:hi]:
            for name, value in data.items():
                if value is not None and (wanted_set is None or name in wanted_set):
                    pair = series.setdefault(name, ([], []))
                    pair[0].append((t, value))
                    pair[1].append(t)

    out: list[dict[str, Any]] = []
    for start in sorted(buckets, reverse=descending):
        values_by_name = buckets[start]
        names = wanted if wanted is not None else sorted(values_by_name)
        data = {}
        for name in names:
            values = values_by_name.get(name)
            if not values:
                continue
            if agg.type in _ANY:
                data[name] = _ANY[agg.type](values)
            elif agg.type == "TIMEATVALUE":
                steps, step_times = series[name]
                window_lo, window_hi = max(start, start_ms), min(start + width, end_ms + 1)
                data[name] = _time_at_value(steps, step_times, window_lo, window_hi, agg.value)
            else:
                nums = [n for n in map(_number, values) if n is not None]
                if nums:
                    data[name] = _NUMERIC[agg.type](nums)
        if data:
            out.append({"time": start, "data": data})
            if keep and len(out) == keep:
                break
    return out


def last_values(
    points: Sequence[Point], attribute: str | None, end_ms: int
) -> tuple[int, dict[str, Any]] | None:
    """The latest state at or before ``end_ms`` (having ``attribute``, when given).

    With an attribute the data holds only that attribute; without one it is a
    copy of the whole state. Equal times: the later one in ``points`` wins.
    None when nothing qualifies.

    >>> last_values([(5, {"a": 1, "b": 2}), (9, {"b": 3}), (20, {"a": 4})], "a", 10)
    (5, {'a': 1})
    """
    best: Point | None = None
    for t, data in points:
        if t > end_ms or (best is not None and t < best[0]):
            continue
        if attribute is None:
            if any(v is not None for v in data.values()):
                best = (t, data)
        elif data.get(attribute) is not None:
            best = (t, data)
    if best is None:
        return None
    t, data = best
    if attribute is None:
        return t, {k: v for k, v in data.items() if v is not None}
    return t, {attribute: data[attribute]}
