"""Did the target throttle as documented? Findings from the samples and the limits table.

For every rate limit whose operations the run called, the calls are grouped per key
(the sample's key: the device id for device operations, the application for
``events.post``, ... see ``key_kinds``) and placed at their estimated arrival
``sent + latency / 2`` (the midpoint of the only interval the client knows the
server saw them in; ``windows.py`` has the arithmetic). Then:

- **false throttle**: a 429 that no limit of its operation can explain, even when
  every timing error (``tolerance``) goes against the target and calls that got no
  answer are counted as accepted: the target throttled before the documented count;
- **missed throttle**: an accepted call although ``count`` accepted calls were already
  in its window with every timing error in the target's favour: it should have been
  refused;
- **undocumented throttle**: a 429 for an operation no limit in the table covers;
- **throttled while respecting** (pacing mode ``respect``): every other 429, because
  the pacer promised to stay under the limits; the finding says how full the window was.

Each call yields at most one finding. The tolerance defaults to the limit's p99
response time (at least 1 ms): two arrival estimates are each off by at most half
their own latency, so a pair by at most the larger latency.

Probes (any limit that drew 429s): per key, the accepted calls in the window before
the first 429 (the observed onset count) and the time from that 429 to the next
accepted call (recovery). Window model inference (on by default in probe mode)
replays the observed decisions, at the documented and at the observed onset count,
under each model (sliding; fixed with phase 0 and with the phase estimated from the
recoveries; token bucket) and counts the calls the model would have decided
otherwise, on at most ``INFER_KEYS`` of the keys that drew 429s. A model is *consistent* when it has no such call. One consistent model is
the answer; several mean the data cannot tell them apart (steady pacing looks the
same under all three, a burst after idle does not: a token bucket refills within
``window / count`` seconds, a sliding log only when the key's oldest call leaves the
window, a fixed window at a boundary common to all keys, so fixed and sliding are
told apart only by keys whose bursts started at different phases).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from harness.limits import Limit, LimitsTable
from harness.record import Samples

from .windows import MODELS, Judgement, KeyedCalls, arrange, judge

PACING_MODES = ("respect", "probe", "off")  # harness.scenario ThrottleMode
FINDING_KINDS = ("false_throttle", "missed_throttle", "undocumented_throttle", "throttled_while_respecting")
MIN_TOLERANCE = 0.001
INFER_KEYS = 100  # most keys replayed by window model inference


@dataclass(frozen=True)
class Finding:
    """One call the documented limits and the target disagree on."""

    kind: str
    limit: str  # the limit judged ("" for an undocumented throttle)
    op: str
    key: str
    time: float  # estimated arrival, epoch seconds
    in_window: float  # accepted calls of the key before it in its window (tokens left for a bucket)
    count: int  # the documented count (0 when none)
    window: float | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LimitReport:
    """What the run showed about one rate limit."""

    limit: str
    operations: tuple[str, ...]
    count: int
    window: float
    key: str
    model: str
    checked: bool = True
    reason: str = ""
    calls: int = 0
    accepted: int = 0
    throttled: int = 0
    no_response: int = 0
    keys: int = 0
    keys_throttled: int = 0
    tolerance_s: float = 0.0
    max_accepted_in_window: int = 0  # sliding window estimate, whatever the model
    false_throttles: int = 0
    missed_throttles: int = 0
    probe: dict[str, Any] | None = None
    inference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Conformance:
    """Everything ``check_conformance`` found: per-limit reports and the findings."""

    mode: str
    limits: list[LimitReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # the earliest ``max_findings``
    findings_total: int = 0
    findings_by_kind: dict[str, int] = field(default_factory=dict)
    concurrency_touched: list[str] = field(default_factory=list)


def check_conformance(samples: Samples, table: LimitsTable, pacing_mode: str = "respect",
                      key_kinds: Mapping[str, str] | None = None, tolerance: float | None = None,
                      infer: bool | None = None, max_findings: int = 1000) -> Conformance:
    """Judge every rate limit the run touched; see the module docstring for the rules.

    ``key_kinds`` maps an operation to what its sample key holds ("device",
    "application", ...); an operation absent from it is taken to record its limit's
    own key. A limit whose key kind differs from what was recorded is reported as
    not checked, since its counters cannot be rebuilt. ``infer`` (window model
    inference, three more passes per throttled limit) defaults to on in probe mode.
    """
    infer = pacing_mode == "probe" if infer is None else infer
    if pacing_mode not in PACING_MODES:
        raise ValueError(f"pacing mode {pacing_mode!r}; expected one of {', '.join(PACING_MODES)}")
    result = Conformance(mode=pacing_mode)
    n = len(samples)
    names = samples.op_names
    present = set(np.unique(samples.op).tolist()) if n else set()
    code = {name: i for i, name in enumerate(names)}
    throttled_mask = samples.status == 429
    explained = np.zeros(n, bool)  # 429s some documented limit can account for
    in_window = np.full(n, np.nan)
    kind_of = np.full(n, -1, np.int8)  # finding kind index per sample
    limit_of = np.full(n, -1, np.int16)  # index into table.limits
    limited_ops: set[int] = set()
    for li, limit in enumerate(table.limits):
        codes = [code[o] for o in limit.operations if o in code and code[o] in present]
        if limit.kind == "concurrency":
            if codes:
                result.concurrency_touched.append(limit.name)
                limited_ops.update(codes)
                explained |= _op_mask(samples, codes)  # not judged: job state is not in the samples
            continue
        if limit.kind != "rate" or not codes:
            continue
        limited_ops.update(codes)
        report = LimitReport(limit.name, limit.operations, limit.count, float(limit.window or 0.0), limit.key,
                             table.window_model)
        result.limits.append(report)
        recorded = {(key_kinds or {}).get(names[c], limit.key) for c in codes}
        if recorded != {limit.key}:
            report.checked = False
            report.reason = (f"the samples key these calls by {', '.join(sorted(recorded))}; "
                             f"the limit counts per {limit.key}")
            explained |= _op_mask(samples, codes)
            continue
        idx = np.nonzero(_op_mask(samples, codes))[0]
        _judge_limit(samples, limit, li, idx, report, table.window_model, tolerance, infer,
                     explained, in_window, kind_of, limit_of)
    # 429s no limit explains: false (documented op) or undocumented (no limit at all)
    documented = _op_mask(samples, list(limited_ops))
    false = np.nonzero(throttled_mask & documented & ~explained)[0]
    kind_of[false] = 0
    per_limit = np.bincount(limit_of[false][limit_of[false] >= 0], minlength=len(table.limits))
    limit_names = [lim.name for lim in table.limits]
    for report in result.limits:
        report.false_throttles = int(per_limit[limit_names.index(report.limit)])
    kind_of[throttled_mask & ~documented] = 2
    if pacing_mode == "respect":
        kind_of[throttled_mask & (kind_of < 0)] = 3
    _collect(samples, table, result, kind_of, limit_of, in_window, max_findings)
    return result


def _op_mask(samples: Samples, codes: list[int]) -> np.ndarray:
    """Samples whose op is one of ``codes``, via a lookup table (cheaper than np.isin)."""
    table = np.zeros(max(len(samples.op_names), int(samples.op.max()) + 1 if len(samples) else 0, 1), bool)
    table[codes] = True
    return table[samples.op]


def _judge_limit(samples: Samples, limit: Limit, li: int, idx: np.ndarray, report: LimitReport, model: str,
                 tolerance: float | None, infer: bool, explained: np.ndarray, in_window: np.ndarray,
                 kind_of: np.ndarray, limit_of: np.ndarray) -> None:
    window = float(limit.window or 0.0)
    lat = samples.latency[idx]
    if tolerance is None:  # p99 latency, from up to 100,000 evenly spaced calls (a heuristic, not a figure)
        step = max(1, len(lat) // 100_000)
        tolerance = max(MIN_TOLERANCE, float(np.percentile(lat[::step], 99)) if len(lat) else 0.0)
    tol = tolerance
    keys = samples.key[idx]
    calls = arrange(idx, keys, samples.sent[idx], lat, samples.status[idx], window, tol)
    report.tolerance_s = tol
    report.calls = len(calls)
    report.accepted = len(calls.acc)
    report.throttled = len(calls.thr)
    report.no_response = len(calls.unk)
    report.keys = int(np.count_nonzero(np.bincount(keys))) if len(idx) else 0
    report.keys_throttled = int(len(np.unique(calls.key_of(calls.thr))))
    sliding = judge(calls, "sliding", limit.count, window, tol)
    report.max_accepted_in_window = int(sliding.acc_est.max()) + 1 if report.accepted else 0
    j = sliding if model == "sliding" else judge(calls, model, limit.count, window, tol)
    # a 429 any limit of the op can explain is not false; remember this limit and its fill level
    pos = calls.thr_index
    explained[pos[j.thr_could]] = True
    fresh = limit_of[pos] < 0
    in_window[pos[fresh]] = j.thr_est[fresh]
    unexplained = pos[~j.thr_could]
    limit_of[unexplained[limit_of[unexplained] < 0]] = li
    missed = j.acc_surely
    report.missed_throttles = int(missed.sum())
    if report.missed_throttles:
        miss_pos = calls.acc_index(missed)
        kind_of[miss_pos] = 1
        limit_of[miss_pos] = li
        in_window[miss_pos] = j.acc_est[missed]
    if report.throttled:
        report.probe = _probe(calls, sliding, window)
        if infer:
            # judge the models at the count the target showed, so a target that throttles at 25
            # instead of 30 still reveals its window model
            onset = (report.probe.get("onset_count") or {}).get("median")
            counts = sorted({limit.count, max(int(round(onset)), 1) if onset else limit.count})
            report.inference = _infer(calls, counts, window, tol)


def _resumptions(calls: KeyedCalls) -> tuple[np.ndarray, np.ndarray]:
    """For each key's 429 runs: (the 429 composite, the next accepted composite), same key only."""
    nxt = np.searchsorted(calls.acc, calls.thr, "right")
    ok = nxt < len(calls.acc)
    ok[ok] = calls.key_of(calls.acc[nxt[ok]]) == calls.key_of(calls.thr[ok])
    return calls.thr[ok], calls.acc[nxt[ok]]


def _probe(calls: KeyedCalls, sliding: Judgement, window: float) -> dict[str, Any]:
    """Onset count and recovery per throttled key, summarised across keys."""
    keys, first = np.unique(calls.key_of(calls.thr), return_index=True)  # thr is sorted by (key, time)
    onset = sliding.thr_est[first]
    first_thr = calls.thr[first]
    nxt = np.searchsorted(calls.acc, first_thr, "right")
    ok = nxt < len(calls.acc)
    ok[ok] = calls.key_of(calls.acc[nxt[ok]]) == keys[ok]
    recovery = calls.acc[nxt[ok]] - first_thr[ok]  # same key: the composite difference is the time difference

    def spread(x: np.ndarray) -> dict[str, float] | None:
        if not len(x):
            return None
        return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())}

    return {"keys_throttled": int(len(keys)), "onset_count": spread(onset),
            "recovery_s": spread(recovery), "recovered_keys": int(ok.sum()), "window_s": window}


def _estimate_phase(calls: KeyedCalls, window: float) -> float:
    """Fixed-window phase: recoveries start just after a boundary, so take the residue
    (arrival mod window) that follows the largest circular gap between residues."""
    _, resumed = _resumptions(calls)
    if not len(resumed):
        return 0.0
    res = np.sort(np.mod(calls.arrival_of(np.unique(resumed)), window))
    gaps = np.diff(np.concatenate((res, [res[0] + window])))
    return float(res[(int(np.argmax(gaps)) + 1) % len(res)])


def _infer(calls: KeyedCalls, counts: list[int], window: float, tol: float, max_keys: int = INFER_KEYS
           ) -> dict[str, Any]:
    """Violations of each model at each candidate count (documented, observed onset); best per model.

    Only keys that drew a 429 tell the models apart, and at most ``max_keys`` of them
    (evenly spread over the key codes) are replayed, so the cost stays bounded on
    large runs: eight replays of the judged calls.
    """
    throttled_keys = np.unique(calls.key_of(calls.thr))
    if len(throttled_keys) > max_keys:
        throttled_keys = throttled_keys[np.linspace(0, len(throttled_keys) - 1, max_keys).astype(int)]
    calls = calls.only_keys(throttled_keys)
    violations: dict[str, int] = {}
    best_count: dict[str, int] = {}
    for model in MODELS:
        for count in counts:
            phases = [0.0, _estimate_phase(calls, window) - tol] if model == "fixed" else [0.0]
            for phase in phases:
                j = judge(calls, model, count, window, tol, phase)
                bad = int(j.acc_surely.sum() + (~j.thr_could).sum())
                if model not in violations or bad < violations[model]:
                    violations[model], best_count[model] = bad, count
    consistent = [m for m in MODELS if violations[m] == 0]
    if len(consistent) == 1:
        inferred = consistent[0]
    elif consistent:
        inferred = "undetermined"
    else:
        inferred = "none consistent; closest: " + min(MODELS, key=lambda m: violations[m])
    return {"inferred": inferred, "consistent": consistent, "violations": violations,
            "count": best_count.get(inferred, counts[0]), "counts_tried": counts,
            "judged_keys": int(len(throttled_keys)), "judged_calls": len(calls.acc) + len(calls.thr)}


def _collect(samples: Samples, table: LimitsTable, result: Conformance, kind_of: np.ndarray,
             limit_of: np.ndarray, in_window: np.ndarray, max_findings: int) -> None:
    hit = np.nonzero(kind_of >= 0)[0]
    kinds = kind_of[hit]
    result.findings_total = int(len(hit))
    result.findings_by_kind = {FINDING_KINDS[k]: int((kinds == k).sum()) for k in range(len(FINDING_KINDS))
                               if (kinds == k).any()}
    arrival = samples.sent[hit] + samples.latency[hit] / 2
    first = hit[np.argsort(arrival, kind="stable")[:max_findings]]
    fill = "tokens left" if table.window_model == "token_bucket" else "accepted in its window before it"

    def detail(k: int, w: float, lim: Limit | None) -> str:
        where = f"{w:g} {fill}" if not np.isnan(w) else "window not judged"
        doc = f"documented {lim.count} per {lim.window:g} s" if lim and lim.window else "no documented rate limit"
        return {0: f"429 before the documented count was reached: {where}; {doc}",
                1: f"accepted although the documented count was reached: {where}; {doc}",
                2: "429 for an operation without a documented limit",
                3: f"429 although the pacing mode promised to stay under the limits: {where}; {doc}"}[k]

    for i in first.tolist():
        k = int(kind_of[i])
        li = int(limit_of[i])
        lim = table.limits[li] if li >= 0 else None
        if lim is None and k in (0, 3):
            lims = [x for x in table.for_operation(samples.op_names[samples.op[i]]) if x.kind == "rate"]
            lim = lims[0] if lims else None
        op = samples.op_names[samples.op[i]] if samples.op[i] < len(samples.op_names) else str(samples.op[i])
        key = samples.key_names[samples.key[i]] if samples.key[i] < len(samples.key_names) else str(samples.key[i])
        w = in_window[i]
        result.findings.append(Finding(
            kind=FINDING_KINDS[k], limit=lim.name if lim else "", op=op, key=key,
            time=float(samples.sent[i] + samples.latency[i] / 2),
            in_window=float(w) if not np.isnan(w) else -1.0,
            count=lim.count if lim else 0, window=lim.window if lim else None, detail=detail(k, w, lim)))
