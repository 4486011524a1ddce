"""How long the analysis of a large run takes, against the same figures in plain Python.

    .venv/bin/python bench/analysis.py [--samples 10000000] [--python-subset 1000000]

Builds a synthetic run (2,000 devices sending state at 1.95/s, plus events and
reads; 0.05 % of calls answered 429 so conformance, probes and model inference all
run), times ``harness.analysis.analyze`` on it (everything ``summary.json`` holds but
integrity), then computes the same figures with plain Python loops (sorted lists,
dicts, bisect per key with the same bounds rule) on a subset and scales that time linearly to the full size
(linear understates the Python sorts' n log n, so the ratio is conservative).
Targets: under 5 s for 10 million samples, and at least 10x faster than the loops.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.analysis.conformance import check_conformance  # noqa: E402
from harness.analysis.summary import analyze, build_series, latency_stats  # noqa: E402
from harness.analysis.throughput import counts_by_op, time_origin  # noqa: E402
from harness.limits import LimitsTable  # noqa: E402
from harness.record import Samples, classify  # noqa: E402

OPS = ("device.sendState", "events.post", "devices.get")


def synthetic(n: int, devices: int = 2000, seed: int = 1) -> Samples:
    rng = np.random.default_rng(seed)
    n_state = int(n * 0.96)
    per_dev = math.ceil(n_state / devices)
    interval = 1 / 1.95
    t0 = 1_790_000_000.0
    k = np.arange(per_dev * devices)
    dev = (k % devices).astype(np.int32)
    planned = t0 + (k // devices) * interval + dev * (interval / devices)
    planned, dev = planned[:n_state], dev[:n_state]
    n_other = n - n_state
    other = np.where(rng.random(n_other) < 0.003, 1, 2)  # events.post at ~0.5/s, under its 1/s limit
    op = np.concatenate([np.zeros(n_state, np.uint16), other.astype(np.uint16)])
    key = np.concatenate([dev, np.where(op[n_state:] == 1, devices, rng.integers(0, devices, n_other))])
    span = float(planned[-1] - t0)
    planned = np.concatenate([planned, t0 + rng.uniform(0, span, n_other)])
    sent = planned + rng.exponential(0.001, n)
    latency = rng.lognormal(np.log(0.012), 0.5, n)
    status = np.full(n, 200, np.int16)
    status[rng.random(n) < 0.0005] = 429
    status[rng.random(n) < 0.0002] = 500
    error = np.where(status == 429, classify(429, None), np.where(status == 500, classify(500, None), 0))
    names = tuple(f"dev-{i}" for i in range(devices)) + ("app",)
    return Samples(op, key, planned, sent, latency, status, rng.integers(20, 200, n), error,
                   op_names=OPS, key_names=names)


def timed(label: str, fn, *args, **kw):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kw)
    print(f"  {label:<38} {time.perf_counter() - start:7.2f} s")
    return out


def python_figures(s: Samples, table: LimitsTable) -> None:
    """The same figures with lists, dicts and sorted(): the baseline."""
    rows = list(zip(s.op.tolist(), s.key.tolist(), s.planned.tolist(), s.sent.tolist(), s.latency.tolist(),
                    s.status.tolist(), s.error.tolist()))
    t0 = min(min(r[2], r[3]) for r in rows)
    by_op: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    sec_resp: dict[int, list[float]] = defaultdict(list)
    sec_corr: dict[int, list[float]] = defaultdict(list)
    sec_sent: dict[int, int] = defaultdict(int)
    for op, key, planned, sent, lat, status, err in rows:
        c = counts[op]
        c[0] += 1
        c[1] += status == 429
        c[2] += err != 0 and status != 429
        corrected = sent - planned + lat
        for d in (by_op[op], by_op[-1]):
            d["r"].append(lat)
            d["c"].append(corrected)
            d["l"].append(sent - planned)
        sec_resp[int(sent - t0)].append(lat)
        sec_corr[int(planned - t0)].append(corrected)
        sec_sent[int(sent - t0)] += 1

    def pct(values: list[float], p: float) -> float:
        return values[max(math.ceil(p / 100 * len(values)), 1) - 1]

    for d in by_op.values():
        for values in d.values():
            values.sort()
            [pct(values, p) for p in (50, 90, 95, 99, 99.9, 100)]
    for series in (sec_resp, sec_corr):
        for values in series.values():
            values.sort()
            [pct(values, p) for p in (50, 95, 99)]
    # sliding-window conformance with the same bounds rule, per key with bisect: a call was decided
    # in [sent, sent + latency]; a 429 is false when fewer than count accepted calls can reach its
    # window (s_j <= e_X and e_j >= s_X - W), an accepted call missed when count surely were in it
    limit = table.for_operation("device.sendState")[0]
    window, count = float(limit.window or 0.0), limit.count
    calls = sorted((r[1], r[3], r[3] + r[4], r[5]) for r in rows if r[0] == 0)
    starts: dict[int, list[float]] = defaultdict(list)
    ends: dict[int, list[float]] = defaultdict(list)
    for key, s0, e0, status in calls:
        if status != 429:
            starts[key].append(s0)
            ends[key].append(e0)
    for v in ends.values():
        v.sort()
    findings = peak = 0
    for key, s0, e0, status in calls:
        st, en = starts[key], ends[key]
        if status == 429:
            findings += bisect_right(st, e0) - bisect_left(en, s0 - window) < count
        elif status:
            could = bisect_right(st, e0) - bisect_left(en, s0 - window) - 1
            peak = max(peak, could + 1)
            findings += bisect_left(en, s0) - bisect_right(st, e0 - window) >= count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--python-subset", type=int, default=1_000_000)
    args = ap.parse_args()
    table = LimitsTable()
    start = time.perf_counter()
    s = synthetic(args.samples)
    print(f"built {len(s):,} synthetic samples in {time.perf_counter() - start:.1f} s "
          f"({int((s.status == 429).sum()):,} 429s)")
    print("numpy, by stage:")
    t_origin, t_end = time_origin(s)
    timed("counts and rates", counts_by_op, s)
    timed("percentiles x3 figures, overall + per op", latency_stats, s)
    timed("per-second series (counts, p50/95/99 x2)", build_series, s, t_origin, t_end)
    timed("throttle conformance (+ probe, inference)", check_conformance, s, table, "respect")
    start = time.perf_counter()
    analyze(s, table, "respect")
    numpy_s = time.perf_counter() - start
    print(f"numpy, full analyze(): {numpy_s:.2f} s for {len(s):,} samples "
          f"({numpy_s / len(s) * 1e9:.0f} ns/sample)  target < 5 s: {'OK' if numpy_s < 5 else 'MISSED'}")
    m = min(args.python_subset, len(s))
    sub = Samples(*(getattr(s, c)[:m] for c in ("op", "key", "planned", "sent", "latency", "status", "nbytes",
                                                  "error")), op_names=s.op_names, key_names=s.key_names)
    start = time.perf_counter()
    python_figures(sub, table)
    py_s = time.perf_counter() - start
    py_full = py_s * len(s) / m
    print(f"plain Python loops: {py_s:.2f} s for {m:,} samples -> {py_full:.1f} s for {len(s):,} (linear)")
    print(f"ratio: numpy is {py_full / numpy_s:.1f}x faster  target >= 10x: "
          f"{'OK' if py_full / numpy_s >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
