"""Window-model arithmetic for throttle conformance, vectorised over all keys at once.

The server decides on the *arrival* of a call, which the client never sees: it lies
somewhere in ``[sent, sent + latency]``. We estimate it as the midpoint
``a = sent + latency / 2`` and carry a tolerance ``tol`` (seconds) for the error
between two estimates (each is off by at most half its latency, so a pair by at most
the larger latency; conformance uses the limit's p99 latency, at least 1 ms).

Every call is placed on one sorted line: ``comp = seg * stride + (a - a0) + margin``
where ``seg`` is the dense rank of its key. ``margin`` (2 windows + 2 tol + 1 s) and
``stride`` (run span + 2 margins) keep each key's calls, and every window query
around them, clear of its neighbours, so "accepted calls of this key in [x, y)" is
two ``searchsorted`` on one array. Float precision: ``comp`` reaches keys x stride,
about 1e9 for 100k keys over an hour, where a float64 step is 1e-7 s.

For each call the model answers three questions (``Judgement``):

- ``est``: accepted calls the server would have counted before it (tol = 0), or the
  tokens left for a token bucket;
- ``surely_full``: even with every timing error in the call's favour the limit was
  already used up (an accepted call with this set is a *missed throttle*);
- ``could_full``: with every timing error against it, and counting calls that got no
  answer as accepted, the limit could have been used up (a 429 without it is a
  *false throttle*).

Models (the emulator's ``harness/emulator/throttle.py`` implements the same three):

- sliding: a call at t is accepted iff fewer than ``count`` accepted calls arrived
  in ``(t - window, t)``;
- fixed: windows ``[phase + k*window, phase + (k+1)*window)``; a call is accepted
  iff fewer than ``count`` accepted calls arrived earlier in its window;
- token bucket: capacity C = ``count``, refill r = count / window per second, full at
  a key's first accepted call. Tokens just before time t, after m accepted calls at
  b_0 < ... < b_{m-1}, are ``T(t) = min(C, min_k [C - (m - k) + r (t - b_k)])``:
  between b_k and t the bucket spent m - k tokens and gained at most r (t - b_k),
  and the k at which it was last full makes that exact. Rewritten,
  ``T(t) = min(C, C - m + r t + P[m-1])`` with the prefix minimum
  ``P[j] = min_{k<=j} (k - r b_k)``, computed for all keys by one
  ``np.minimum.accumulate`` after shifting key s down by s * BIG (BIG > the range
  of the values, so each key's run starts below everything before it).
  Moving every b_k earlier and t later by tol raises T by at most 2 r tol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODELS = ("sliding", "fixed", "token_bucket")


@dataclass
class KeyedCalls:
    """The calls of one limit, sorted by (key, estimated arrival).

    Only the composite coordinate and the status are gathered into sorted order (a
    random gather over millions of rows is the expensive step); key and arrival are
    recovered from ``comp`` arithmetically, and sample positions on demand.
    """

    order: np.ndarray  # sorted position -> position in ``base``
    base: np.ndarray  # position of each (unsorted) call in the run's samples
    comp: np.ndarray  # composite coordinate (sorted)
    accepted: np.ndarray  # bool: answered and not 429 (the server counted it)
    unknown: np.ndarray  # bool: no answer (it may have been counted)
    throttled: np.ndarray  # bool: 429
    stride: float
    a0: float
    margin: float

    def __len__(self) -> int:
        return len(self.comp)

    @property
    def seg(self) -> np.ndarray:
        """Key code per call: comp lies in [seg*stride + margin, (seg+1)*stride - margin]."""
        if getattr(self, "_seg", None) is None:
            self._seg = np.floor(self.comp / self.stride).astype(np.int64)
        return self._seg

    @property
    def arrival(self) -> np.ndarray:
        return self.comp - self.seg * self.stride - self.margin + self.a0

    def arrival_at(self, pos: np.ndarray) -> np.ndarray:
        c = self.comp[pos]
        return c - np.floor(c / self.stride) * self.stride - self.margin + self.a0

    def index_at(self, mask: np.ndarray) -> np.ndarray:
        """Sample positions of the sorted calls selected by a mask (or positions)."""
        return self.base[self.order[mask]]

    def to_comp(self, seg: np.ndarray, t: np.ndarray) -> np.ndarray:
        return seg * self.stride + (t - self.a0) + self.margin


def arrange(index: np.ndarray, key: np.ndarray, sent: np.ndarray, latency: np.ndarray, status: np.ndarray,
            window: float, tol: float) -> KeyedCalls:
    """Sort one limit's calls onto the composite line (see the module docstring).

    The recorder's key codes are already small dense integers, so they serve as the
    segment directly (unused codes leave empty stretches of the line, which is free).
    """
    arrival = sent + latency / 2
    a0 = float(arrival.min()) if len(arrival) else 0.0
    span = float(arrival.max()) - a0 if len(arrival) else 0.0
    margin = 2 * window + 2 * tol + 1.0
    stride = span + 2 * margin
    comp = key * stride + (arrival - a0) + margin
    order = np.argsort(comp, kind="stable")  # timsort: runs of each key are already in time order
    st = status[order]
    return KeyedCalls(order=order, base=index, comp=comp[order], accepted=(st != 429) & (st != 0),
                      unknown=st == 0, throttled=st == 429, stride=stride, a0=a0, margin=margin)


def _count(sorted_comp: np.ndarray, lo: np.ndarray, hi: np.ndarray, lo_side: str = "left",
           hi_side: str = "left") -> np.ndarray:
    return np.searchsorted(sorted_comp, hi, hi_side) - np.searchsorted(sorted_comp, lo, lo_side)


@dataclass
class Judgement:
    est: np.ndarray
    surely_full: np.ndarray
    could_full: np.ndarray


def judge(calls: KeyedCalls, model: str, count: int, window: float, tol: float, phase: float = 0.0) -> Judgement:
    """Answer est, surely_full (accepted calls) and could_full (429s) under one model.

    Each question is only asked where a finding could follow: ``est`` is NaN for calls
    that got no answer, ``surely_full`` False for calls not accepted and ``could_full``
    False for calls not throttled. That keeps the binary searches to one or two passes
    over the accepted calls, the bulk of a run.
    """
    c = calls.comp
    a_idx = np.nonzero(calls.accepted)[0]
    t_idx = np.nonzero(calls.throttled)[0]
    acc = c[a_idx]  # accepted composites, sorted; accepted call i is acc[i]
    ct = c[t_idx]
    maybe = c[calls.accepted | calls.unknown] if calls.unknown.any() else acc
    est = np.full(len(c), np.nan)
    surely = np.zeros(len(c), bool)
    could = np.zeros(len(c), bool)
    rank = np.arange(len(acc))  # accepted calls strictly before accepted call i (ties aside)
    t_before = np.searchsorted(acc, ct, "left")
    if model == "sliding":
        est[a_idx] = rank - np.searchsorted(acc, acc - window, "right")
        est[t_idx] = t_before - np.searchsorted(acc, ct - window, "right")
        # at least ``count`` accepted in (x, y) iff the count-th accepted before y is after x:
        # one search for y, then a look-up, instead of a second search for x
        back = np.searchsorted(acc, acc - tol, "left") - count
        ok = back >= 0
        surely[a_idx[ok]] = acc[back[ok]] > acc[ok] - window + tol
        could[t_idx] = _count(maybe, ct - window - tol, ct + tol) >= count
        return Judgement(est, surely, could)
    if model == "fixed":
        a = calls.arrival
        start = phase + np.floor((a - phase) / window) * window
        ws = calls.to_comp(calls.seg, start)
        near_start = a - start < tol
        near_end = start + window - a < tol
        wa, wt = ws[a_idx], ws[t_idx]
        est[a_idx] = rank - np.searchsorted(acc, wa, "left")
        est[t_idx] = t_before - np.searchsorted(acc, wt, "left")
        surely[a_idx] = (_count(acc, wa + tol, acc - tol) >= count) & ~near_start[a_idx] & ~near_end[a_idx]
        could[t_idx] = (_count(maybe, wt - tol, ct + tol) >= count) | (
            near_start[t_idx] & (_count(maybe, wt - window - tol, ct + tol) >= count))
        return Judgement(est, surely, could)
    if model == "token_bucket":
        rate = count / window
        seg = calls.seg
        est[a_idx] = _tokens(calls, calls.accepted, acc, seg[a_idx], count, rate)
        est[t_idx] = _tokens(calls, calls.accepted, ct, seg[t_idx], count, rate)
        surely[a_idx] = _tokens(calls, calls.accepted, acc - tol, seg[a_idx], count, rate, shift=tol) \
            + 2 * rate * tol < 1 - 1e-9
        could[t_idx] = _tokens(calls, calls.accepted | calls.unknown, ct + tol, seg[t_idx], count, rate,
                               shift=-tol) - 2 * rate * tol < 1 - 1e-9
        return Judgement(est, surely, could)
    raise ValueError(f"unknown window model {model!r}; expected one of {', '.join(MODELS)}")


def _tokens(calls: KeyedCalls, counted: np.ndarray, query: np.ndarray, qseg: np.ndarray, capacity: int,
            rate: float, shift: float = 0.0) -> np.ndarray:
    """Tokens left just before each query point (same key as the call at that position).

    ``query`` is in composite coordinates (the call's own ``comp``, moved by the
    tolerance); ``shift`` moves it back to the call's time for the refill term.
    """
    acc = calls.comp[counted]
    acc_seg = calls.seg[counted]
    # local time of accepted calls and queries: comp without the key offset
    b = acc - acc_seg * calls.stride
    t = query + shift - qseg * calls.stride
    first = np.searchsorted(acc_seg, np.arange(int(calls.seg.max()) + 1 if len(calls) else 0), "left")
    k = np.arange(len(acc)) - first[acc_seg] if len(acc) else np.zeros(0, np.int64)
    v = k - rate * b
    prefix = np.zeros(0)
    if len(v):
        big = float(v.max() - v.min()) + 1.0
        prefix = np.minimum.accumulate(v - acc_seg * big) + acc_seg * big
    pos = np.searchsorted(acc, query, "left")  # accepted calls before the query, all keys
    m = pos - first[qseg] if len(first) else np.zeros(len(query), np.int64)
    m = np.maximum(m, 0)
    level = np.full(len(query), float(capacity))
    has = m > 0
    level[has] = np.minimum(capacity, capacity - m[has] + rate * t[has] + prefix[pos[has] - 1])
    return level
