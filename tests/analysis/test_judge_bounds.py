"""The judge's bounds against a literal, slow reference of the rule, and against random true orders.

Random small runs with heavily overlapping calls (bursts, long answers, lost answers)
exercise every branch of ``harness/analysis/windows.py`` and ``judgement.py``: the quick tests, the exact
counts they defer to, ties, and calls in flight across window edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from judge_synth import BASE, brute_could, brute_sure, tokens_at

from harness.analysis.judgement import exact_accepted, judge, peaks
from harness.analysis.windows import MODELS, arrange
from harness.record import Samples, classify

W = 2.0
COUNT = 4


def random_run(seed: int, keys: int = 3, per_key: int = 40, ties: float = 0.1) -> Samples:
    """Calls in bursts with latencies from 0 to 1.5 s; statuses at random (the judge must not care);
    a share ``ties`` of send times rounded to 0.1 s, so some calls are sent at the same instant."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(keys):
        t = 0.0
        for _ in range(per_key):
            t += float(rng.choice([rng.uniform(0.0, 0.05), rng.uniform(0.1, 0.9)]))
            if rng.random() < ties:
                t = round(t, 1)  # exact ties now and then
            lat = float(rng.choice([rng.uniform(0.001, 0.02), rng.uniform(0.05, 1.5)]))
            status = int(rng.choice([200, 200, 200, 429, 0]))
            rows.append((0, k, BASE + t, BASE + t, lat, status, 0, classify(status, None)))
    cols = list(zip(*rows))
    return Samples(*(np.array(c) for c in cols), op_names=("device.sendState",),
                   key_names=tuple(f"k{k}" for k in range(keys)))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("model", ["sliding", "fixed"])
def test_counts_equal_the_literal_rule(seed: int, model: str) -> None:
    s = random_run(seed, ties=0.1 if seed < 8 else 0.6)
    calls = arrange(np.arange(len(s)), s.key, s.sent, s.latency, s.status, W, slack=0.0)
    j = judge(calls, model, COUNT, W)
    # every 429: its could and sure counts
    for n, i in enumerate(calls.thr.index.tolist()):
        assert j.thr_could[n] == brute_could(s, i, W, model), (seed, i)
        assert j.thr_sure[n] == brute_sure(s, i, W, model), (seed, i)
    # every accepted call: exact counts, and the verdict drawn from them
    pos = np.arange(len(calls.acc))
    could, sure = exact_accepted(calls, model, COUNT, W, pos)
    for n, i in enumerate(calls.acc.index.tolist()):
        bc, bs = brute_could(s, i, W, model), brute_sure(s, i, W, model)
        assert (could[n], sure[n]) == (bc, bs), (seed, i)
        assert j.acc_missed[n] == (bs >= COUNT), (seed, i)
        assert j.acc_undecided[n] == (bs < COUNT <= bc), (seed, i)


@pytest.mark.parametrize("seed", range(6))
def test_peaks_bracket_every_order(seed: int) -> None:
    s = random_run(seed)
    calls = arrange(np.arange(len(s)), s.key, s.sent, s.latency, s.status, W, slack=0.0)
    proven, possible, _ = peaks(calls, W, COUNT)
    could = [brute_could(s, i, W) for i in range(len(s)) if s.status[i] != 429]
    sure = [brute_sure(s, i, W) for i in range(len(s)) if s.status[i] not in (0, 429)]
    assert possible >= max(could) + 1  # an upper bound (the quick test's union bound)
    assert proven == max(sure) + 1  # exact: the quick test, then exact counts for overlapped calls


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("model", MODELS)
def test_bounds_hold_for_random_true_orders(seed: int, model: str) -> None:
    """Place every call anywhere in its interval (an unknown outcome either way): the true count
    (tokens) lies within the bounds, for 429s and accepted calls alike."""
    s = random_run(seed, keys=2, per_key=30)
    calls = arrange(np.arange(len(s)), s.key, s.sent, s.latency, s.status, W, slack=0.0)
    j = judge(calls, model, COUNT, W)
    acc_could, acc_sure = exact_accepted(calls, model, COUNT, W, np.arange(len(calls.acc)))
    bounds = {i: (j.thr_could[n], j.thr_sure[n]) for n, i in enumerate(calls.thr.index.tolist())}
    bounds.update({i: (acc_could[n], acc_sure[n]) for n, i in enumerate(calls.acc.index.tolist())})
    rng = np.random.default_rng(1000 + seed)
    everyone = np.arange(len(s))
    accepted = (s.status != 429) & (s.status != 0)
    for _ in range(20):
        sigma = s.sent + rng.random(len(s)) * s.latency
        counted = accepted | ((s.status == 0) & (rng.random(len(s)) < 0.5))

        def fill(i: int, mask: np.ndarray, sigma: np.ndarray = sigma) -> float:
            t = sigma[(s.key == s.key[i]) & mask & (everyone != i)]
            if model == "sliding":
                return float(((t > sigma[i] - W) & (t < sigma[i])).sum())
            if model == "fixed":
                start = np.floor(sigma[i] / W) * W
                return float(((t >= start) & (t < sigma[i])).sum())
            return tokens_at(t.tolist(), sigma[i], COUNT, W)

        for i, (could, sure) in bounds.items():
            most, least = fill(i, counted), fill(i, accepted)  # windows: most >= least; tokens: reversed
            if model == "token_bucket":
                assert could - 1e-9 <= most and least <= sure + 1e-9, (i, could, most, least, sure)
            else:
                assert sure <= least and most <= could, (i, sure, least, most, could)
