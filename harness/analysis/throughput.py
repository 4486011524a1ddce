"""Counts, rates and per-second series, per operation and overall.

Definitions (all over every sample, including errors and 429s):

- ``count``: requests sent; ``ok``: no error (``error == 0``);
- ``throttled``: status 429; ``errors``: any error other than 429 (HTTP 4xx/5xx
  other than 429, connection, timeout, other);
- ``error_rate = errors / count`` and ``throttled_rate = throttled / count``, so the
  two never double count and ``ok + errors + throttled == count``;
- ``duration_s``: first actual send to last response end of the whole run;
  ``throughput_per_s = count / duration_s`` (achieved, not planned). Every
  operation is divided by the run's duration so the per-op rates add up;
- the steady window (``steady_window``): after the ramp-up, before the stop; the
  steady throughput is the requests sent inside it divided by its length, and is what
  throughput criteria judge (the ramp-up's and stop's bursts are not the plan's rate).

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
    # MQTT statuses go past 999 (1000 + a CONNACK code, harness/record.py): 16-bit statuses fit whole
    packed = samples.op.astype(np.int64) * 65536 + np.clip(samples.status.astype(np.int64), 0, 65535)
    values, counts = np.unique(packed, return_counts=True)
    out: dict[int, dict[str, int]] = {}
    for v, c in zip(values.tolist(), counts.tolist()):
        out.setdefault(v // 65536, {})[str(v % 65536)] = c
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


#: The steady window must last at least this long (s) to be used; else the whole run is.
MIN_STEADY_S = 1.0


def _rel(t: float, t0: float) -> str:
    return f"{t - t0:.1f} s"


def steady_window(samples: Samples, started: float | None = None, spawned: float | None = None,
                  stopping: float | None = None, planned_duration: float | None = None,
                  ramp_s: float | None = None, ramp_note: str = "") -> dict[str, Any]:
    """The part of the run after the ramp-up and before the stop, where the plan's rate holds.

    The ramp-up (users starting, each authenticating and announcing itself) and the stop
    (users leaving, each saying goodbye) send bursts the steady plan does not have, and
    they weigh heavily in a short run, so throughput criteria are judged over this window.

    Start, in order of preference: ``spawned`` (when Locust reported every user started,
    measured), ``started + ramp_s`` (the run's start plus the planned ramp-up: users /
    spawn rate), else the first send. End: ``stopping`` (when Locust began stopping the
    users, measured), ``started + planned_duration``, else the last response end. The
    window is clipped to the samples; if what is left is shorter than ``MIN_STEADY_S``
    the whole run is used, and ``how`` says so.

    Returns ``{start, end, duration_s, how, whole_run, start_offset_s, end_offset_s,
    requests, throughput_rps}``: epoch seconds, the offsets from ``t0`` (second 0 of the
    series and charts), the requests sent in ``[start, end)`` (every request for the
    whole run) and their rate.
    """
    return steady_window_by_op(samples, None, None, started=started, spawned=spawned, stopping=stopping,
                               planned_duration=planned_duration, ramp_s=ramp_s, ramp_note=ramp_note)[0]


def steady_window_by_op(samples: Samples, totals: np.ndarray | None, bounds: tuple[float, float] | None,
                        started: float | None = None, spawned: float | None = None, stopping: float | None = None,
                        planned_duration: float | None = None, ramp_s: float | None = None,
                        ramp_note: str = "") -> tuple[dict[str, Any], np.ndarray]:
    """``steady_window`` plus the requests per op code inside it, from the per-op ``totals``
    (``counts_by_op(...)["count"]``) and ``bounds`` (``time_origin``) when the caller has them.

    Only the few samples outside the window (ramp-up and stop) are gathered: one pass of
    comparisons over the send times, cheap for ten million samples."""
    n = len(samples)
    t0, t_end = time_origin(samples) if bounds is None else bounds
    if totals is None:
        totals = counts_by_op(samples)["count"] if n else np.zeros(len(samples.op_names), np.int64)
    by_op = np.asarray(totals, dtype=np.int64).copy()
    if not n:
        return {"start": None, "end": None, "duration_s": 0.0, "how": "no samples", "whole_run": True,
                "start_offset_s": None, "end_offset_s": None, "requests": 0, "throughput_rps": None}, by_op * 0
    first = float(samples.sent.min())
    whole = (first, t_end)
    start, end = whole
    how_start, how_end = "first send", "last response"
    if spawned is not None:
        start, how_start = float(spawned), "all users started"
    elif started is not None and ramp_s is not None and ramp_s > 0:
        start = float(started) + ramp_s
        how_start = f"run start + {ramp_s:.1f} s planned ramp-up" + (f" ({ramp_note})" if ramp_note else "")
    if stopping is not None:
        end, how_end = float(stopping), "users told to stop"
    elif started is not None and planned_duration:
        end = float(started) + float(planned_duration)
        how_end = f"run start + {float(planned_duration):g} s planned duration"
    start, end = max(start, first), min(end, t_end)
    if (start, end) == whole:
        known = (how_start, how_end) != ("first send", "last response")
        how = (f"the whole run ({how_start} .. {how_end} spans every request)" if known
               else "the whole run (no ramp-up or stop times known)")
    elif end - start < MIN_STEADY_S:
        how = f"the whole run: the steady window ({how_start} .. {how_end}) is shorter than {MIN_STEADY_S:g} s"
        start, end = whole
    else:
        how = f"{how_start} .. {how_end}"
    duration = end - start
    is_whole = (start, end) == whole
    if not is_whole:
        sent = samples.sent
        outside = sent < start
        outside |= sent >= end
        idx = np.flatnonzero(outside)
        by_op -= np.bincount(samples.op[idx].astype(np.int64), minlength=len(by_op))[:len(by_op)]
    requests = int(by_op.sum())
    return {"start": start, "end": end, "duration_s": duration, "how": how, "whole_run": is_whole,
            "start_offset_s": start - t0, "end_offset_s": end - t0, "requests": requests,
            "throughput_rps": requests / duration if duration > 0 else None}, by_op

