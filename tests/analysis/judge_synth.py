"""Synthetic runs with known arrival orders, and a slow reference of the judge's rule.

``serve`` is a tiny throttling server: it decides every call at a known instant
sigma (its own arrival order) with a sliding log, fixed windows or a token bucket,
and answers at a known instant; the judge only ever sees sent, latency and status.

``brute_could`` / ``brute_sure`` implement the rule of ``harness/analysis/windows.py``
literally (each call placed anywhere in its own [sent, answer] interval, independently)
by evaluating every instant where a count can change, so the vectorised judge can be
checked against them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.record import Samples, classify

BASE = 1_700_000_010.0  # a multiple of 15 s (and of 10 s): fixed windows start at BASE + k W


@dataclass
class Call:
    key: int
    sent: float  # seconds after BASE
    decided: float  # sigma: when the server decides (>= sent)
    answered: float  # when the answer is back (>= decided)
    ok: bool | None = None  # the server's decision; None: no answer (status 0)
    lost: bool = False  # the answer never came back


def decide(calls: Sequence[Call], count: int, window: float, model: str = "sliding") -> None:
    """Decide every call in sigma order, per key, like ``harness/emulator/throttle.py``."""
    state: dict[int, object] = {}
    for c in sorted(calls, key=lambda c: (c.decided, c.sent)):
        t = BASE + c.decided
        if model == "sliding":
            log = state.setdefault(c.key, deque())
            assert isinstance(log, deque)
            while log and log[0] <= t - window:
                log.popleft()
            c.ok = len(log) < count
            if c.ok:
                log.append(t)
        elif model == "fixed":
            idx, used = state.get(c.key, (None, 0))  # type: ignore[misc]
            k = math.floor(t / window)
            if k != idx:
                idx, used = k, 0
            c.ok = used < count
            state[c.key] = (idx, used + c.ok)
        elif model == "token_bucket":
            tokens, at = state.get(c.key, (float(count), t))  # type: ignore[misc]
            tokens = min(float(count), tokens + (t - at) * count / window)
            c.ok = tokens >= 1.0 - 1e-9
            state[c.key] = (tokens - c.ok, t)
        else:
            raise ValueError(model)


def to_samples(calls: Sequence[Call], op: str = "device.sendState") -> Samples:
    keys = sorted({c.key for c in calls})
    code = {k: i for i, k in enumerate(keys)}
    rows = []
    for c in sorted(calls, key=lambda c: c.sent):
        status = 0 if c.lost else (200 if c.ok else 429)
        rows.append((0, code[c.key], BASE + c.sent, BASE + c.sent, c.answered - c.sent, status, 20,
                     classify(status, ConnectionError() if c.lost else None)))
    cols = list(zip(*rows))
    return Samples(*(np.array(col) for col in cols), op_names=(op,), key_names=tuple(f"dev-{k}" for k in keys))


def steady(keys: int, interval: float, duration: float, stagger: float = 0.05, start: float = 0.0,
           decide_after: float = 0.002, answer_after: float = 0.003) -> list[Call]:
    """Each key sends every ``interval`` s; decided ``decide_after`` after sending, answered after that."""
    out = []
    for k in range(keys):
        n = round(duration / interval)
        for i in range(n):
            s = start + k * stagger + i * interval
            out.append(Call(k, s, s + decide_after, s + decide_after + answer_after))
    return out


# --- the rule, literally (slow) ----------------------------------------------------------------------

def _bounds(samples: Samples, slack: float) -> tuple[np.ndarray, np.ndarray]:
    return samples.sent - slack, samples.sent + samples.latency + slack


def brute_could(samples: Samples, x: int, count_window: float, model: str = "sliding", slack: float = 0.0,
                phase: float = 0.0) -> int:
    """max over sigma_X of the accepted-or-unknown calls of X's key that can be in its window before it."""
    s, e = _bounds(samples, slack)
    same = np.nonzero((samples.key == samples.key[x]) & (samples.status != 429))[0]
    same = same[same != x]
    w = count_window
    points = {s[x], e[x]} | {p for i in same for p in (s[i], e[i] + w, e[i], s[i] + w) if s[x] <= p <= e[x]}
    if model == "fixed":
        points |= {phase + (math.floor((p - phase) / w) + 1) * w - 1e-9 for p in (s[x],)
                   if phase + (math.floor((p - phase) / w) + 1) * w <= e[x]}
    best = 0
    for p in points:
        if model == "sliding":
            n = sum(1 for i in same if s[i] <= p and e[i] >= p - w)
        else:
            start = phase + math.floor((p - phase) / w) * w
            n = sum(1 for i in same if s[i] <= p and e[i] >= start)
        best = max(best, n)
    return best


def brute_sure(samples: Samples, x: int, count_window: float, model: str = "sliding", slack: float = 0.0,
               phase: float = 0.0) -> int:
    """min over sigma_X of the accepted calls of X's key surely in its window before it."""
    s, e = _bounds(samples, slack)
    same = np.nonzero((samples.key == samples.key[x]) & (samples.status != 429) & (samples.status != 0))[0]
    same = same[same != x]
    w = count_window
    points = {s[x], e[x]} | {p for i in same for p in (s[i] + w, e[i]) if s[x] <= p <= e[x]}
    worst = None
    for p in points:
        if model == "sliding":
            n = sum(1 for i in same if e[i] < p < s[i] + w)
        else:
            start = phase + math.floor((p - phase) / w) * w
            if phase + math.floor((s[x] - phase) / w) * w != start:
                n = 0  # X may be in the next window, where nothing is sure
            else:
                n = sum(1 for i in same if s[i] > start and e[i] < p)
        worst = n if worst is None else min(worst, n)
    return int(worst or 0)


def tokens_at(accepted: Sequence[float], t: float, count: int, window: float) -> float:
    """Tokens of a bucket (full before the first call) just before t, given accepted times."""
    tokens, at = float(count), None
    for b in sorted(a for a in accepted if a < t):
        if at is not None:
            tokens = min(float(count), tokens + (b - at) * count / window)
        tokens -= 1.0
        at = b
    if at is not None:
        tokens = min(float(count), tokens + (t - at) * count / window)
    return tokens
