"""Counts, rates and per-second series, per operation and overall.

Definitions (all over every sample, including errors and 429s):

- ``count``: requests sent; ``ok``: no error (``error == 0``);
- ``throttled``: status 429; ``errors``: any error other than 429 (HTTP 4xx/5xx
  other than 429, connection, timeout, other);
- ``error_rate = errors / count`` and ``throttled_rate = throttled / count``, so the
  two never double count and ``ok + errors + throttled == count``;
- ``duration_s``: first actual send to last response end of the whole run;
  ``throughput_per_s = count / duration_s`` (achieved, not planned). Every
  operation is divided by the run's duration so the per-op rates add up.

Series bucket samples by the second of their actual send, counted from ``t0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.record import ERROR_KINDS, NO_ERROR, Samples


def time_origin(samples: Samples) -> tuple[float, float]:
    """(t0, t_end): the earliest planned or actual send, and the last response end."""
    if not len(samples):
        return 0.0, 0.0
    t0 = float(min(samples.planned.min(), samples.sent.min()))
    return t0, float(samples.end.max())


def counts_by_op(samples: Samples) -> dict[str, np.ndarray]:
    """Per op code: count, ok, errors, throttled, bytes; plus errors by kind (ops x kinds)."""
    n_ops = max(len(samples.op_names), int(samples.op.max()) + 1 if len(samples) else 0)
    op = samples.op.astype(np.int64)
    kinds = len(ERROR_KINDS)
    by_kind = np.bincount(op * kinds + samples.error, minlength=n_ops * kinds).reshape(n_ops, kinds)
    count = by_kind.sum(axis=1)
    throttled = np.bincount(op, weights=samples.status == 429, minlength=n_ops).astype(np.int64)
    return {
        "count": count,
        "ok": by_kind[:, NO_ERROR],
        "throttled": throttled,
        "errors": count - by_kind[:, NO_ERROR] - throttled,  # a 429 is never ok, so this is "other errors"
        "bytes": np.bincount(op, weights=samples.nbytes, minlength=n_ops).astype(np.int64),
        "by_kind": by_kind,
    }


def status_counts(samples: Samples) -> dict[int, dict[str, int]]:
    """{op code: {"200": n, "429": n, ...}} (status as a string: JSON keys are strings)."""
    packed = samples.op.astype(np.int64) * 1000 + np.clip(samples.status, 0, 999)
    values, counts = np.unique(packed, return_counts=True)
    out: dict[int, dict[str, int]] = {}
    for v, c in zip(values.tolist(), counts.tolist()):
        out.setdefault(v // 1000, {})[str(v % 1000)] = c
    return out


def rate_block(count: int, ok: int, errors: int, throttled: int, nbytes: int, by_kind: np.ndarray,
               duration: float) -> dict[str, Any]:
    """The JSON block of counts and rates for one operation (or the whole run)."""
    count, ok, errors, throttled = int(count), int(ok), int(errors), int(throttled)
    return {
        "count": count, "ok": ok, "errors": errors, "throttled": throttled,
        "error_rate": errors / count if count else 0.0,
        "throttled_rate": throttled / count if count else 0.0,
        "errors_by_kind": {ERROR_KINDS[k]: int(by_kind[k]) for k in range(1, len(ERROR_KINDS)) if by_kind[k]},
        "bytes": int(nbytes),
        "throughput_per_s": count / duration if duration > 0 else None,
    }


def per_second(samples: Samples, t0: float, n_buckets: int, bucket: float = 1.0,
               mask: np.ndarray | None = None, index: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Requests sent, ok, errors and throttled per bucket of actual send time.

    ``index`` may pass the bucket of each sample's send time when the caller has it.
    """
    idx = np.floor((samples.sent - t0) / bucket).astype(np.int64) if index is None else index
    idx = np.clip(idx, 0, max(n_buckets - 1, 0))
    err, status = samples.error, samples.status
    if mask is not None:
        idx, err, status = idx[mask], err[mask], status[mask]

    def count(where: np.ndarray | None = None) -> np.ndarray:
        chosen = idx if where is None else idx[where]
        return np.bincount(chosen, minlength=n_buckets)[:n_buckets].astype(np.int64)

    sent = count()
    ok = count(err == NO_ERROR)
    throttled = count(status == 429)
    return {"sent": sent, "ok": ok, "throttled": throttled, "errors": sent - ok - throttled}
