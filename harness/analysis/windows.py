"""What each call's own time bounds allow a throttle to have done, vectorised over all keys at once.

**Bounds.** The server decided call i at an instant sigma_i it never tells us, but it
cannot be before the call was sent nor after its answer came back:
``sigma_i in [s_i, e_i] = [sent - slack, sent + latency + slack]`` (``slack``, 0.5 ms by
default, covers clock reading order). A call without an answer (status 0) has the
same interval and an unknown outcome: it is counted as accepted whenever that helps
the target, and never as surely accepted. Nothing else is assumed: any arrival order
these intervals allow may be the true one.

**Two counts per call** (X, at any instant x in [s_X, e_X], counting the other calls of
its key, with the window "before x" of the model):

- ``could(X) = max_x #{accepted-or-unknown i: [s_i, e_i] can lie in the window before x}``,
  the most accepted calls the window can have held, every bound against the target;
- ``sure(X) = min_x #{accepted i: [s_i, e_i] lies in the window before x whatever sigma_i}``,
  the fewest it can have held, every bound in the target's favour.

Both treat each call's placement independently, which is exactly the set of orders
the bounds allow (the relaxation is the definition). A 429 is **provably false** when
``could < count``, **justified** when ``sure >= count``, **undecided** otherwise; an
accepted call is a **proven missed throttle** when ``sure >= count``, **undecided**
when ``sure < count <= could``, fine otherwise. For the token bucket the same with
tokens: ``lo`` (fewest tokens the bounds allow) and ``hi`` (most): a 429 is false when
``lo >= 1``, an accepted call missed when ``hi < 1``.

**Window models** (``harness/emulator/throttle.py`` implements the same three):

- sliding: the window before x is ``(x - W, x)``. ``i`` can be in it for some x in
  [s_X, e_X] iff x lies in ``[s_i, e_i + W]``: ``could`` is the deepest point of those
  intervals inside [s_X, e_X]; the depth is highest just after some ``s_j`` (or at
  s_X), so those are the only candidate points. ``i`` is surely in it iff
  ``e_i < x < s_i + W``: ``sure`` is the shallowest point of those open intervals
  inside [s_X, e_X], lowest at some ``s_j + W`` (or at s_X).
- fixed: windows ``[phase + k W, phase + (k+1) W)``; within one window the count only
  grows with x, so ``could`` takes x at the end of [s_X, e_X] in each window it
  touches (``#{s_i <= x} - #{e_i < start}``, exact), and ``sure`` is 0 for a call
  whose interval straddles a boundary (it may be the first of the next window),
  else ``#{i: s_i > start, e_i < s_X}``.
- token bucket: capacity C = count, refill r = C / W per second, full before a key's
  first call. Tokens just before t after accepted calls at b_k:
  ``T(t) = min(C, min_u [C - N[u, t) + r (t - u)])`` (N: accepted in [u, t)), the
  minimum taken at some b_k. ``hi``: count only calls surely in [u, t) (``s_i >= u`` and
  ``e_i < s_X``), refill to e_X: the points b = s_i (a prefix minimum, as below),
  plus the calls still in flight at s_X, which that count cannot tell apart.
  ``lo``: count every call that can be in [u, x) (``e_i >= u``, ``s_i < e_X``: points
  b = e_i plus the calls in flight at e_X), refill only to s_X. Both are sound,
  neither exact: a call whose true tokens lie within ``r * latency`` (+1 per call in
  flight) of 1 is undecided. ``T`` for sorted points b_0 < ... < b_{m-1} of one key:
  ``min(C, C - m + r t + P[m-1])`` with the prefix minimum ``P[j] = min_{k<=j} (k - r b_k)``,
  one ``np.minimum.accumulate`` for all keys after shifting key s down by s * BIG.

**Layout.** Every call is placed on one line: ``comp = key * stride + (s - a0) + margin``
(``margin`` 2 windows + 1 s, ``stride`` the run span + 2 margins), so each key's
calls and every window query around them stay clear of the neighbours, and
"calls of this key in [x, y)" is a ``searchsorted`` on one sorted array. Float
precision: ``comp`` reaches keys x stride, about 1e9 for 100k keys over an hour,
where a float64 step is 1e-7 s.

The verdicts drawn from these counts (and the quick tests that spare most calls the
exact count) are in ``judgement.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

MODELS = ("sliding", "fixed", "token_bucket")
SLACK = 0.0005  # seconds added to both ends of every call's bounds


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (owner, position) pairs for the ranges [lo_i, hi_i)."""
    n = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), n)
    start = np.cumsum(n) - n
    pos = np.arange(int(n.sum())) - np.repeat(start, n) + np.repeat(lo, n)
    return owner, pos


def left_rank(v: np.ndarray) -> np.ndarray:
    """For sorted ``v``: ``searchsorted(v, v, 'left')`` in O(n) (the start of each tie run)."""
    idx = np.arange(len(v))
    if len(v) > 1:
        idx[1:][v[1:] == v[:-1]] = 0
    return np.maximum.accumulate(idx) if len(v) else idx


@dataclass
class Side:
    """Calls of one outcome, sorted by ``s`` (earliest decision), with ``e`` (latest) alongside."""

    s: np.ndarray
    e: np.ndarray
    _index: np.ndarray | None = field(default=None, repr=False)  # sample positions, once materialised
    _lookup: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)  # positions -> samples
    _emax: np.ndarray | None = field(default=None, repr=False)
    _e_sorted: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.s)

    def index_at(self, pos: np.ndarray) -> np.ndarray:
        """Sample positions of the calls at ``pos`` (looked up on demand: most are never needed)."""
        if self._index is not None:
            return self._index[pos]
        assert self._lookup is not None
        return self._lookup(np.asarray(pos, np.int64))

    @property
    def index(self) -> np.ndarray:
        if self._index is None:
            self._index = self.index_at(np.arange(len(self.s)))
        return self._index

    @property
    def emax(self) -> np.ndarray:
        """Prefix maximum of ``e``: no call before position k is in flight after emax[k]."""
        if self._emax is None:
            self._emax = np.maximum.accumulate(self.e) if len(self.e) else self.e
        return self._emax

    @property
    def e_sorted(self) -> np.ndarray:
        if self._e_sorted is None:
            self._e_sorted = np.sort(self.e, kind="stable")  # nearly sorted already: timsort
        return self._e_sorted

    def subset(self, keep: np.ndarray) -> Side:
        pos = np.flatnonzero(keep)
        return Side(self.s[pos], self.e[pos], self.index_at(pos))

    def n_s_le(self, y: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.s, y, "right")

    def n_s_lt(self, y: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.s, y, "left")

    def n_e_lt(self, y: np.ndarray) -> np.ndarray:
        """``#{e_i < y}`` exactly: the calls sent before y, less those still in flight at y."""
        k = self.n_s_lt(y)
        if not len(self.s):
            return k
        flight = k > 0
        flight[flight] = self.emax[k[flight] - 1] >= y[flight]
        if flight.any():
            k[flight] = np.searchsorted(self.e_sorted, y[flight], "left")
        return k


@dataclass
class KeyedCalls:
    """One limit's calls on the composite line, split by outcome, each part sorted by ``s``."""

    acc: Side  # answered, not 429
    maybe: Side  # accepted or unknown (the same object as ``acc`` when every call was answered)
    thr: Side  # 429s
    acc_in_maybe: np.ndarray  # position in ``maybe`` of each accepted call
    n_unk: int
    stride: float
    a0: float
    margin: float

    def __len__(self) -> int:
        return len(self.acc) + len(self.thr) + self.n_unk

    def key_of(self, comp: np.ndarray) -> np.ndarray:
        """Key code: comp lies in [key*stride + margin - window, (key+1)*stride - margin + window]."""
        return np.floor(comp / self.stride).astype(np.int64)

    def local(self, comp: np.ndarray) -> np.ndarray:
        """Seconds since ``a0`` (the same clock for every key)."""
        return comp - np.floor(comp / self.stride) * self.stride - self.margin

    def epoch(self, comp: np.ndarray) -> np.ndarray:
        return self.local(comp) + self.a0

    def only_keys(self, keys: np.ndarray) -> KeyedCalls:
        """The same calls restricted to some key codes."""
        def part(side: Side) -> Side:
            return side.subset(np.isin(self.key_of(side.s), keys))

        thr = part(self.thr)
        if self.maybe is self.acc:
            acc = part(self.acc)
            return KeyedCalls(acc, acc, thr, np.arange(len(acc)), 0, self.stride, self.a0, self.margin)
        is_acc = np.zeros(len(self.maybe), bool)
        is_acc[self.acc_in_maybe] = True
        keep = np.isin(self.key_of(self.maybe.s), keys)
        maybe = self.maybe.subset(keep)
        acc = self.maybe.subset(keep & is_acc)
        return KeyedCalls(acc, maybe, thr, np.nonzero(is_acc[keep])[0], len(maybe) - len(acc), self.stride,
                          self.a0, self.margin)


def _order(key: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Permutation sorting ``comp`` (key-major): a radix sort by key, then timsort on nearly sorted times."""
    if len(key) and int(key.max()) < 65536 and int(key.min()) >= 0:
        by_key = np.argsort(key.astype(np.uint16), kind="stable")
        return by_key[np.argsort(comp[by_key], kind="stable")]
    return np.argsort(comp, kind="stable")


def _part(s: np.ndarray, e: np.ndarray, index: np.ndarray, order: np.ndarray, removed: np.ndarray) -> Side:
    """The sorted calls but those at the (sorted) positions ``removed``.

    Few removed (the 429s of a large run): copied slice by slice, and a kept call's
    position found from the removed ones (``p + #{removed <= its row}``); many: a mask.
    """
    if len(removed) > 20_000:
        keep = np.ones(len(s), bool)
        keep[removed] = False
        rows = np.flatnonzero(keep)
        return Side(s[rows], e[rows], _lookup=lambda p: index[order[rows[p]]])
    edges = np.concatenate(([-1], removed, [len(s)]))
    cuts = [(int(a) + 1, int(b)) for a, b in pairwise(edges) if b > a + 1]
    shift = removed - np.arange(len(removed))  # removed rows before the p-th kept one: #{shift <= p}

    def lookup(p: np.ndarray) -> np.ndarray:
        return index[order[p + np.searchsorted(shift, p, "right")]]

    return Side(np.concatenate([s[a:b] for a, b in cuts]) if cuts else s[:0],
                np.concatenate([e[a:b] for a, b in cuts]) if cuts else e[:0], _lookup=lookup)


def arrange(index: np.ndarray, key: np.ndarray, sent: np.ndarray, latency: np.ndarray, status: np.ndarray,
            window: float, slack: float = SLACK) -> KeyedCalls:
    """Place one limit's calls on the composite line (see the module docstring)."""
    width = np.maximum(latency, 0.0)
    width += 2 * slack
    a0 = float(sent.min()) - slack if len(sent) else 0.0
    span = float((sent + width).max()) - slack - a0 if len(sent) else 0.0
    margin = 2 * window + 1.0
    stride = span + 2 * margin
    comp = key * stride  # float64
    comp += sent
    comp += margin - slack - a0
    order = _order(key, comp)
    s = comp[order]
    e = width[order]
    e += s
    st = status[order]
    thr_mask = st == 429
    unk_mask = st == 0
    n_thr, n_unk = int(thr_mask.sum()), int(unk_mask.sum())
    thr_rows = np.flatnonzero(thr_mask)
    thr = Side(s[thr_rows], e[thr_rows], index[order[thr_rows]])
    if not n_thr and not n_unk:
        acc = Side(s, e, _lookup=lambda p: index[order[p]])
        return KeyedCalls(acc, acc, thr, np.arange(len(acc)), 0, stride, a0, margin)
    acc = _part(s, e, index, order, np.flatnonzero(thr_mask | unk_mask))
    if n_unk:
        maybe = _part(s, e, index, order, thr_rows)
        acc_in_maybe = np.flatnonzero(~unk_mask[~thr_mask])
    else:
        maybe, acc_in_maybe = acc, np.arange(len(acc))
    return KeyedCalls(acc, maybe, thr, acc_in_maybe, n_unk, stride, a0, margin)


# --- exact counts for a few query calls (429s, ambiguous accepted calls, findings) ---------------

def could_sliding(m: Side, xs: np.ndarray, xe: np.ndarray, window: float, self_in: np.ndarray | int = 0
                  ) -> np.ndarray:
    """max over x in [xs, xe] of #{i in m: s_i <= x <= e_i + W}, less the query itself when it is in m."""
    base = m.n_s_le(xs) - m.n_e_lt(xs - window)
    owner, pos = _ranges(m.n_s_le(xs), m.n_s_le(xe))
    if len(pos):
        p = m.s[pos]
        np.maximum.at(base, owner, m.n_s_le(p) - m.n_e_lt(p - window))
    return base - self_in


def sure_sliding(a: Side, xs: np.ndarray, xe: np.ndarray, window: float) -> np.ndarray:
    """min over x in [xs, xe] of #{i in a: e_i < x < s_i + W} (a lower bound where latency >= W)."""
    base = a.n_e_lt(xs) - a.n_s_le(xs - window)
    owner, pos = _ranges(a.n_s_le(xs - window), a.n_s_le(xe - window))
    if len(pos):
        p = a.s[pos] + window
        np.minimum.at(base, owner, a.n_e_lt(p) - a.n_s_le(p - window))
    return np.maximum(base, 0)


def window_start(calls: KeyedCalls, comp: np.ndarray, window: float, phase: float) -> np.ndarray:
    return comp - np.mod(calls.local(comp) + calls.a0 - phase, window)


def could_fixed(calls: KeyedCalls, m: Side, xs: np.ndarray, xe: np.ndarray, window: float, phase: float,
                self_in: np.ndarray | int = 0) -> np.ndarray:
    """max over the fixed windows [s_X, e_X] touches of the calls that can lie in it before x."""
    w1 = window_start(calls, xs, window, phase)
    w2 = window_start(calls, xe, window, phase)
    end = w1 + window  # a call sent at or after the end cannot be in the first window
    first = np.where(xe < end, m.n_s_le(xe), m.n_s_lt(end)) - m.n_e_lt(w1)
    last = m.n_s_le(xe) - m.n_e_lt(w2)
    out = np.where(w2 > w1 + 0.5 * window, np.maximum(first, last), first)
    many = w2 > w1 + 1.5 * window  # three windows or more: every call of the span (an upper bound)
    if many.any():
        out[many] = m.n_s_le(xe[many]) - m.n_e_lt(w1[many])
    return out - self_in


def sure_fixed(calls: KeyedCalls, a: Side, xs: np.ndarray, xe: np.ndarray, window: float, phase: float
               ) -> np.ndarray:
    """0 when [s_X, e_X] straddles a boundary, else #{i in a: s_i > start, e_i < s_X}."""
    w1 = window_start(calls, xs, window, phase)
    straddle = window_start(calls, xe, window, phase) > w1 + 0.5 * window
    lo, hi = a.n_s_le(w1), a.n_s_lt(xs)
    owner, pos = _ranges(lo, hi)
    out = np.zeros(len(xs), np.int64)
    if len(pos):
        out = np.bincount(owner, weights=a.e[pos] < xs[owner], minlength=len(xs)).astype(np.int64)
    out[straddle] = 0
    return out


def _segment_prefix_min(v: np.ndarray, seg: np.ndarray) -> np.ndarray:
    if not len(v):
        return v
    big = float(v.max() - v.min()) + 1.0
    return np.minimum.accumulate(v - seg * big) + seg * big


def _bucket(calls: KeyedCalls, points: np.ndarray, before: np.ndarray, t: np.ndarray, capacity: int,
            rate: float) -> np.ndarray:
    """``min(C, min_k [C - #{points in [b_k, q)} + r (t - b_k)])`` for each query.

    ``points`` sorted composites; ``before`` = #{points < q} for each query q (all keys);
    ``t`` the query's refill time (composite). Per key only.
    """
    pseg = calls.key_of(points)
    qseg = calls.key_of(t)
    n_keys = int(max(pseg.max() if len(pseg) else 0, qseg.max() if len(qseg) else 0)) + 1
    first = np.searchsorted(pseg, np.arange(n_keys), "left")
    b = points - pseg * calls.stride
    tl = t - qseg * calls.stride
    prefix = _segment_prefix_min(np.arange(len(points)) - first[pseg] - rate * b, pseg)
    m = np.maximum(before - first[qseg], 0)
    level = np.full(len(t), float(capacity))
    has = m > 0
    level[has] = np.minimum(capacity, capacity - m[has] + rate * tl[has] + prefix[before[has] - 1])
    return level


def tokens_hi(calls: KeyedCalls, a: Side, xs: np.ndarray, xe: np.ndarray, count: int, rate: float,
              before: np.ndarray | None = None) -> np.ndarray:
    """Most tokens the bounds allow at the query: surely-earlier calls only, refill to e_X, + calls in flight."""
    before = a.n_s_lt(xs) if before is None else before
    flight = before - a.n_e_lt(xs)  # sent before s_X, answered at or after it
    return np.minimum(count, _bucket(calls, a.s, before, xe, count, rate) + flight)


def tokens_lo(calls: KeyedCalls, m: Side, xs: np.ndarray, xe: np.ndarray, count: int, rate: float,
              self_in: np.ndarray | int = 0) -> np.ndarray:
    """Fewest tokens the bounds allow: every call that can be earlier counts, refill only to s_X."""
    ends = m.e_sorted
    before = np.searchsorted(ends, xe, "left")
    flight = m.n_s_lt(xe) - before - self_in  # sent before e_X, answered at or after it
    return _bucket(calls, ends, before, xs, count, rate) - flight
