"""Synthetic runs for the analysis tests: a slow, obviously-correct throttling target.

The target decides each call in arrival order with plain Python (a deque for the
sliding log, a counter for fixed windows, a float for the token bucket), the way
``harness/emulator/throttle.py`` does, but with its own threshold so tests can build
targets that throttle early (25), late (35) or right (30).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from harness.record import Samples, classify

BASE = 1_700_000_010.0  # a multiple of 15 s, so fixed windows start at BASE + 15 k


def target_decisions(arrivals: list[float], threshold: int, window: float, model: str = "sliding",
                     refill_count: int | None = None) -> list[bool]:
    """Accept/refuse each call (arrivals sorted) like a server with ``threshold`` per ``window``."""
    out: list[bool] = []
    if model == "sliding":
        log: deque[float] = deque()
        for t in arrivals:
            while log and log[0] <= t - window:
                log.popleft()
            ok = len(log) < threshold
            if ok:
                log.append(t)
            out.append(ok)
    elif model == "fixed":
        index, used = None, 0
        for t in arrivals:
            k = math.floor(t / window)
            if k != index:
                index, used = k, 0
            ok = used < threshold
            used += ok
            out.append(ok)
    elif model == "token_bucket":
        rate = (refill_count or threshold) / window
        tokens, at = float(threshold), None
        for t in arrivals:
            if at is not None:
                tokens = min(float(threshold), tokens + (t - at) * rate)
            at = t
            ok = tokens >= 1.0
            if ok:
                tokens -= 1.0
            out.append(ok)
    else:
        raise ValueError(model)
    return out


def run(keys: dict[str, list[float]], threshold: int = 30, window: float = 15.0, model: str = "sliding",
        op: str = "device.sendState", latency: float = 0.01, lateness: float = 0.0) -> Samples:
    """Samples of calls at the given planned times (seconds after BASE) per key.

    Each call is sent ``lateness`` after plan and arrives exactly mid-flight
    (sent + latency / 2), so the analysis' arrival estimate is exact.
    """
    rows = []
    names = sorted(keys)
    for k, name in enumerate(names):
        planned = [BASE + t for t in keys[name]]
        sent = [p + lateness for p in planned]
        decisions = target_decisions([s + latency / 2 for s in sent], threshold, window, model)
        for p, s, ok in zip(planned, sent, decisions):
            status = 200 if ok else 429
            rows.append((0, k, p, s, latency, status, 20, classify(status, None)))
    cols = list(zip(*rows)) if rows else [[]] * 8
    return Samples(*(np.array(c) for c in cols), op_names=(op,), key_names=tuple(names))


def every(interval: float, duration: float, start: float = 0.0) -> list[float]:
    """Planned times start, start + interval, ... below start + duration."""
    n = int(round(duration / interval))
    return [start + i * interval for i in range(n)]
