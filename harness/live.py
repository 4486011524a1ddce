"""The live view of a running test (the web UI's Throttles tab): recent samples → per-limit figures.

Pure: a function of the samples still in memory, the limits table and the time, so
the web UI's poll never touches the hot path.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.limits import LimitsTable
from harness.record import Samples

BUSIEST = 5
RECENT = 10.0  # seconds of samples the live percentiles cover
HISTORY_STEP = 15.0  # seconds per bar of a limit's short history
HISTORY_STEPS = 20  # bars: the last 5 minutes


def live_snapshot(samples: Samples, table: LimitsTable, now: float | None = None) -> dict[str, Any]:
    """Per rate limit: calls in the current window for the busiest keys; plus recent p99s."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {"limits": [], "corrected_p99_ms": {}, "lateness_p99_ms": None,
                           "throttled_total": int((samples.status == 429).sum()), "updated": now}
    if not len(samples.op):
        return out
    names = list(samples.op_names)
    for lim in table.rate_limits():
        codes = [names.index(op) for op in lim.operations if op in names]
        if not codes or not lim.window:
            continue
        of_limit = np.isin(samples.op, codes)
        recent = of_limit & (samples.sent >= now - lim.window)
        keys, counts = np.unique(samples.key[recent], return_counts=True)
        top = np.argsort(counts)[::-1][:BUSIEST]
        out["limits"].append({
            "name": lim.name, "count": lim.count, "window": lim.window,
            "throttled": int((samples.status[of_limit] == 429).sum()),
            "busiest": [{"key": samples.key_names[int(keys[i])], "calls": int(counts[i])} for i in top],
            "history": history(samples.sent[of_limit], samples.status[of_limit] == 429, now),
        })
    window = samples.sent >= now - RECENT
    if window.any():
        late = (samples.sent - samples.planned)[window]
        out["lateness_p99_ms"] = float(np.quantile(late, 0.99, method="inverted_cdf") * 1000)
        corrected = (samples.sent - samples.planned + samples.latency)[window]
        ops = samples.op[window]
        for code in np.unique(ops):
            vals = corrected[ops == code]
            out["corrected_p99_ms"][names[int(code)]] = float(np.quantile(vals, 0.99, method="inverted_cdf") * 1000)
    return out


def history(sent: np.ndarray, throttled: np.ndarray, now: float, step: float = HISTORY_STEP,
            steps: int = HISTORY_STEPS) -> dict[str, Any]:
    """Calls and 429s per ``step`` seconds over the last ``steps`` steps, oldest first (one pass).

    >>> h = history(np.array([1.0, 2.0, 16.0, 29.0]), np.array([False, False, True, False]), now=30.0, steps=2)
    >>> h["calls"], h["throttled"]
    ([2, 2], [0, 1])
    """
    edges = now - step * np.arange(steps, -1, -1, dtype=np.float64)
    calls, _ = np.histogram(sent, bins=edges)
    refused, _ = np.histogram(sent[throttled], bins=edges)
    return {"step": step, "calls": [int(x) for x in calls], "throttled": [int(x) for x in refused]}
