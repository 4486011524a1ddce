"""Window-model arithmetic for throttle conformance, vectorised over all keys at once.

The server decides on the *arrival* of a call, which the client never sees: it lies
somewhere in ``[sent, sent + latency]``. We estimate it as the midpoint
``a = sent + latency / 2`` and carry a tolerance ``tol`` (seconds) for the error
between two estimates (each is off by at most half its latency, so a pair by at most
the larger latency; conformance uses the limit's p99 latency, at least 1 ms).

Every call is placed on one line: ``comp = key * stride + (a - a0) + margin``
where ``key`` is the recorder's key code. ``margin`` (2 windows + 2 tol + 1 s) and
``stride`` (run span + 2 margins) keep each key's calls, and every window query
around them, clear of its neighbours, so "accepted calls of this key in [x, y)" is
two ``searchsorted`` on one array. Float precision: ``comp`` reaches keys x stride,
about 1e9 for 100k keys over an hour, where a float64 step is 1e-7 s.

Accepted calls, 429s and calls without an answer are sorted separately (``np.sort``
of float64 is vectorised and much cheaper than an ``argsort`` plus gathers over
millions of rows); the sample position of an accepted call is only looked up
(one argsort) when it turns out to be a finding.

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

from dataclasses import dataclass, field

import numpy as np

MODELS = ("sliding", "fixed", "token_bucket")


@dataclass
class KeyedCalls:
    """One limit's calls on the composite line, split by outcome, each part sorted."""

    acc: np.ndarray  # composites of accepted calls (answered, not 429), sorted
    thr: np.ndarray  # composites of 429s, sorted
    thr_index: np.ndarray  # sample position of each 429, in ``thr`` order
    unk: np.ndarray  # composites of calls without an answer, sorted
    stride: float
    a0: float
    margin: float
    _acc_raw: tuple[np.ndarray, np.ndarray, np.ndarray] = field(
        repr=False, default=(np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64)))  # comp, accepted mask, index
    _acc_order: np.ndarray | None = field(repr=False, default=None)
    _maybe: np.ndarray | None = field(repr=False, default=None)

    def __len__(self) -> int:
        return len(self.acc) + len(self.thr) + len(self.unk)

    @property
    def maybe(self) -> np.ndarray:
        """Accepted calls plus those without an answer (the server may have counted them), sorted."""
        if self._maybe is None:
            self._maybe = np.sort(np.concatenate([self.acc, self.unk])) if len(self.unk) else self.acc
        return self._maybe

    def key_of(self, comp: np.ndarray) -> np.ndarray:
        """Key code: comp lies in [key*stride + margin, (key+1)*stride - margin]."""
        return np.floor(comp / self.stride).astype(np.int64)

    def arrival_of(self, comp: np.ndarray) -> np.ndarray:
        return comp - np.floor(comp / self.stride) * self.stride - self.margin + self.a0

    def to_comp(self, key: np.ndarray, t: np.ndarray) -> np.ndarray:
        return key * self.stride + (t - self.a0) + self.margin

    def only_keys(self, keys: np.ndarray) -> KeyedCalls:
        """The same calls restricted to some key codes (acc_index is not available on it)."""
        def keep(c: np.ndarray) -> np.ndarray:
            return np.isin(self.key_of(c), keys)

        k_thr = keep(self.thr)
        return KeyedCalls(acc=self.acc[keep(self.acc)], thr=self.thr[k_thr], thr_index=self.thr_index[k_thr],
                          unk=self.unk[keep(self.unk)], stride=self.stride, a0=self.a0, margin=self.margin)

    def acc_index(self, selected: np.ndarray) -> np.ndarray:
        """Sample positions of the accepted calls ``acc[selected]`` (argsort once, on demand)."""
        comp, mask, index = self._acc_raw
        if self._acc_order is None:
            self._acc_order = np.argsort(comp[mask], kind="stable")
        return index[mask][self._acc_order[selected]]


def arrange(index: np.ndarray, key: np.ndarray, sent: np.ndarray, latency: np.ndarray, status: np.ndarray,
            window: float, tol: float) -> KeyedCalls:
    """Place one limit's calls on the composite line (see the module docstring)."""
    arrival = sent + latency / 2
    a0 = float(arrival.min()) if len(arrival) else 0.0
    span = float(arrival.max()) - a0 if len(arrival) else 0.0
    margin = 2 * window + 2 * tol + 1.0
    stride = span + 2 * margin
    comp = key * stride + (arrival - a0) + margin
    thr_mask = status == 429
    unk_mask = status == 0
    acc_mask = ~(thr_mask | unk_mask)
    acc = comp[acc_mask]
    acc.sort()
    thr_comp = comp[thr_mask]
    order = np.argsort(thr_comp, kind="stable")
    return KeyedCalls(acc=acc, thr=thr_comp[order], thr_index=index[thr_mask][order],
                      unk=np.sort(comp[unk_mask]), stride=stride, a0=a0, margin=margin,
                      _acc_raw=(comp, acc_mask, index))


def _before(acc: np.ndarray, tol: float) -> np.ndarray:
    """``searchsorted(acc, acc - tol)`` without searching where it is not needed.

    For sorted ``acc`` the answer is i for every i whose predecessor is at least tol
    below it, the usual case (keys send far apart, tol is milliseconds); only the
    rest are searched.
    """
    out = np.arange(len(acc))
    if len(acc) > 1:
        close = np.nonzero(np.diff(acc) < tol)[0] + 1
        if len(close):
            out[close] = np.searchsorted(acc, acc[close] - tol, "left")
    return out


def _count(sorted_comp: np.ndarray, lo: np.ndarray, hi: np.ndarray, lo_side: str = "left",
           hi_side: str = "left") -> np.ndarray:
    return np.searchsorted(sorted_comp, hi, hi_side) - np.searchsorted(sorted_comp, lo, lo_side)


@dataclass
class Judgement:
    """Per accepted call (``acc_*``, in ``calls.acc`` order) and per 429 (``thr_*``)."""

    acc_est: np.ndarray
    acc_surely: np.ndarray  # surely_full: a missed throttle
    thr_est: np.ndarray
    thr_could: np.ndarray  # could_full: False means a false throttle


def judge(calls: KeyedCalls, model: str, count: int, window: float, tol: float, phase: float = 0.0) -> Judgement:
    """Answer est and surely_full for accepted calls, est and could_full for 429s, under one model."""
    acc, thr = calls.acc, calls.thr
    maybe = calls.maybe
    rank = np.arange(len(acc))  # accepted calls strictly before accepted call i (ties aside)
    thr_before = np.searchsorted(acc, thr, "left")
    if model == "sliding":
        acc_est = rank - np.searchsorted(acc, acc - window, "right")
        thr_est = thr_before - np.searchsorted(acc, thr - window, "right")
        # at least ``count`` accepted in (x, y) iff the count-th accepted before y is after x:
        # one search for y, then a look-up, instead of a second search for x
        back = _before(acc, tol) - count
        valid = back >= 0
        np.maximum(back, 0, out=back)
        surely = acc[back] > acc - (window - tol)
        surely &= valid
        could = _count(maybe, thr - window - tol, thr + tol) >= count
        return Judgement(acc_est, surely, thr_est, could)
    if model == "fixed":
        def start_of(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            a = calls.arrival_of(c)
            start = phase + np.floor((a - phase) / window) * window
            return calls.to_comp(calls.key_of(c), start), a - start < tol, start + window - a < tol

        wa, a_near_start, a_near_end = start_of(acc)
        wt, t_near_start, _ = start_of(thr)
        acc_est = rank - np.searchsorted(acc, wa, "left")
        thr_est = thr_before - np.searchsorted(acc, wt, "left")
        surely = (_count(acc, wa + tol, acc - tol) >= count) & ~a_near_start & ~a_near_end
        could = (_count(maybe, wt - tol, thr + tol) >= count) | (
            t_near_start & (_count(maybe, wt - window - tol, thr + tol) >= count))
        return Judgement(acc_est, surely, thr_est, could)
    if model == "token_bucket":
        rate = count / window
        acc_est = _tokens(calls, acc, acc, count, rate)
        thr_est = _tokens(calls, acc, thr, count, rate)
        surely = _tokens(calls, acc, acc - tol, count, rate, shift=tol) + 2 * rate * tol < 1 - 1e-9
        could = _tokens(calls, maybe, thr + tol, count, rate, shift=-tol) - 2 * rate * tol < 1 - 1e-9
        return Judgement(acc_est, surely, thr_est, could)
    raise ValueError(f"unknown window model {model!r}; expected one of {', '.join(MODELS)}")


def _tokens(calls: KeyedCalls, counted: np.ndarray, query: np.ndarray, capacity: int, rate: float,
            shift: float = 0.0) -> np.ndarray:
    """Tokens left just before each query point, given the sorted composites that consumed one.

    ``query`` is in composite coordinates (a call's own, moved by the tolerance);
    ``shift`` moves it back to the call's time for the refill term. Local times keep
    the margin offset on both sides, which cancels in ``r (t - b_k)``.
    """
    cseg = calls.key_of(counted)
    qseg = calls.key_of(query)
    b = counted - cseg * calls.stride
    t = query + shift - qseg * calls.stride
    n_keys = int(max(cseg.max() if len(cseg) else 0, qseg.max() if len(qseg) else 0)) + 1
    first = np.searchsorted(cseg, np.arange(n_keys), "left")  # first counted call of each key
    v = np.arange(len(counted)) - first[cseg] - rate * b
    prefix = np.zeros(0)
    if len(v):
        big = float(v.max() - v.min()) + 1.0
        prefix = np.minimum.accumulate(v - cseg * big) + cseg * big
    pos = np.searchsorted(counted, query, "left")  # counted calls before the query, all keys
    m = np.maximum(pos - first[qseg], 0)
    level = np.full(len(query), float(capacity))
    has = m > 0
    level[has] = np.minimum(capacity, capacity - m[has] + rate * t[has] + prefix[pos[has] - 1])
    return level
