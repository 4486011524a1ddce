"""Verdicts on every call of a limit from the counts of ``windows.py``: false, missed, undecided.

For one model at one count, every 429 gets its exact ``could`` and ``sure`` counts
(tokens for a bucket): false when ``could < count``, undecided when also
``sure < count``. Accepted calls are the bulk of a run and mostly far from any limit,
so they first go through two quick tests (``Quick``): "can k other calls share X's
window?" and "were k accepted calls surely in it?". Each is one comparison of the
sorted send times shifted by k positions (the k-th call before X decides it; a prefix
maximum of the answer times says when an earlier call still in flight could change
it), and each answers yes, no or ambiguous, never wrongly; only the ambiguous calls
(and the findings, for their numbers) are counted exactly. So the verdicts equal
those of the exact counts everywhere: ``tests/analysis/test_judge_bounds.py`` checks
them against a literal implementation of the rule on random overlapping runs.

``peaks`` reuses the same tests to find, by galloping and bisection, the most accepted
calls one sliding window surely held and could have held (whether a limit was tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .windows import (
    MODELS,
    KeyedCalls,
    could_fixed,
    could_sliding,
    left_rank,
    sure_fixed,
    sure_sliding,
    tokens_hi,
    tokens_lo,
    window_start,
)

_EPS = 1e-6  # tokens: a bucket decision this close to 1 is not called proven


@dataclass
class Judgement:
    """Per 429 (``thr_*``, in ``calls.thr`` order) and per accepted call (``acc_*``, ``calls.acc`` order).

    ``*_could`` / ``*_sure`` hold counts (windows) or tokens ``lo`` / ``hi`` (bucket);
    for accepted calls they are exact only where ``acc_exact`` (NaN elsewhere: the quick
    test decided them).
    """

    model: str
    thr_false: np.ndarray
    thr_undecided: np.ndarray
    thr_could: np.ndarray
    thr_sure: np.ndarray
    acc_missed: np.ndarray
    acc_undecided: np.ndarray
    acc_could: np.ndarray
    acc_sure: np.ndarray

    @property
    def violations(self) -> int:
        return int(self.thr_false.sum() + self.acc_missed.sum())


class Quick:
    """The quick tests on every accepted call, at any k, with what does not depend on k computed once.

    ``could_ge(k)``: can k other calls share X's window? Candidates are the calls sent
    by e_X (positions < q in ``maybe``, usually q = X's position + 1). Yes when the k+1
    calls at positions q-1-k .. q-1 were all sent at or after ``y_yes`` (then x = e_X
    lies in the reach of each); no when the prefix maximum of answers before them is
    below ``y_no`` (none earlier reaches X's window), leaving at most k-1 besides X.

    ``sure_ge(k)``: were k accepted calls surely in it? The count
    ``#{i: e_i < s_X, s_i > y_sure} = hi - F - #{s_i <= y_sure}`` (hi: calls sent before
    X, F: those still in flight at s_X) is a lower bound of ``sure``, equal to it when
    nothing overlaps X (no call in flight at s_X and, when ``later_matters``, none sent
    during its flight); an overlapped call is left to the exact count.

    Both are one shifted comparison over the sorted arrays (position - k), plus a
    gather for the few calls whose q is not the usual one.
    """

    def __init__(self, calls: KeyedCalls, y_yes: np.ndarray, y_no: np.ndarray, y_sure: np.ndarray,
                 later_matters: bool) -> None:
        m, a = calls.maybe, calls.acc
        self.m, self.a = m, a
        self.y_yes, self.y_no, self.y_sure = y_yes, y_no, y_sure
        self.acc_in_maybe = calls.acc_in_maybe
        self.all_acc = m is a
        # q = X's position + 1 unless the next call was sent before X's answer
        n = len(m)
        self.c_irr = np.flatnonzero(m.s[1:] <= m.e[:-1]) if n > 1 else np.zeros(0, np.int64)
        self.c_irr_q = np.searchsorted(m.s, m.e[self.c_irr], "right")
        # hi = X's position; a call in flight at s_X (ties included: e >= s) or, when later
        # calls matter, one sent during X's flight makes the quick count inexact: ambiguous
        na = len(a)
        overlap = np.zeros(na, bool)
        if na > 1:
            overlap[1:] = a.emax[:-1] >= a.s[1:]
            if later_matters:
                overlap[:-1] |= a.s[1:] <= a.e[:-1]
        self.overlap = overlap
        self._could: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sure: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _could_at(self, k: int, pos: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.m
        j = q - 1 - k
        ok = j >= 0
        jj = np.maximum(j, 0)
        yes = ok & (m.s[jj] >= self.y_yes[pos])
        no = ~ok | ((m.emax[jj] < self.y_no[pos]) & (pos > j))
        return yes, no

    def _could_full(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(yes, no) for every call of ``maybe``, memoised."""
        if k not in self._could:
            m, n = self.m, len(self.m)
            yes = np.zeros(n, bool)
            no = np.ones(n, bool)
            if k == 0:
                yes[:] = True
                no[:] = False
            elif k < n:
                yes[k:] = m.s[:n - k] >= self.y_yes[k:]
                no[k:] = m.emax[:n - k] < self.y_no[k:]
            if len(self.c_irr) and k:
                yes[self.c_irr], no[self.c_irr] = self._could_at(k, self.c_irr, self.c_irr_q)
            self._could[k] = (yes, no)
        return self._could[k]

    def could_ge(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(yes, ambiguous) for every accepted call, in ``calls.acc`` order."""
        yes, no = self._could_full(k)
        amb = ~(yes | no)
        if not self.all_acc:
            return yes[self.acc_in_maybe], amb[self.acc_in_maybe]
        return yes, amb

    def could_any(self, k: int, pos: np.ndarray | None) -> np.ndarray:
        """Positions (in ``maybe``) among ``pos`` (None: all) where k others may share the window."""
        if pos is None or len(pos) > len(self.m) // 8:
            no = self._could_full(k)[1]
            return np.nonzero(~no)[0] if pos is None else pos[~no[pos]]
        q = pos + 1
        if len(self.c_irr):
            where = np.searchsorted(self.c_irr, pos)
            hit = where < len(self.c_irr)
            hit[hit] = self.c_irr[where[hit]] == pos[hit]
            q[hit] = self.c_irr_q[where[hit]]
        no = self._could_at(k, pos, q)[1]
        return pos[~no] if k else pos

    def _sure_at(self, k: int, pos: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self.a
        j = hi - k
        ok = j >= 0
        jj = np.maximum(j, 0)
        free = ~self.overlap[pos]
        yes = ok & (a.s[jj] > self.y_sure[pos]) & free
        no = (~ok | (a.s[jj] <= self.y_sure[pos])) & free
        return yes, no

    def sure_ge(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(yes, ambiguous) for every accepted call."""
        if k not in self._sure:
            a, n = self.a, len(self.a)
            yes = np.zeros(n, bool)
            no = ~self.overlap
            if k < n:
                tail = a.s[:n - k] > self.y_sure[k:]
                yes[k:] = tail & ~self.overlap[k:]
                no = no.copy()
                no[k:] &= ~tail
            self._sure[k] = (yes, ~(yes | no))
        return self._sure[k]

    def sure_any(self, k: int, pos: np.ndarray | None) -> np.ndarray:
        """Positions (in ``acc``) among ``pos`` (None: all) where k calls surely shared the window."""
        if pos is None or len(pos) > len(self.a) // 8:
            yes = self.sure_ge(k)[0]
            return np.nonzero(yes)[0] if pos is None else pos[yes[pos]]
        return pos[self._sure_at(k, pos, pos)[0]]


def quick_for(calls: KeyedCalls, model: str, window: float, phase: float = 0.0) -> Quick:
    """The quick tests of one window model (sliding or fixed)."""
    m = calls.maybe
    if model == "sliding":
        return Quick(calls, m.e - window, m.s - window, calls.acc.e - window, later_matters=True)
    start = window_start(calls, m.s, window, phase)
    a_start = start if m is calls.acc else window_start(calls, calls.acc.s, window, phase)
    return Quick(calls, start, start, a_start, later_matters=False)


def judge(calls: KeyedCalls, model: str, count: int, window: float, phase: float = 0.0,
          quick: Quick | None = None) -> Judgement:
    """Judge every 429 and accepted call of ``calls`` under one model at one count (module docstring)."""
    if model not in MODELS:
        raise ValueError(f"unknown window model {model!r}; expected one of {', '.join(MODELS)}")
    acc, maybe, thr = calls.acc, calls.maybe, calls.thr
    n_acc = len(acc)
    acc_could = np.full(n_acc, np.nan)
    acc_sure = np.full(n_acc, np.nan)
    if model == "token_bucket":
        rate = count / window
        t_lo = tokens_lo(calls, maybe, thr.s, thr.e, count, rate)
        t_hi = tokens_hi(calls, acc, thr.s, thr.e, count, rate)
        thr_false = t_lo >= 1.0
        thr_und = ~thr_false & (t_hi >= 1.0 - _EPS)
        a_hi = tokens_hi(calls, acc, acc.s, acc.e, count, rate, before=left_rank(acc.s))
        a_lo = tokens_lo(calls, maybe, acc.s, acc.e, count, rate, self_in=1)
        missed = a_hi < 1.0 - _EPS
        und = ~missed & (a_lo < 1.0)
        return Judgement(model, thr_false, thr_und, t_lo, t_hi, missed, und, a_lo, a_hi)

    def could(xs: np.ndarray, xe: np.ndarray, self_in: np.ndarray | int = 0) -> np.ndarray:
        if model == "sliding":
            return could_sliding(maybe, xs, xe, window, self_in)
        return could_fixed(calls, maybe, xs, xe, window, phase, self_in)

    def sure(xs: np.ndarray, xe: np.ndarray) -> np.ndarray:
        if model == "sliding":
            return sure_sliding(acc, xs, xe, window)
        return sure_fixed(calls, acc, xs, xe, window, phase)

    thr_could = could(thr.s, thr.e)
    thr_sure = sure(thr.s, thr.e)
    thr_false = thr_could < count
    thr_und = ~thr_false & (thr_sure < count)
    # accepted calls: quick tests first, exact counts for what they leave open
    quick = quick_for(calls, model, window, phase) if quick is None else quick
    c_yes, c_amb = quick.could_ge(count)
    s_yes, s_amb = quick.sure_ge(count)
    if model == "fixed":  # a call straddling a boundary: only the exact count knows its second window
        a_start = quick.y_sure
        straddle = window_start(calls, acc.e, window, phase) > a_start + 0.5 * window
        if straddle.any():
            c_amb = (c_amb | straddle) & ~(c_yes & ~straddle)
            c_yes = c_yes & ~straddle
            s_yes = s_yes & ~straddle  # it may be the first call of the next window: sure = 0
            s_amb = s_amb & ~straddle
    c_no = ~(c_yes | c_amb)
    missed = s_yes.copy()
    und = ~s_yes & c_yes & ~s_amb  # sure < count <= could, both known exactly
    open_ = ~s_yes & ~c_no & (c_amb | s_amb)
    idx = np.nonzero(open_)[0]
    if len(idx):
        xs, xe = acc.s[idx], acc.e[idx]
        cv = could(xs, xe, 1)
        sv = sure(xs, xe)
        acc_could[idx], acc_sure[idx] = cv, sv
        missed[idx] = sv >= count
        und[idx] = (sv < count) & (cv >= count)
    return Judgement(model, thr_false, thr_und, thr_could.astype(float), thr_sure.astype(float), missed, und,
                     acc_could, acc_sure)


def exact_accepted(calls: KeyedCalls, model: str, count: int, window: float, positions: np.ndarray,
                   phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(could, sure) counts, or (tokens lo, tokens hi), for some accepted calls (positions in ``calls.acc``)."""
    acc = calls.acc
    xs, xe = acc.s[positions], acc.e[positions]
    if model == "token_bucket":
        rate = count / window
        return (tokens_lo(calls, calls.maybe, xs, xe, count, rate, 1), tokens_hi(calls, acc, xs, xe, count, rate))
    if model == "sliding":
        return could_sliding(calls.maybe, xs, xe, window, 1), sure_sliding(acc, xs, xe, window)
    return (could_fixed(calls, calls.maybe, xs, xe, window, phase, 1),
            sure_fixed(calls, acc, xs, xe, window, phase))


def peaks(calls: KeyedCalls, window: float, near: int, quick: Quick | None = None, start: int = 0
          ) -> tuple[int, int, bool]:
    """Sliding-window peaks whatever the model: (most accepted calls surely in one window, most that
    could have been, whether a window could have held ``near`` or more).

    Searched from ``start`` (the count the judgement already tested, so its pass is
    reused) by galloping and bisection on the quick tests; each test at a higher k
    looks only at the calls that passed the lower one. An ambiguous answer counts as
    "could", so the possible peak is an upper bound and "near" is never understated.
    """
    if not len(calls.maybe):
        return 0, 0, False
    quick = quick_for(calls, "sliding", window) if quick is None else quick
    proven_peak = 0
    possible_peak = _top(quick.could_any, max(start, 1)) + 1
    if len(calls.acc):
        proven_peak = _top(quick.sure_any, max(possible_peak - 1, 0)) + 1
        over = np.nonzero(quick.overlap)[0]  # the quick test leaves these out: count them exactly
        if len(over):
            acc = calls.acc
            proven_peak = max(proven_peak, int(sure_sliding(acc, acc.s[over], acc.e[over], window).max()) + 1)
    return proven_peak, possible_peak, possible_peak >= near


def _top(passing: Callable[[int, np.ndarray | None], np.ndarray], start: int) -> int:
    """Largest k >= 0 with passing(k, .) non-empty (monotone in k; k = 0 taken as passing)."""
    cand: np.ndarray | None = None
    step = 1
    p = passing(start, None)
    if len(p):
        lo, cand = start, p
        while True:
            p = passing(lo + step, cand)
            if not len(p):
                hi = lo + step
                break
            lo, cand, step = lo + step, p, step * 2
    else:
        hi = start
        lo = 0
        while hi - step > 0:
            p = passing(hi - step, None)
            if len(p):
                lo, cand = hi - step, p
                break
            hi -= step
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = passing(mid, cand)
        if len(p):
            lo, cand = mid, p
        else:
            hi = mid
    return lo
