"""The numbers behind the report: per-operation tables and time series, from ``Samples``.

Everything here is a pure function of the samples (numpy only, no I/O, no drawing),
so the report can be rebuilt from an old run folder and each figure can be checked
against a slow reference in the tests.

Definitions follow ``harness.analysis`` so the page and ``summary.json`` agree:
percentiles are exact order statistics (``exact_percentiles``), counts and rates come
from ``counts_by_op``/``rate_block`` over the run's duration (first send to last
response end). Two latencies are shown everywhere, never mixed:

- *corrected latency* (from the planned send): ``sent + latency - planned``; what a
  caller on the schedule waited, including the time the generator was late;
- *response time* (from the actual send): ``latency``.

Time series use buckets of ``bucket_seconds(duration)`` so a chart never holds more
than ~``MAX_BUCKETS`` points per line, whatever the run length: this is the
per-bucket aggregation that replaces drawing ten million points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.analysis.percentiles import LABELS, exact_percentiles, percentile_series
from harness.analysis.throughput import counts_by_op, rate_block, time_origin
from harness.record import Samples

MAX_BUCKETS = 600
#: Percentiles of the HDR-style distribution curve (x axis: 1 / (1 - q), log scale).
#: Evenly spaced up to 0.9, then geometric in (1 - q) up to 0.99999, as HdrHistogram plots do.
CURVE_QUANTILES = np.concatenate((np.linspace(0.0, 0.9, 19)[:-1], 1.0 - np.logspace(-1, -5, 121)))
SERIES = ("p50", "p95", "p99")


#: Categorical palette (shared with charts): 20 distinct colours, so a report's operations never share one.
PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
           "#64748b", "#a16207", "#1e3a8a", "#fcd34d", "#065f46", "#fca5a5", "#4c1d95", "#67e8f9",
           "#9d174d", "#3f6212", "#0f172a", "#fdba74")


def op_colors(ops: list[str]) -> dict[str, str]:
    return {op: PALETTE[i % len(PALETTE)] for i, op in enumerate(ops)}


def bucket_seconds(duration: float, max_buckets: int = MAX_BUCKETS) -> float:
    """Smallest 'nice' bucket (1, 2, 5, 10, 15, 30, 60 s, ...) that keeps the series short.

    >>> bucket_seconds(60), bucket_seconds(3600), bucket_seconds(86400)
    (1.0, 10.0, 180.0)
    """
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600):
        if duration / step <= max_buckets:
            return float(step)
    return float(math.ceil(duration / max_buckets / 3600) * 3600)


@dataclass
class OpRow:
    """One row of the per-operation table (times in seconds, as measured)."""

    op: str
    count: int
    rate: float | None
    errors: int
    throttled: int
    corrected: dict[str, float | None]
    response: dict[str, float | None]


@dataclass
class Figures:
    """Everything the page draws or tabulates; built once by ``compute``."""

    t0: float
    t_end: float
    bucket: float
    ops: list[str]  # by descending count
    rows: list[OpRow]
    total: OpRow
    times: np.ndarray  # bucket starts, seconds from t0
    rps: dict[str, np.ndarray]  # per op, requests per second per bucket (by actual send)
    active_keys: np.ndarray  # distinct keys with a request in the bucket
    pct_series: dict[str, dict[str, dict[str, np.ndarray]]]  # op -> "corrected"/"response" -> label -> values
    curves: dict[str, dict[str, np.ndarray]]  # op -> "corrected"/"response" -> values at CURVE_QUANTILES
    lateness: dict[str, float | None]  # percentiles of sent - planned
    lateness_curve: np.ndarray
    lateness_series: np.ndarray  # p99 lateness per bucket (s)
    errors: list[dict[str, object]] = field(default_factory=list)
    error_series: dict[str, np.ndarray] = field(default_factory=dict)  # error kind -> count per bucket

    @property
    def colors(self) -> dict[str, str]:
        """One colour per operation for the whole page (by the busiest-first order of ``ops``)."""
        return op_colors(self.ops)

    @property
    def duration(self) -> float:
        return max(self.t_end - self.t0, 0.0)


def _curve(sorted_values: np.ndarray) -> np.ndarray:
    """Exact order statistics at ``CURVE_QUANTILES`` of an already sorted array.

    Quantiles the sample cannot resolve (q beyond 1 - 1/n: with 15 calls there is no
    p99.9, only the maximum again) are NaN, so the curve stops where the data stop
    instead of drawing a flat line that reads as a measured tail.
    """
    n = len(sorted_values)
    if n == 0:
        return np.full(len(CURVE_QUANTILES), np.nan)
    ranks = np.clip(np.ceil(CURVE_QUANTILES * n).astype(np.int64) - 1, 0, n - 1)
    out = sorted_values[ranks].astype(np.float64)
    out[~supported(CURVE_QUANTILES, n)] = np.nan
    return out


def supported(q: np.ndarray | float, n: int) -> np.ndarray:
    """Which quantiles ``n`` samples resolve: at least one sample at or beyond each (n * (1 - q) >= 1)."""
    return np.asarray(n * (1.0 - np.asarray(q, dtype=np.float64)) >= 1.0 - 1e-9)


def label_supported(label: str, n: int) -> bool:
    """Whether a table's percentile label (``p99.9``; ``max`` always) is resolved by ``n`` calls, so the
    report's tables and whoever checks them apply one rule."""
    return label == "max" or bool(supported(float(label[1:]) / 100.0, n))


def _row(op: str, counts: dict[str, np.ndarray], i: int | None, duration: float,
         corrected: np.ndarray, response: np.ndarray) -> OpRow:
    if i is None:  # the whole run
        c = {k: v.sum(axis=0) for k, v in counts.items()}
    else:
        c = {k: v[i] for k, v in counts.items()}
    block = rate_block(c["count"], c["ok"], c["errors"], c["throttled"], c["bytes"], c["by_kind"], duration)
    return OpRow(op, block["count"], block["throughput_per_s"], block["errors"], block["throttled"],
                 exact_percentiles(corrected), exact_percentiles(response))


def compute(samples: Samples, bucket: float | None = None) -> Figures:
    """Tables, series and curves of a run; about 2 s per 10 million samples.

    >>> import numpy as np
    >>> s = Samples(op=[0, 0], key=[0, 1], planned=[0.0, 1.0], sent=[0.0, 1.5], latency=[0.1, 0.1],
    ...             status=[200, 429], nbytes=[1, 1], error=[0, 2], op_names=("a",), key_names=("k1", "k2"))
    >>> f = compute(s)
    >>> f.rows[0].throttled, round(f.rows[0].corrected["max"], 3), round(f.rows[0].response["max"], 3)
    (1, 0.6, 0.1)
    """
    t0, t_end = time_origin(samples)
    duration = max(t_end - t0, 0.0)
    # rates divide by first actual send -> last response end, as summary.json does
    rate_duration = t_end - float(samples.sent.min()) if len(samples) else 0.0
    bucket = bucket or bucket_seconds(duration)
    nb = max(int(math.floor(duration / bucket)) + 1, 1) if len(samples) else 0
    counts = counts_by_op(samples)
    n_ops = len(counts["count"])
    names = [samples.op_names[i] if i < len(samples.op_names) else f"op#{i}" for i in range(n_ops)]
    order = [i for i in np.argsort(-counts["count"], kind="stable").tolist() if counts["count"][i] > 0]

    corrected_all = np.maximum(samples.corrected, 0.0)
    response_all = samples.latency
    sent_idx = np.clip(np.floor((samples.sent - t0) / bucket).astype(np.int64), 0, max(nb - 1, 0))
    planned_idx = np.clip(np.floor((samples.planned - t0) / bucket).astype(np.int64), 0, max(nb - 1, 0))

    # one stable sort by op serves every per-op metric
    op_order = np.argsort(samples.op, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(samples.op, minlength=n_ops))))
    rows, rps, pct, curves = [], {}, {}, {}
    for i in order:
        sel = op_order[bounds[i]:bounds[i + 1]]
        cor, resp = np.sort(corrected_all[sel]), np.sort(response_all[sel])
        rows.append(_row(names[i], counts, i, rate_duration, cor, resp))
        curves[names[i]] = {"corrected": _curve(cor), "response": _curve(resp)}
        rps[names[i]] = np.bincount(sent_idx[sel], minlength=nb)[:nb] / bucket
        pct[names[i]] = {
            # corrected latency belongs to when the call was due, response time to when it went
            "corrected": percentile_series(planned_idx[sel].astype(np.float64), corrected_all[sel], 0.0, 1.0,
                                           SERIES, nb)[1],
            "response": percentile_series(sent_idx[sel].astype(np.float64), response_all[sel], 0.0, 1.0,
                                          SERIES, nb)[1],
        }
    total = _row("all", counts, None, rate_duration, corrected_all, response_all)

    lateness = samples.lateness
    late_sorted = np.sort(lateness)
    if nb:
        late_series = percentile_series(sent_idx.astype(np.float64), lateness, 0.0, 1.0, ("p99",), nb)[1]["p99"]
    else:
        late_series = np.zeros(0)
    return Figures(
        t0=t0, t_end=t_end, bucket=bucket, ops=[names[i] for i in order], rows=rows, total=total,
        times=np.arange(nb) * bucket, rps=rps, active_keys=active_keys(sent_idx, samples.key, nb),
        pct_series=pct, curves=curves, lateness=exact_percentiles(late_sorted), lateness_curve=_curve(late_sorted),
        lateness_series=late_series, errors=error_groups(samples), error_series=error_series(samples, sent_idx, nb),
    )


def error_series(samples: Samples, bucket_idx: np.ndarray, nb: int) -> dict[str, np.ndarray]:
    """Failed calls per bucket by error kind: fault periods (an outage, a burst of 503s) show as bands."""
    out: dict[str, np.ndarray] = {}
    for code in np.unique(samples.error):
        if code == 0:
            continue
        kind = samples.error_kinds[int(code)] if int(code) < len(samples.error_kinds) else f"kind {int(code)}"
        out[kind] = np.bincount(bucket_idx[samples.error == code], minlength=nb)[:nb]
    return out


def active_keys(bucket_idx: np.ndarray, keys: np.ndarray, nb: int) -> np.ndarray:
    """Distinct keys (simulated devices) with at least one request in each bucket.

    One ``np.unique`` of the packed (bucket, key) pair; the bucket of each distinct
    pair is then counted.
    """
    if nb == 0 or len(keys) == 0:
        return np.zeros(nb, np.int64)
    k = keys.astype(np.int64) - int(keys.min())
    span = int(k.max()) + 1
    pairs = np.unique(bucket_idx.astype(np.int64) * span + k)
    return np.bincount(pairs // span, minlength=nb)[:nb]


def error_groups(samples: Samples) -> list[dict[str, object]]:
    """Failed calls grouped by (kind, status, op), with counts and first/last occurrence.

    429s are included (kind "throttled") since a throttle is an answer worth seeing
    next to the errors, but they stay a separate kind.
    """
    bad = np.nonzero(samples.error != 0)[0]
    if not len(bad):
        return []
    err = samples.error[bad].astype(np.int64)
    status = np.clip(samples.status[bad].astype(np.int64), 0, 999)
    op = samples.op[bad].astype(np.int64)
    packed = (err * 1000 + status) * 65536 + op
    uniq, inverse, cnt = np.unique(packed, return_inverse=True, return_counts=True)
    t = samples.sent[bad]
    first = np.full(len(uniq), np.inf)
    last = np.full(len(uniq), -np.inf)
    np.minimum.at(first, inverse, t)
    np.maximum.at(last, inverse, t)
    out = []
    for u, c, f, l_ in zip(uniq.tolist(), cnt.tolist(), first.tolist(), last.tolist()):
        o, rest = u % 65536, u // 65536
        kind = samples.error_kinds[rest // 1000] if rest // 1000 < len(samples.error_kinds) else f"#{rest // 1000}"
        name = samples.op_names[o] if o < len(samples.op_names) else f"op#{o}"
        out.append({"kind": kind, "status": rest % 1000, "op": name, "count": c, "first": f, "last": l_})
    out.sort(key=lambda g: (-int(g["count"]), str(g["kind"])))
    return out


def window_counts(times: np.ndarray, window: float) -> np.ndarray:
    """For each call (times sorted), the calls in the sliding window ``(t - window, t]``.

    This is what a sliding-window throttle counts when the call arrives (including
    the call itself), so its maximum is directly comparable with the documented count.

    >>> window_counts(np.array([0.0, 1.0, 2.0, 15.0, 15.5]), 15.0).tolist()
    [1, 2, 3, 3, 4]
    """
    return np.arange(1, len(times) + 1) - np.searchsorted(times, times - window, side="right")


def busiest_keys(samples: Samples, ops: list[int], window: float, top: int = 5
                 ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The ``top`` keys with the most calls of ``ops`` in any one window: (key, t, count).

    Keys are ranked by their peak sliding-window count, then by total calls; each
    series is (seconds from the first call of the run, calls in window at each call).
    """
    mask = np.isin(samples.op, ops)
    idx = np.nonzero(mask)[0]
    if not len(idx):
        return []
    keys = samples.key[idx].astype(np.int64)
    times = samples.sent[idx] + samples.latency[idx] / 2  # arrival estimate, as conformance does
    tmin = float(times.min())
    # one float sort instead of a lexsort: key k lives on [k * stride, k * stride + span),
    # and stride leaves more than a window between keys, so no window straddles two keys
    stride = float(times.max() - tmin) + 2 * window + 1
    pad = window + 0.5  # keeps every offset well inside (0, stride), so floor() finds the key
    comp = (keys - int(keys.min())) * stride + (times - tmin + pad)
    comp.sort()
    seg = np.floor(comp / stride).astype(np.int64)
    keys, times = seg + int(samples.key[idx].min()), comp - seg * stride - pad + tmin
    starts = np.concatenate(([0], np.nonzero(np.diff(keys))[0] + 1))
    ends = np.concatenate((starts[1:], [len(keys)]))
    counts = window_counts(comp, window)
    peaks = np.maximum.reduceat(counts, starts)
    ranked = np.lexsort((-(ends - starts), -peaks))[:top].tolist()
    t0 = float(min(samples.planned.min(), samples.sent.min()))
    out = []
    for j in ranked:
        k = int(keys[starts[j]])
        name = samples.key_names[k] if 0 <= k < len(samples.key_names) else f"key#{k}"
        out.append((name, times[starts[j]:ends[j]] - t0, counts[starts[j]:ends[j]]))
    return out


def accepted_windows(samples: Samples, ops: list[int], window: float, top: int = 5
                     ) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The ``top`` keys by most accepted calls in one window: (key, t, accepted, t_refused, at_refused).

    ``accepted`` is, at each accepted call, the accepted calls of the key in the sliding
    window ``(t - window, t]`` (the call included), what the documented count limits;
    ``at_refused`` is, at each 429, the accepted calls in ``(t - window, t)`` (what the
    target had counted when it refused). Times are seconds from the run's first call,
    at the middle of each call's bounds (a drawing estimate; the judge uses the bounds).
    Keys are ranked by accepted peak, then by 429s.
    """
    mask = np.isin(samples.op, ops)
    idx = np.nonzero(mask)[0]
    if not len(idx):
        return []
    keys = samples.key[idx].astype(np.int64)
    times = samples.sent[idx] + samples.latency[idx] / 2
    refused = samples.status[idx] == 429
    ok = ~refused & (samples.status[idx] != 0)
    tmin = float(times.min())
    stride = float(times.max() - tmin) + 2 * window + 1
    pad = window + 0.5
    kmin = int(keys.min())
    comp = (keys - kmin) * stride + (times - tmin + pad)
    acc = np.sort(comp[ok])
    thr = np.sort(comp[refused])
    n_keys = int(keys.max()) - kmin + 1
    a_seg = np.floor(acc / stride).astype(np.int64)
    r_seg = np.floor(thr / stride).astype(np.int64)
    counts = window_counts(acc, window)
    at_refused = np.searchsorted(acc, thr, "left") - np.searchsorted(acc, thr - window, "right")
    peak = np.zeros(n_keys, np.int64)
    np.maximum.at(peak, a_seg, counts)
    n_refused = np.bincount(r_seg, minlength=n_keys)
    ranked = np.lexsort((-n_refused, -peak))[:top]
    t0 = float(min(samples.planned.min(), samples.sent.min()))
    out = []
    for s in ranked.tolist():
        if not peak[s] and not n_refused[s]:
            continue
        k = s + kmin
        name = samples.key_names[k] if 0 <= k < len(samples.key_names) else f"key#{k}"
        a_sel, r_sel = a_seg == s, r_seg == s
        out.append((name, acc[a_sel] - s * stride - pad + tmin - t0, counts[a_sel],
                    thr[r_sel] - s * stride - pad + tmin - t0, at_refused[r_sel]))
    return out


__all__ = ["LABELS", "CURVE_QUANTILES", "Figures", "OpRow", "compute", "bucket_seconds", "window_counts",
           "busiest_keys", "accepted_windows", "error_groups", "active_keys"]
