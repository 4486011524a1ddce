"""Baseline vs current: what changed per operation, and which changes are regressions.

Two runs of the same scenario on the same machine differ by more than sampling noise:
the machine's load, the target's state and the scheduler move whole stretches of a run.
A test that resamples within one run (a bootstrap) cannot see that variation and calls
it a regression. So the judgement is calibrated *between* stretches of the runs, and a
change must also be large enough to matter.

A change of one statistic (a percentile of corrected latency or of response time, or
the throughput) of one operation is a **regression** only when all of these hold:

1. **Enough samples.** In each run's steady window at least ``MIN_TAIL`` (10) samples lie
   beyond the percentile (n x (1 - p) >= 10: p50 needs 20, p99 1,000, p99.9 10,000),
   and at least ``min_blocks`` (7 of 10) of the window's blocks hold 1 / (1 - p)
   samples (2 for p50, 100 for p99). Fewer: "not enough samples", counted and shown,
   never a regression. Throughput needs 5 samples per block on average.
2. **Worse than allowed, stretch by stretch.** Each run's steady window (after the
   ramp-up, before the stop, ``SETTLE_S`` trimmed at each end; see ``steady_window``)
   is cut into ``blocks`` (10) equal time blocks, the replicates. The statistic is
   computed per block, and a one-sided Mann-Whitney U test asks whether the current
   run's blocks exceed the baseline's blocks *plus the allowed change*, the larger of
   ``threshold`` x baseline and ``min_change_ms`` (for the rate, whether they fall
   below ``baseline x (1 - threshold)``): exact for untied values, the normal
   approximation with tie correction otherwise. This is Netflix Kayenta's canary judge
   (Mann-Whitney between baseline and canary with an allowed effect size). The p-values
   of all tests of one comparison are adjusted by Holm's method at a family-wise
   ``ALPHA`` (1 %).
3. **Large enough over the whole run.** The whole-run value (the exact percentile over
   every sample of the operation, or the steady-window rate) changed by more than
   ``threshold`` (default 10 %) of the baseline, and for a latency by more than
   ``min_change_ms`` (default 2 ms) too. Both floors are configurable; the throughput
   has only the relative one.
4. **Not the generator's doing.** A latency percentile counts only if the generator kept
   up as well as in the baseline there: when its own lateness (sent - planned) at that
   percentile rose by more than the floors too, the run's CPU (a busy machine) can
   explain the change, and the statistic is "generator late too": counted and shown,
   never a regression; a comparison whose only worse statistics are such is
   "undecided". (Measured: on the busy 2-core machine, runs during a load spike had
   p99 response times twice the baseline's, with scheduler lateness p99 at 80 ms
   against 5 ms; their p50 was unchanged.)

Why both the blocks and the floors: two identical runs on a busy machine differ as a
whole (measured: p90 and p95 of the same scenario 5-11 % apart, every block of one run
above every block of the other), so a rank test of "any difference" between blocks
flags identical runs; testing the difference against the allowed change does not, and
still sees a 20 % slowdown in every block. A shift that only some stretches show (a
burst of load in one run) is not consistent across blocks and is not flagged either.

Refused: runs of different scenarios (name and a hash of the resolved scenario, without
its target, duration, description, seed and run tag) or targets (kind and URL; any port
on loopback counts as the same target: the emulator picks a free one each time), unless
``force``.

Calibrated with ``bench/compare_calibration.py`` (docs/BENCHMARKS.md): on a busy 2-core
machine, 0 of 25 pairs of identical 30 s runs flagged (0 of 600 across rounds), 25 of 25
pairs flagged where state calls were 20 % slower, 25 of 25 where they were 30 ms slower.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from harness.analysis.percentiles import percent_of, rank
from harness.record import Samples, read_samples
from harness.report.rundata import epoch_of
from harness.report.rundata import read_json_object as _read_json

COMPARED = ("p50", "p90", "p95", "p99", "p99.9")
METRICS = ("corrected", "response")
THRESHOLD = 0.10  # relative floor
MIN_CHANGE_MS = 2.0  # absolute floor for latencies
BLOCKS = 10  # time blocks per run: the replicates of the rank test
ALPHA = 0.01  # family-wise, Holm over every test of one comparison
MIN_TAIL = 10  # samples beyond the percentile, per run
SETTLE_S = 2.0  # trimmed after the ramp-up and before the stop
MIN_RATE_SAMPLES_PER_BLOCK = 5  # throughput is judged when each run's window averages this many per block
IGNORED_SCENARIO_KEYS = ("target", "duration", "description", "seed", "run_tag")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def method_text(opts: dict[str, Any]) -> str:
    return (f"per-block statistics over {opts['blocks']} time blocks of each run's steady window; one-sided "
            f"Mann-Whitney U test of the current blocks against the baseline blocks plus the allowed change "
            f"(the larger of {opts['threshold']:.0%} and {opts['min_change_ms']:g} ms; rates x "
            f"{1 - opts['threshold']:g}), "
            f"Holm family-wise {opts['alpha']:.0%}; and a change of the whole-run value above "
            f"{opts['threshold']:.0%} and (latency) {opts['min_change_ms']:g} ms; at least {MIN_TAIL} samples beyond "
            f"each percentile in each run; a latency rise matched by the generator's own lateness is not counted")


def judge_options(threshold: float | None = None, min_change_ms: float | None = None, blocks: int | None = None,
                  alpha: float | None = None, percentiles: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The options of one comparison, defaults filled in (what ``compare_samples`` takes as keywords)."""
    return {"threshold": THRESHOLD if threshold is None else float(threshold),
            "min_change_ms": MIN_CHANGE_MS if min_change_ms is None else float(min_change_ms),
            "blocks": BLOCKS if blocks is None else int(blocks),
            "alpha": ALPHA if alpha is None else float(alpha),
            "percentiles": tuple(percentiles or COMPARED)}


class CompareRefused(ValueError):
    """The two runs are of different scenarios or targets (and ``force`` was not given)."""


# -- statistics ------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _u_counts(n1: int, n2: int) -> np.ndarray:
    """Number of orderings of n1 x's and n2 y's with U = u (pairs with y after x), u = 0..n1*n2.

    The coefficients of the Gaussian binomial [n1 + n2 choose n1]_q, by the recursion on
    the largest element: an x adds no pair, a y is above all i x's and adds i, so
    N(i, j)(u) = N(i - 1, j)(u) + N(i, j - 1)(u - i); an (n1 + 1) x (n2 + 1) table of
    polynomials (float64: exact below 2**53, which holds for n1, n2 <= 25).
    """
    table: dict[tuple[int, int], np.ndarray] = {}
    for i in range(n1 + 1):
        for j in range(n2 + 1):
            if i == 0 or j == 0:
                table[i, j] = np.ones(1)
                continue
            a, b = table[i - 1, j], table[i, j - 1]  # last is an x (after all j y's: +0) or a y (after i x's: +i)
            out = np.zeros(i * j + 1)
            out[:len(a)] += a
            out[i:i + len(b)] += b
            table[i, j] = out
    return table[n1, n2]


def mann_whitney_greater(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided p-value of "y tends to be larger than x" (Mann-Whitney U).

    Exact without ties (sizes up to 25 each), else the normal approximation with tie and
    continuity corrections.

    >>> round(mann_whitney_greater(np.arange(5.0), np.arange(5.0) + 10), 6)  # 1 / C(10, 5)
    0.003968
    >>> mann_whitney_greater(np.arange(5.0) + 10, np.arange(5.0))
    1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return 1.0
    both = np.concatenate((x, y))
    ranks = _midranks(both)
    u = float(ranks[n1:].sum() - n2 * (n2 + 1) / 2)  # pairs with y > x, ties count 1/2
    tied = len(np.unique(both)) < len(both)
    if not tied and n1 <= 25 and n2 <= 25:
        counts = _u_counts(n1, n2)
        k = round(u)
        return float(min(1.0, counts[k:].sum() / counts.sum()))
    n = n1 + n2
    _, t = np.unique(both, return_counts=True)
    var = n1 * n2 / 12.0 * ((n + 1) - float((t**3 - t).sum()) / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return float(1.0 - NormalDist().cdf(z))


def _midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1, dtype=float)
    # average the ranks of equal values
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    if (counts > 1).any():
        mean_rank = first + (counts + 1) / 2.0
        ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def holm(p_values: list[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down method rejects at family-wise ``alpha``.

    >>> holm([0.001, 0.03, 0.004], 0.05)  # 0.001 <= 0.05/3, 0.004 <= 0.05/2, 0.03 > 0.05/1? no: <= 0.05
    [True, True, True]
    >>> holm([0.001, 0.03, 0.03], 0.05)  # 0.03 > 0.05/2 stops it
    [True, False, False]
    """
    m = len(p_values)
    reject = [False] * m
    for step, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        if p_values[i] > alpha / (m - step):
            break
        reject[i] = True
    return reject


def _need_per_block(label: str) -> int:
    """Samples a block needs for its percentile to lie beyond the bulk: ceil(1 / (1 - p))."""
    p = percent_of(label) / 100
    return 1 if p >= 1 else math.ceil(1 / (1 - p))


def _tail_count(label: str, n: int) -> float:
    return n * float(1 - percent_of(label) / 100)


# -- the steady window and the blocks -------------------------------------------------------

def steady_window(s: Samples, info: dict[str, Any] | None = None, settle: float = SETTLE_S) -> dict[str, Any]:
    """The stretch of a run between the ramp-up and the stop, ``settle`` seconds trimmed at each end.

    The ramp-up ends when Locust reported every user spawned (``run.json``'s
    ``spawning_complete``), or else at the first call of the last key to start (keys
    with three calls or more); the stop starts at ``run.json``'s ``stopping``, or else
    at the last planned call. Times are planned send times. Returns
    ``{start, end, duration_s, offset_s, how}`` (epoch seconds; ``offset_s`` from the
    first call); a window shorter than half the run falls back to the whole run.
    """
    if not len(s):
        return {"start": 0.0, "end": 0.0, "duration_s": 0.0, "offset_s": 0.0, "how": "empty run"}
    t_first, t_last = float(s.planned.min()), float(s.planned.max())
    info = info or {}
    how = []
    spawned = epoch_of(info.get("spawning_complete"))
    if spawned is not None and t_first <= spawned <= t_last:
        ramp_end = spawned
        how.append("ramp-up end from run.json")
    else:
        keys = s.key.astype(np.int64)
        first = np.full(int(keys.max()) + 1, np.inf)
        np.minimum.at(first, keys, s.planned)
        recurring = np.bincount(keys, minlength=len(first)) >= 3
        ramp_end = float(first[recurring].max()) if recurring.any() else t_first
        how.append("ramp-up end = first call of the last key to start")
    stopping = epoch_of(info.get("stopping"))
    stop = stopping if stopping is not None and ramp_end < stopping <= t_last + 1.0 else t_last
    start, end = ramp_end + settle, min(stop, t_last) - settle
    if end - start < 0.5 * (t_last - t_first):
        start, end = t_first, t_last
        how = ["whole run (too short to trim the ramp-up and the stop)"]
    else:
        how.append(f"{settle:g} s trimmed at each end")
    return {"start": start, "end": end, "duration_s": max(end - start, 0.0), "offset_s": start - t_first,
            "how": "; ".join(how)}


def _metric(s: Samples, idx: np.ndarray, metric: str) -> np.ndarray:
    if metric == "lateness":
        return s.sent[idx] - s.planned[idx]
    if metric == "corrected":
        return np.maximum(s.sent[idx] - s.planned[idx] + s.latency[idx], 0.0)
    return s.latency[idx]


class _Side:
    """One run's view of one operation: all its samples and its steady-window blocks."""

    def __init__(self, s: Samples, op: int | None, window: dict[str, Any], blocks: int,
                 labels: tuple[str, ...] = COMPARED) -> None:
        self.all = np.nonzero(s.op == op)[0] if op is not None else np.zeros(0, np.int64)
        self.s = s
        self.blocks = blocks
        t = s.planned[self.all]
        start, dur = window["start"], window["duration_s"]
        inside = (t >= start) & (t <= window["end"]) if dur > 0 else np.zeros(len(t), bool)
        self.inside = inside
        self.win = self.all[inside]
        blen = dur / blocks if dur > 0 else 1.0
        block = np.clip(((t[inside] - start) / blen).astype(np.int64), 0, blocks - 1)
        self.block_len = blen
        self.counts = np.bincount(block, minlength=blocks)
        self._order = np.argsort(block, kind="stable")
        self.bounds = np.concatenate(([0], np.cumsum(self.counts)))
        self.labels = labels
        self._values: dict[str, np.ndarray] = {}
        self._block_values: dict[str, dict[str, np.ndarray]] = {}

    def values(self, metric: str) -> np.ndarray:
        """The metric of every sample of the operation (the whole run)."""
        if metric not in self._values:
            self._values[metric] = _metric(self.s, self.all, metric)
        return self._values[metric]

    def block_stats(self, metric: str, label: str) -> np.ndarray:
        """The percentile of each block that has enough samples for it."""
        if metric not in self._block_values:
            vals = self.values(metric)[self.inside][self._order]
            per: dict[str, list[float]] = {lab: [] for lab in self.labels}
            for b in range(self.blocks):
                n = int(self.counts[b])
                if not n:
                    continue
                part = vals[self.bounds[b]:self.bounds[b + 1]]
                ranks = {lab: rank(lab, n) for lab in self.labels if n >= _need_per_block(lab)}
                if ranks:
                    part = np.partition(part, sorted(set(ranks.values())))  # exact order statistics, no full sort
                    for lab, r in ranks.items():
                        per[lab].append(float(part[r]))
            self._block_values[metric] = {lab: np.asarray(v) for lab, v in per.items()}
        return self._block_values[metric][label]


def _exact(values: np.ndarray, labels: tuple[str, ...]) -> dict[str, float | None]:
    """``exact_percentiles`` (the same order statistics) by one partition instead of a sort: 0.18 s
    against 1.2 s for 10 million values on the 2-core machine."""
    n = len(values)
    if n == 0:
        return {label: None for label in labels}
    ranks = {label: rank(label, n) for label in labels}
    part = np.partition(values, sorted(set(ranks.values())))
    return {label: float(part[r]) for label, r in ranks.items()}


# -- the comparison ------------------------------------------------------------------------

def _change(base: float | None, cur: float | None) -> float | None:
    if base is None or cur is None:
        return None
    if base == 0:
        return 0.0 if cur == 0 else math.inf
    return (cur - base) / base


def compare_samples(base: Samples, cur: Samples, threshold: float = THRESHOLD, min_change_ms: float = MIN_CHANGE_MS,
                    blocks: int = BLOCKS, alpha: float = ALPHA, percentiles: tuple[str, ...] = COMPARED,
                    base_info: dict[str, Any] | None = None, cur_info: dict[str, Any] | None = None,
                    allowance: float = 1.0) -> dict[str, Any]:
    """The comparison of two runs' samples (module docstring); ``compare_runs`` reads folders and calls this.

    ``allowance`` scales the allowed change in the block test (1: the floors, as
    documented; 0: any difference; for the calibration script's experiments).

    ``base_info``/``cur_info`` are the runs' ``run.json`` (for the ramp-up and stop times).
    Latencies in the result are seconds; ``change`` is relative; ``status`` of each
    statistic is "regression", "no regression", "not enough samples" or "generator late too".
    """
    if blocks < 2:
        raise ValueError(f"blocks {blocks}: expected 2 or more")
    opts = judge_options(threshold, min_change_ms, blocks, alpha, percentiles)
    min_blocks = max(2, math.ceil(0.7 * blocks))
    wb, wc = steady_window(base, base_info), steady_window(cur, cur_info)
    names = list(dict.fromkeys([*base.op_names, *cur.op_names]))
    rows: list[dict[str, Any]] = []
    tests: list[tuple[dict[str, Any], float]] = []  # (entry, p-value) of every statistic judged
    not_enough = 0
    floor_s = opts["min_change_ms"] / 1000.0
    for op in names:
        sb = _Side(base, base.op_index(op), wb, blocks, opts["percentiles"])
        sc = _Side(cur, cur.op_index(op), wc, blocks, opts["percentiles"])
        row: dict[str, Any] = {"op": op, "baseline_count": len(sb.all), "current_count": len(sc.all),
                               "baseline_window_count": len(sb.win), "current_window_count": len(sc.win)}
        if not len(sb.all) or not len(sc.all):
            row["note"] = "only in the current run" if not len(sb.all) else "only in the baseline run"
            rows.append(row)
            continue
        # throughput: per-block rates; the change is the steady-window rate's
        rate_b = len(sb.win) / wb["duration_s"] if wb["duration_s"] > 0 else None
        rate_c = len(sc.win) / wc["duration_s"] if wc["duration_s"] > 0 else None
        t: dict[str, Any] = {"baseline": rate_b, "current": rate_c, "change": _change(rate_b, rate_c),
                             "p_value": None, "regression": False}
        if min(len(sb.win), len(sc.win)) < MIN_RATE_SAMPLES_PER_BLOCK * blocks:
            t["status"] = "not enough samples"
            not_enough += 1
        else:
            # "current lower by more than the floor": the baseline's rates, less the allowed change, tend to be
            # larger than the current's
            t["p_value"] = mann_whitney_greater(sc.counts / sc.block_len,
                                                sb.counts / sb.block_len * (1 - allowance * opts["threshold"]))
            t["status"] = "no regression"
            tests.append((t, t["p_value"]))
        row["throughput"] = t
        # the generator's own lateness (sent - planned) at each percentile, for the generator guard below
        lb, lc = _exact(sb.values("lateness"), opts["percentiles"]), _exact(sc.values("lateness"), opts["percentiles"])
        row["lateness"] = {label: {"baseline": lb[label], "current": lc[label]} for label in opts["percentiles"]}
        for metric in METRICS:
            pb, pc = _exact(sb.values(metric), opts["percentiles"]), _exact(sc.values(metric), opts["percentiles"])
            out: dict[str, Any] = {}
            for label in opts["percentiles"]:
                vb_, vc_ = pb[label], pc[label]
                e: dict[str, Any] = {"baseline": vb_, "current": vc_, "change": _change(vb_, vc_),
                                     "delta": vc_ - vb_ if vb_ is not None and vc_ is not None else None,
                                     "p_value": None, "regression": False, "blocks": [0, 0]}
                enough = min(_tail_count(label, len(sb.win)), _tail_count(label, len(sc.win))) >= MIN_TAIL
                if enough:
                    xb, xc = sb.block_stats(metric, label), sc.block_stats(metric, label)
                    e["blocks"] = [len(xb), len(xc)]
                    enough = min(len(xb), len(xc)) >= min_blocks
                if not enough:
                    e["status"] = "not enough samples"
                    not_enough += 1
                else:
                    # worse by more than the allowed change, block against block (Kayenta's allowed effect size)
                    e["p_value"] = mann_whitney_greater(
                        np.maximum(xb * (1 + allowance * opts["threshold"]), xb + allowance * floor_s), xc)
                    e["status"] = "no regression"
                    tests.append((e, e["p_value"]))
                out[label] = e
            row[metric] = out
        rows.append(row)
    significant = holm([p for _, p in tests], opts["alpha"])
    for (entry, _), sig in zip(tests, significant):
        entry["significant"] = sig
        change = entry["change"]
        if change is None:
            continue
        if "delta" in entry:  # a latency percentile
            big = change > opts["threshold"] and entry["delta"] > floor_s
        else:
            big = change < -opts["threshold"]
        if sig and big:
            entry["regression"], entry["status"] = True, "regression"
    # the generator guard: a latency percentile is the target's only if the generator kept up as well as in the
    # baseline at that percentile; when its lateness there rose by more than the floors too, the run's own CPU
    # (a busy machine) can explain the change, and the statistic is "generator late too", never a regression
    generator_late = 0
    for row in rows:
        for metric in METRICS:
            for label, e in (row.get(metric) or {}).items():
                late = row["lateness"][label]
                if not e["regression"] or late["baseline"] is None or late["current"] is None:
                    continue
                rise = late["current"] - late["baseline"]
                if rise > floor_s and rise > opts["threshold"] * abs(late["baseline"]):
                    e["regression"], e["status"], e["generator_late_s"] = False, "generator late too", rise
                    generator_late += 1
    regressions: list[dict[str, Any]] = []
    for row in rows:
        if row.get("throughput", {}).get("regression"):
            t = row["throughput"]
            regressions.append({"op": row["op"], "metric": "throughput", "label": "req/s", "percentile": None,
                                "baseline": t["baseline"], "current": t["current"], "change": t["change"],
                                "p_value": t["p_value"]})
        for metric in METRICS:
            for label, e in (row.get(metric) or {}).items():
                if e["regression"]:
                    regressions.append({"op": row["op"], "metric": metric, "label": label, "percentile": label,
                                        "baseline": e["baseline"], "current": e["current"], "change": e["change"],
                                        "delta": e["delta"], "p_value": e["p_value"]})
    regressions.sort(key=lambda r: -abs(r["change"]) if r["change"] is not None and math.isfinite(r["change"]) else -1e9)
    verdict = "regression" if regressions else ("no regression" if tests and not generator_late else "undecided")
    return {"method": method_text(opts), "options": {**opts, "percentiles": list(opts["percentiles"]),
                                                      "min_blocks": min_blocks, "min_tail": MIN_TAIL},
            "threshold": opts["threshold"], "min_change_ms": opts["min_change_ms"],
            "windows": {"baseline": wb, "current": wc}, "tests": len(tests), "not_enough_samples": not_enough,
            "generator_late": generator_late,
            "operations": rows, "regressions": regressions, "verdict": verdict}


# -- run folders: identity and reading ------------------------------------------------------

def _target_text(target: Any) -> tuple[str, str]:
    """(what to show, what to compare) for a scenario's target section."""
    if not isinstance(target, dict) or target.get("kind", "emulator") == "emulator":
        return "embedded emulator", "emulator"
    url = str(target.get("url") or "")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    shown = f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path.rstrip('/')}"
    if host in LOOPBACK:
        return f"live {shown} (loopback)", "live loopback"
    return f"live {shown}", f"live {shown}"


def scenario_identity(scenario: dict[str, Any] | None) -> dict[str, Any] | None:
    """Name, hash of what defines the load, and target of a resolved scenario (as in ``scenario.yaml``)."""
    if not isinstance(scenario, dict):
        return None
    core = {k: v for k, v in scenario.items() if k not in IGNORED_SCENARIO_KEYS}

    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]

    shown, key = _target_text(scenario.get("target"))
    return {"scenario": str(scenario.get("name", "?")), "hash": digest(core), "target": shown, "target_key": key,
            "duration": scenario.get("duration"), "sections": {k: digest(v) for k, v in core.items()}}


def run_identity(run_dir: Path) -> dict[str, Any] | None:
    """``scenario_identity`` of a run folder's ``scenario.yaml`` (None when the folder has none)."""
    import yaml

    path = Path(run_dir) / "scenario.yaml"
    if not path.exists():
        return None
    try:
        return scenario_identity(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError:
        return None


def identity_problem(base: dict[str, Any] | None, cur: dict[str, Any] | None, base_name: str = "baseline",
                     cur_name: str = "current") -> str | None:
    """Why two runs are not comparable (different scenario or target), or None."""
    if base is None or cur is None:
        return None
    what = []
    if (base["scenario"], base["hash"]) != (cur["scenario"], cur["hash"]):
        what.append("scenarios")
    if base["target_key"] != cur["target_key"]:
        what.append("targets")
    if not what:
        return None
    sb, sc = base.get("sections") or {}, cur.get("sections") or {}
    differ = sorted(k for k in set(sb) | set(sc) if sb.get(k) != sc.get(k))
    detail = f" (the resolved scenarios differ in: {', '.join(differ)})" if differ else ""
    return (f"different {' and '.join(what)}: {base_name} is scenario '{base['scenario']}' ({base['hash']}) on "
            f"{base['target']}; {cur_name} is scenario '{cur['scenario']}' ({cur['hash']}) on {cur['target']}"
            f"{detail}")


def check_run_folder(path: Path, role: str) -> Path:
    """A run folder that exists and holds samples, else FileNotFoundError naming ``role``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{role} {path}: no such run folder")
    if not (path / "samples").is_dir():
        raise FileNotFoundError(f"{role} {path}: not a run folder (no samples/ in it)")
    return path


def compare_runs(baseline: Path, current: Path, threshold: float = THRESHOLD, min_change_ms: float = MIN_CHANGE_MS,
                 blocks: int = BLOCKS, alpha: float = ALPHA, percentiles: tuple[str, ...] = COMPARED,
                 force: bool = False) -> dict[str, Any]:
    """Compare two run folders per operation (module docstring); ``CompareRefused`` for runs of different
    scenarios or targets unless ``force``; FileNotFoundError for a missing folder.

    Returns ``compare_samples``'s result plus ``baseline``, ``current`` and ``identity``.
    """
    baseline, current = check_run_folder(baseline, "baseline"), check_run_folder(current, "current")
    ib, ic = run_identity(baseline), run_identity(current)
    problem = identity_problem(ib, ic, f"baseline {baseline}", f"current {current}")
    if problem and not force:
        raise CompareRefused(f"refusing to compare runs of {problem}. Pass --force to compare them anyway.")
    result = compare_samples(read_samples(baseline), read_samples(current), threshold, min_change_ms, blocks, alpha,
                             percentiles, _read_json(baseline / "run.json"), _read_json(current / "run.json"))
    return {"baseline": str(baseline), "current": str(current),
            "identity": {"baseline": ib, "current": ic, "problem": problem, "forced": bool(problem and force)},
            **result}


# -- text and CLI -------------------------------------------------------------------------

def _pct(change: float | None) -> str:
    if change is None:
        return "–"
    if math.isinf(change):
        return "+inf%"
    return "0.0%" if abs(change) < 0.0005 else f"{change:+.1%}"


def regression_text(r: dict[str, Any]) -> str:
    """One regression in words: ``device.sendState response p50: 51.8 -> 62.1 ms (+20.0%, +10.3 ms)``."""
    if r["metric"] == "throughput":
        return (f"{r['op']} throughput: {r['baseline']:.4g} -> {r['current']:.4g} req/s ({_pct(r['change'])})")
    delta = r.get("delta")
    extra = f", {delta * 1000:+.3g} ms" if delta is not None else ""
    return (f"{r['op']} {r['metric']} {r['label']}: {r['baseline'] * 1000:.4g} -> {r['current'] * 1000:.4g} ms "
            f"({_pct(r['change'])}{extra})")


def _window_text(w: dict[str, Any]) -> str:
    return f"{w['offset_s']:.1f} s + {w['duration_s']:.1f} s ({w['how']})"


def format_comparison(result: dict[str, Any]) -> str:
    """The comparison as terminal text: regressions first, one line per operation, the verdict last."""
    opts = result.get("options", {})
    ident = result.get("identity") or {}
    lines = [f"compare: baseline {result.get('baseline', '?')} -> current {result.get('current', '?')}"]
    if ident.get("baseline"):
        b = ident["baseline"]
        lines.append(f"  scenario '{b['scenario']}' ({b['hash']}) on {b['target']}")
    if ident.get("forced"):
        lines.append(f"  WARNING (--force): {ident['problem']}")
    w = result.get("windows", {})
    if w:
        lines.append(f"  steady windows: baseline {_window_text(w['baseline'])}; current {_window_text(w['current'])}")
    lines.append(f"  method: {result['method']}")
    for r in result["regressions"]:
        lines.append(f"  REGRESSION {regression_text(r)}")
    flagged = {r["op"] for r in result["regressions"]}
    ordered = ([row for row in result["operations"] if row["op"] in flagged]
               + [row for row in result["operations"] if row["op"] not in flagged])
    for row in ordered:
        if "throughput" not in row:
            lines.append(f"  {row['op']}: {row.get('note', '')}")
            continue
        parts = [f"throughput {_pct(row['throughput']['change'])}"]
        short = 0
        for metric in METRICS:
            shown = []
            for label, e in row[metric].items():
                if e["status"] == "not enough samples":
                    short += 1
                    continue
                late = " (generator late too)" if e["status"] == "generator late too" else ""
                if label in ("p50", "p99") or e["regression"] or late:
                    shown.append(f"{label} {_pct(e['change'])}{' REGRESSION' if e['regression'] else ''}{late}")
            if shown:
                parts.append(f"{metric} " + " ".join(shown))
        if row["throughput"]["status"] == "not enough samples":
            short += 1
            parts[0] = "throughput: not enough samples"
        if short:
            parts.append(f"not enough samples for {short} of {1 + sum(len(row[m]) for m in METRICS)}")
        lines.append(f"  {row['op']} ({row['baseline_count']:,} -> {row['current_count']:,} calls): " + ", ".join(parts))
    n_reg = len(result["regressions"])
    gen = result.get("generator_late", 0)
    tail = (f"{result['tests']} statistics judged, {result['not_enough_samples']} with not enough samples"
            + (f", {gen} worse but with the generator late too" if gen else "")
            + f"; floors {opts.get('threshold', result.get('threshold', 0)):.0%} and {opts.get('min_change_ms', 0):g} ms")
    if result["verdict"] == "regression":
        lines.append(f"verdict: REGRESSION ({n_reg} change{'s' if n_reg != 1 else ''} beyond the variation between "
                     f"blocks and the floors; {tail})")
    elif result["verdict"] == "undecided" and gen:
        lines.append(f"verdict: undecided: latency rose only where the generator itself was late by as much (a busy "
                     f"machine can explain it; re-run on a quieter one) ({tail})")
    elif result["verdict"] == "undecided":
        lines.append(f"verdict: undecided, nothing had enough samples to judge ({tail})")
    else:
        lines.append(f"verdict: no regression ({tail})")
    return "\n".join(lines)


HELP = f"""\
Compare two run folders of the same scenario and target, per operation.

A change is a regression only when all of these hold:
 1. each run has enough samples for the statistic: at least {MIN_TAIL} beyond the
    percentile in its steady window (p50 needs 20 samples, p99 1,000, p99.9 10,000);
    fewer: "not enough samples", counted and shown, never a regression;
 2. worse than allowed, stretch by stretch: each run's steady window (the ramp-up and
    the stop left out, 2 s trimmed at each end) is cut into --blocks time blocks; a
    one-sided Mann-Whitney U test finds the current run's blocks above the baseline's
    blocks plus the allowed change (the larger of threshold x baseline and
    min-change-ms; for the rate, below baseline x (1 - threshold)), with Holm's
    correction over every statistic compared (family-wise --alpha). The blocks are
    replicates: the test sees how much a run varies from one stretch to the next,
    not only sampling noise;
 3. the whole-run value changed by more than --threshold and, for a latency, by more
    than --min-change-ms;
 4. the generator kept up: a latency percentile whose rise comes with a rise of the
    generator's own lateness (sent - planned) at that percentile beyond the floors is
    "generator late too" (a busy machine can explain it), never a regression; if that
    is all that got worse, the verdict is "undecided".
Statistics: p50, p90, p95, p99, p99.9 of corrected latency (from the planned send) and
of response time (from the actual send), and the throughput (per-block rates).

Runs of different scenarios or targets are refused unless --force (a target on loopback
is the same target whatever its port). Calibration on a busy 2-core machine
(bench/compare_calibration.py, docs/BENCHMARKS.md): 30 s runs of 60 devices reporting
every second to a target answering in ~50 ms; 0 of 25 identical pairs flagged, 25 of 25
flagged with state calls 20 % slower, 25 of 25 with 30 ms slower. Shorter or smaller
runs have fewer samples: more statistics are "not enough samples", small changes go
unseen. Recommended for CI: runs of at least 30 s, on the machine of the baseline.

Exit codes: 0 no regression (or undecided), 1 a regression, 2 bad input
(a missing folder, different scenarios or targets without --force, bad options)."""


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="losant-load compare", description=HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", type=Path, help="the earlier run folder, e.g. reports/<run-id>")
    p.add_argument("current", type=Path, help="the run folder to judge")
    p.add_argument("--threshold", type=float, default=THRESHOLD,
                   help="relative floor: a change must exceed this fraction of the baseline (default: %(default)s = 10%%)")
    p.add_argument("--min-change-ms", type=float, default=MIN_CHANGE_MS,
                   help="absolute floor for latencies, in ms (default: %(default)s)")
    p.add_argument("--blocks", type=int, default=BLOCKS,
                   help="time blocks per run's steady window, the replicates of the test, 6 to 25; fewer blocks "
                        "cannot reach significance over many tests (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=ALPHA,
                   help="family-wise false-alarm level of the test, Holm-corrected (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="compare even runs of different scenarios or targets")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return p


def validate_options(threshold: float, min_change_ms: float, blocks: int = BLOCKS, alpha: float = ALPHA) -> str | None:
    """What is wrong with the options, or None."""
    if not 0 <= threshold < 10:
        return f"--threshold {threshold} is not allowed; expected a fraction such as 0.1"
    if not 0 <= min_change_ms < 1e6:
        return f"--min-change-ms {min_change_ms} is not allowed; expected milliseconds such as 2"
    if not 6 <= blocks <= 25:  # 6 vs 6 blocks: the smallest p-value is 1/924, enough for a few tests
        return f"--blocks {blocks} is not allowed; expected 6 to 25"
    if not 0 < alpha < 0.5:
        return f"--alpha {alpha} is not allowed; expected a level such as 0.01"
    return None


def main_compare(argv: list[str] | None = None) -> int:
    """``losant-load compare BASELINE CURRENT [options]``: exit 1 on regression, 0 otherwise, 2 on bad input."""
    args = compare_parser().parse_args(argv)
    problem = validate_options(args.threshold, args.min_change_ms, args.blocks, args.alpha)
    if problem:
        print(f"losant-load compare: {problem}", file=sys.stderr)
        return 2
    try:
        result = compare_runs(args.baseline, args.current, args.threshold, args.min_change_ms, args.blocks,
                              args.alpha, force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        print(f"losant-load compare: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(jsonable(result), indent=2, allow_nan=False, default=str) if args.json else format_comparison(result))
    return 1 if result["verdict"] == "regression" else 0


def jsonable(obj: Any) -> Any:
    """The result with inf/NaN replaced by None, so strict JSON accepts it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def regression_block(result: dict[str, Any], top: int = 5) -> dict[str, Any]:
    """``summary.json``'s ``regression`` block for a run with ``--baseline`` (docs/SUMMARY.md)."""
    items = []
    for r in result["regressions"][:top]:
        lat = r["metric"] != "throughput"
        items.append({"op": r["op"], "metric": r["metric"], "percentile": r.get("percentile"),
                      "baseline_ms": r["baseline"] * 1000 if lat else None,
                      "current_ms": r["current"] * 1000 if lat else None,
                      "baseline_rps": None if lat else r["baseline"], "current_rps": None if lat else r["current"],
                      "change": r["change"], "text": regression_text(r)})
    return jsonable({"baseline": result.get("baseline"), "verdict": result["verdict"],
                     "regressions_total": len(result["regressions"]), "top": items,
                     "not_enough_samples": result["not_enough_samples"], "judged": result["tests"],
                     "generator_late": result.get("generator_late", 0),
                     "threshold": result["threshold"], "min_change_ms": result["min_change_ms"],
                     "method": result["method"]})


def apply_baseline(summary: dict[str, Any], baseline: Path, run_dir: Path, **options: Any) -> dict[str, Any] | None:
    """Judge a finished run against ``--baseline``: one verdict everywhere.

    Sets ``summary["regression"]`` (``regression_block``); a regression makes the run
    fail (``passed: false``, ``"regression"`` in ``failed_because``), so the terminal,
    summary.json, the report's badge and the exit code agree. A baseline that cannot be
    compared leaves ``regression.verdict = "not compared"`` with an ``error`` (the run
    then exits 2). Returns the comparison (for the report), or None.
    """
    try:
        result = compare_runs(baseline, run_dir, **options)
    except (FileNotFoundError, ValueError) as exc:
        summary["regression"] = {"baseline": str(baseline), "verdict": "not compared", "error": str(exc),
                                 "regressions_total": 0, "top": [], "not_enough_samples": 0}
        # the run promised a judgement against the baseline and could not make one: it does not pass
        summary["passed"] = False
        because = [str(x) for x in summary.get("failed_because") or []]
        summary["failed_because"] = [*because, "baseline not compared"]
        return None
    summary["regression"] = regression_block(result)
    if result["verdict"] == "regression":
        summary["passed"] = False
        because = [str(x) for x in summary.get("failed_because") or []]
        if "regression" not in because:
            because.append("regression")
        summary["failed_because"] = because
    return result


# -- report section ------------------------------------------------------------------------

def comparison_section(result: dict[str, Any], base_fig: Any, cur_fig: Any) -> str:
    """The report's comparison section: verdict, per-op change table, overlay charts.

    ``base_fig``/``cur_fig`` are ``figures.Figures`` of the two runs (for the overlays).
    """
    from harness.report import charts
    from harness.report.tables import cell, esc, ms, table

    regs = result["regressions"]
    opts = result.get("options", {})
    floors = f"floors {result['threshold']:.0%} and {opts.get('min_change_ms', MIN_CHANGE_MS):g} ms"
    if regs:
        text = (f"REGRESSION: {len(regs)} change{'s' if len(regs) != 1 else ''} beyond the variation between "
                f"blocks and the {floors}")
    elif result["verdict"] == "undecided" and result.get("generator_late"):
        text = (f"Undecided: {result['generator_late']} latency statistic(s) rose only where the generator itself "
                "was late by as much (a busy machine can explain it)")
    elif result["verdict"] == "undecided":
        text = "Undecided: no statistic had enough samples to judge"
    else:
        text = "No regression"
    ident = result.get("identity") or {}
    warn = (f'<div class="alert warn">Compared with --force: {esc(ident["problem"])}</div>'
            if ident.get("forced") else "")
    head = (f'<div class="alert {"fail" if regs else "ok"}" id="comparison-verdict">{esc(text)}'
            f" against baseline {esc(result.get('baseline', ''))} ({result['tests']} statistics judged, "
            f"{result['not_enough_samples']} with not enough samples).</div>{warn}"
            f'<p class="legend-note">Method: {esc(result["method"])}. Cells: change of the whole-run value '
            "(baseline → current); n/a = not enough samples; gen. = worse, but the generator was late by as much "
            "(not a regression).</p>")
    body = head
    labels = opts.get("percentiles") or list(COMPARED)
    for metric, caption in (("corrected", "Corrected latency (from planned send): change vs baseline"),
                            ("response", "Response time (from actual send): change vs baseline")):
        rows = []
        for row in result["operations"]:
            if "throughput" not in row:
                rows.append(f"<tr>{cell(row['op'], 'op')}{cell(row.get('note', ''))}" + "<td></td>" * len(labels)
                            + "</tr>")
                continue
            t = row["throughput"]
            tt = (f"{t['baseline']:.2f} -> {t['current']:.2f} req/s" if t["baseline"] is not None
                  and t["current"] is not None else "")
            cells = [cell(row["op"], "op"),
                     cell("n/a" if t["status"] == "not enough samples" else _pct(t["change"]),
                          "n bad" if t["regression"] else "n", title=tt)]
            for label in labels:
                c = row[metric].get(label)
                if c is None:
                    cells.append(cell(""))
                    continue
                value = f"{_pct(c['change'])} ({ms(c['baseline'])} → {ms(c['current'])})"
                if c["status"] == "not enough samples":
                    value = f"n/a ({ms(c['baseline'])} → {ms(c['current'])})"
                elif c["status"] == "generator late too":
                    value += " gen."
                p = c.get("p_value")
                cells.append(cell(value, "n bad" if c["regression"] else ("n muted" if c["status"] ==
                                                                           "not enough samples" else "n"),
                                  title=(f"one-sided Mann-Whitney p = {p:.2g} over {c['blocks'][0]} vs "
                                         f"{c['blocks'][1]} blocks" if p is not None else c["status"])))
            rows.append(f'<tr data-op="{esc(row["op"])}" data-kind="{metric}">{"".join(cells)}</tr>')
        headers = ["operation", "throughput"] + [f"{p} ms" for p in labels]
        body += table(headers, rows, cls=f"comparison {metric}", caption=caption)
    if regs:
        items = "".join(f"<li>{esc(regression_text(r))}</li>" for r in regs)
        body += f'<h3>Regressions</h3><ul class="bad">{items}</ul>'
    if base_fig is not None and cur_fig is not None:
        def total(fig: Any) -> tuple[np.ndarray, np.ndarray]:
            rps = sum(fig.rps.values()) if fig.rps else np.zeros(len(fig.times))
            return fig.times, rps

        shown = [op for op in cur_fig.ops if op in base_fig.curves][:6]
        body += (f'<img class="chart" src="{charts.overlay_throughput(total(base_fig), total(cur_fig))}" alt="throughput overlay">'
                 f'<img class="chart" src="{charts.distribution(cur_fig.curves, shown, base_fig.curves, cur_fig.colors)}" '
                 'alt="latency distribution overlay">')
    return f'<section id="comparison"><h2>Comparison with baseline</h2>{body}</section>'
