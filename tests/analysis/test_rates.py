"""Counts, error and throttle rates, per-second series: against counts made by hand."""

from __future__ import annotations

import numpy as np

from harness.analysis import throughput as tp
from harness.record import Samples, classify


def hand_made() -> Samples:
    # op 0: 6 calls (200, 200, 429, 500, 0 timeout, 201); op 1: 2 calls (200, 404); over 3 s
    status = [200, 200, 429, 500, 0, 201, 200, 404]
    op = [0, 0, 0, 0, 0, 0, 1, 1]
    sent = [0.0, 0.5, 1.0, 1.2, 2.0, 2.5, 0.1, 2.9]
    latency = [0.1, 0.1, 0.01, 0.2, 5.0, 0.1, 0.1, 0.1]
    error = [classify(s, TimeoutError() if s == 0 else None) for s in status]
    n = len(op)
    return Samples(op, np.zeros(n), sent, sent, latency, status, [10] * n, error, op_names=("a", "b"), key_names=("k",))


def test_counts_and_rates() -> None:
    s = hand_made()
    c = tp.counts_by_op(s)
    assert c["count"].tolist() == [6, 2]
    assert c["ok"].tolist() == [3, 1]
    assert c["throttled"].tolist() == [1, 0]
    assert c["errors"].tolist() == [2, 1]  # 500 and the timeout; the 404
    assert c["bytes"].tolist() == [60, 20]
    t0, t_end = tp.time_origin(s)
    assert (t0, t_end) == (0.0, 7.0)  # the timeout ends at 2.0 + 5.0
    block = tp.rate_block(c["count"][0], c["ok"][0], c["errors"][0], c["throttled"][0], c["bytes"][0],
                          c["by_kind"][0], 7.0)
    assert block["error_rate"] == 2 / 6 and block["throttled_rate"] == 1 / 6
    assert block["errors_by_kind"] == {"http": 1, "throttled": 1, "timeout": 1}
    assert block["throughput_per_s"] == 6 / 7.0


def test_status_counts() -> None:
    assert tp.status_counts(hand_made()) == {0: {"0": 1, "200": 2, "201": 1, "429": 1, "500": 1},
                                             1: {"200": 1, "404": 1}}


def test_per_second_series() -> None:
    s = hand_made()
    series = tp.per_second(s, 0.0, 3)
    assert series["sent"].tolist() == [3, 2, 3]
    assert series["ok"].tolist() == [3, 0, 1]
    assert series["throttled"].tolist() == [0, 1, 0]
    assert series["errors"].tolist() == [0, 1, 2]
    only_b = tp.per_second(s, 0.0, 3, mask=s.op == 1)
    assert only_b["sent"].tolist() == [1, 0, 1]
