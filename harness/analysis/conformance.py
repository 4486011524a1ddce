"""Did the target throttle as documented? Findings only where the samples prove them.

For every rate limit whose operations the run called, the calls are grouped per key
(the sample's key: the device id for device operations, the application for
``events.post``, ... see ``key_kinds``). The server decided each call at an instant it
does not tell us, but no earlier than the call was sent and no later than its answer
came back: ``[sent, sent + latency]`` (widened by ``slack``, 0.5 ms). Any arrival order
those bounds allow may be the true one (``windows.py`` has the arithmetic, ``judgement.py``
the verdicts). Then:

- **false throttle**: a 429 such that, under *every* allowed order, fewer than
  ``count`` accepted calls of its key were in the window before it (calls without an
  answer counted as accepted, which helps the target), under every limit of its
  operation: the target throttled before the documented count;
- **missed throttle**: an accepted call such that, under every allowed order,
  ``count`` or more accepted calls (calls without an answer never count) already were
  in its window: it should have been refused;
- **undecided** (never a finding): a 429 that is neither provably false nor provably
  justified, or an accepted call that could have been over the count but is not
  provably so. Counted per limit and overall, shown next to the findings;
- **undocumented throttle**: a 429 for an operation no limit in the table covers;
- **throttled while respecting** (pacing mode ``respect``): every other 429, because
  the pacer promised to stay under the limits (this judges the harness, not the
  target; whether the target was right is still counted as justified or undecided).

The same holds for fixed windows (a call whose bounds straddle a boundary may be in
either window) and for the token bucket (tokens: a 429 is false when even the fewest
tokens the bounds allow are >= 1; an accepted call missed when even the most are < 1).
Each call yields at most one finding. ``findings_total`` and ``findings_by_kind`` are
true counts; the findings list is cut to ``max_findings`` for display.

Concurrency limits ("one running job at a time") are judged by ``concurrency.py`` with
the same bounds and a stated range of job lengths; size caps by ``sizes.py`` on the
bytes the samples carry. Their findings join the same list and counts (a false or
missed throttle of a concurrency limit carries its name; size findings have kinds of
their own), so one total fails the run. ``documented.py`` lays every result over the
18 rows of the documented table.

A limit is **tested** when some key could have come within 10 % of it (a window that
may have held ``0.9 * count`` accepted calls) or it drew a 429; a respect run with no
tested limit says so (``not_tested_reason``) instead of claiming conformance.

Probes (any limit that drew 429s): per key, the accepted calls in the window before
its first 429 (the observed onset: bounds ``sure`` and ``could``, equal when timing
cannot change the count) and the time from that 429 to the key's next accepted call
(recovery, with its bounds). Window model inference (on by default in probe mode)
judges the observed decisions under each model (sliding; fixed with phase 0 and with
the phase estimated from the recoveries; token bucket) at a handful of counts (the
documented one, the observed onsets +-1) with the same bounds, on at most
``INFER_KEYS`` of the keys that drew 429s. A (model, count) is *consistent* when it
has no proven violation. One consistent model is the answer, else "undetermined";
the count likewise (``None`` when not single). Steady pacing looks the same under all
three models; a burst after idle does not: a token bucket refills within
``window / count`` seconds, a sliding log only when the key's oldest call leaves the
window, a fixed window at a boundary common to all keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.limits import PACING_MODES, Limit, LimitsTable
from harness.record import Samples

from . import concurrency as conc
from . import sizes
from .documented import ROWS, documented_rows, rows_summary
from .judgement import exact_accepted, judge, peaks, quick_for
from .windows import MODELS, SLACK, KeyedCalls, arrange, could_sliding, sure_sliding

FINDING_KINDS = ("false_throttle", "missed_throttle", "undocumented_throttle", "throttled_while_respecting",
                 *sizes.SIZE_KINDS)
SIZE_BASE = 4  # FINDING_KINDS index of sizes.SIZE_KINDS[0]
INFER_KEYS = 100  # most keys replayed by window model inference
NEAR = 0.9  # a limit is tested when a window may have held this share of its count
MAX_COUNTS = 8  # most candidate counts inference tries
RULE = ("A 429 is a false throttle only if, under every arrival order the calls' own send and answer times "
        "allow, fewer than the documented count of accepted calls of its key were in its window; an accepted "
        "call is a missed throttle only if, under every such order, the count was already reached. Calls these "
        "bounds cannot decide are counted as undecided, never as findings.")
NOT_TESTED = "no key came within 10% of a limit"
NOTHING_CALLED = "the run called no operation with a documented limit"


@dataclass(frozen=True)
class Finding:
    """One call the documented limits and the target disagree on, provably."""

    kind: str
    limit: str  # the limit judged ("" for an undocumented throttle)
    op: str
    key: str
    time: float  # the middle of the call's bounds, epoch seconds
    in_window: float  # false: most accepted calls its window could hold; missed: fewest it surely held (tokens
    # for a bucket: fewest left for a false throttle, most left for a missed one)
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
    tolerance_s: float = 0.0  # the slack added to both ends of every call's bounds
    max_accepted_in_window: int = 0  # sliding window, whatever the model: most accepted calls surely in one window
    max_possible_in_window: int = 0  # ... most that could have been (an upper bound)
    tested: bool = False  # some window may have held 90% of the count, or a 429 came
    false_throttles: int = 0
    missed_throttles: int = 0
    justified_throttles: int = 0
    undecided_throttles: int = 0
    undecided_accepted: int = 0
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
    findings_total: int = 0  # true count
    findings_by_kind: dict[str, int] = field(default_factory=dict)  # true counts
    concurrency_touched: list[str] = field(default_factory=list)
    concurrency: list[conc.ConcurrencyReport] = field(default_factory=list)
    sizes: list[sizes.SizeReport] = field(default_factory=list)
    jobs: conc.JobLength | None = None
    by_op: dict[str, dict[str, Any]] = field(default_factory=dict)  # per documented operation the run called
    documented_rows: list[dict[str, Any]] = field(default_factory=list)  # the 18 rows, always
    rows_summary: dict[str, Any] = field(default_factory=dict)
    undecided_total: int = 0
    undecided_by_kind: dict[str, int] = field(default_factory=dict)  # {"throttled", "accepted", "refused"}
    tested: bool = False
    not_tested_reason: str = ""
    rule: str = RULE


@dataclass
class _Marks:
    """Per-sample verdicts shared across limits (a call may be judged by several)."""

    explained: np.ndarray  # 429s some documented limit can account for
    justified: np.ndarray  # 429s some limit proves right (or a concurrency limit covers)
    undecided_acc: np.ndarray
    undecided_ref: np.ndarray  # size refusals no declared size can judge
    in_window: np.ndarray
    kind_of: np.ndarray  # finding kind index per sample
    limit_of: np.ndarray  # index into table.limits


def check_conformance(samples: Samples, table: LimitsTable, pacing_mode: str = "respect",
                      key_kinds: Mapping[str, str] | None = None, tolerance: float | None = None,
                      infer: bool | None = None, max_findings: int = 1000,
                      jobs: conc.JobLength | None = None) -> Conformance:
    """Judge every limit the run touched (rate, concurrency, size); see the module docstring for the rules.

    ``key_kinds`` maps an operation to what its sample key holds ("device",
    "application", ...); an operation absent from it is taken to record its limit's
    own key. A limit whose key kind differs from what was recorded is reported as
    not checked, since its counters cannot be rebuilt. ``tolerance`` is the slack (s)
    added to both ends of every call's bounds (default 0.5 ms). ``infer`` (window
    model inference) defaults to on in probe mode. ``jobs``: the job lengths the
    concurrency judge allows (``concurrency.job_length``; default: unknown target, an
    assumed maximum and no minimum).
    """
    infer = pacing_mode == "probe" if infer is None else infer
    if pacing_mode not in PACING_MODES:
        raise ValueError(f"pacing mode {pacing_mode!r}; expected one of {', '.join(PACING_MODES)}")
    slack = SLACK if tolerance is None else float(tolerance)
    jobs = conc.job_length(None, None, table) if jobs is None else jobs
    result = Conformance(mode=pacing_mode, jobs=jobs)
    n = len(samples)
    names = samples.op_names
    present = set(np.unique(samples.op).tolist()) if n else set()
    code = {name: i for i, name in enumerate(names)}
    throttled_mask = samples.status == 429
    marks = _Marks(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool), np.full(n, np.nan),
                   np.full(n, -1, np.int8), np.full(n, -1, np.int16))
    judged: dict[str, str] = {}  # per limit: which rule applied, in words
    basis: dict[str, str] = {}  # ... in a few words, for the report's table
    reports: dict[str, dict[str, Any]] = {}
    limited_ops: set[int] = set()
    for li, limit in enumerate(table.limits):
        codes = [code[o] for o in limit.operations if o in code and code[o] in present]
        if limit.kind == "concurrency":
            judged[limit.name] = conc.judged_text(jobs)
            basis[limit.name] = conc.judged_short(jobs)
            if codes:
                result.concurrency_touched.append(limit.name)
                limited_ops.update(codes)
                result.concurrency.append(_judge_jobs(samples, limit, li, codes, jobs, slack, key_kinds, marks))
            continue
        if limit.kind == "size":
            judged[limit.name] = sizes.judged_text(limit)
            basis[limit.name] = f"{sizes.applies_to(limit)} bytes"
            if codes:
                result.sizes.append(_judge_size(samples, limit, li, codes, marks))
            continue
        basis[limit.name] = f"send/answer bounds, {table.window_model} window"
        judged[limit.name] = (f"{limit.count:,} per {limit.window or 0:g} s per {limit.key} ({table.window_model} "
                              "window): each 429 and accepted call judged on its send and answer times")
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
            marks.explained |= _op_mask(samples, codes)
            marks.justified |= _op_mask(samples, codes)
            continue
        idx = np.nonzero(_op_mask(samples, codes))[0]
        _judge_limit(samples, limit, li, idx, report, table.window_model, slack, infer, marks)
    # 429s no limit explains: false (documented op) or undocumented (no limit at all)
    documented = _op_mask(samples, list(limited_ops))
    false = np.nonzero(throttled_mask & documented & ~marks.explained)[0]
    marks.kind_of[false] = 0
    per_limit = np.bincount(marks.limit_of[false][marks.limit_of[false] >= 0], minlength=len(table.limits))
    limit_names = [lim.name for lim in table.limits]
    for report in result.limits:
        report.false_throttles = int(per_limit[limit_names.index(report.limit)])
    for creport in result.concurrency:
        creport.false_throttles = int(per_limit[limit_names.index(creport.limit)])
    marks.kind_of[throttled_mask & ~documented] = 2
    if pacing_mode == "respect":
        marks.kind_of[throttled_mask & (marks.kind_of < 0)] = 3
    # overall: calls that are not findings (a respect-mode 429 is one, whatever the target did)
    free = marks.kind_of < 0
    und_pos = [np.flatnonzero(throttled_mask & documented & marks.explained & ~marks.justified & free),
               np.flatnonzero(marks.undecided_acc & free),
               np.flatnonzero(marks.undecided_ref & free) if result.sizes else np.zeros(0, np.int64)]
    und_thr, und_acc, und_ref = (len(x) for x in und_pos)
    result.undecided_by_kind = {"throttled": und_thr, "accepted": und_acc}
    if und_ref or result.sizes:
        result.undecided_by_kind["refused"] = und_ref
    result.undecided_total = und_thr + und_acc + und_ref
    result.tested = (any(r.tested for r in result.limits) or any(r.tested for r in result.concurrency)
                     or any(r.tested for r in result.sizes) or bool(throttled_mask.any()))
    if not result.tested:
        checked = any(r.checked for r in result.limits) or result.concurrency or result.sizes
        result.not_tested_reason = NOT_TESTED if checked else NOTHING_CALLED
    for r in result.limits:
        reports[r.limit] = {"tested": r.tested, "checked": r.checked, "reason": r.reason}
    for c in result.concurrency:
        reports[c.limit] = {"tested": c.tested, "checked": c.checked, "reason": c.reason}
    for srep in result.sizes:
        reports[srep.limit] = {"tested": srep.tested, "checked": True, "reason": ""}
    result.by_op = _per_op(samples, table, marks, np.concatenate(und_pos))
    result.documented_rows = documented_rows(table, result.by_op, reports, judged, basis)
    result.rows_summary = rows_summary(result.documented_rows)
    _collect(samples, table, result, marks, max_findings)
    return result


def _judge_jobs(samples: Samples, limit: Limit, li: int, codes: list[int], jobs: conc.JobLength, slack: float,
                key_kinds: Mapping[str, str] | None, marks: _Marks) -> conc.ConcurrencyReport:
    """One concurrency limit: ``concurrency.py`` judges, the verdicts join the shared marks.

    Only 2xx answers started a job and only 429s are its refusals; other errors (a 400,
    a 404) neither start nor refuse one and are left out; a 5xx or no answer may have
    started one (unknown, like a lost answer).
    """
    names = samples.op_names
    mask = _op_mask(samples, codes)
    recorded = {(key_kinds or {}).get(names[c], limit.key) for c in codes}
    status = samples.status
    keep = mask & (((status >= 200) & (status < 300)) | (status == 429) | (status == 0) | (status >= 500))
    idx = np.nonzero(keep)[0]
    if recorded != {limit.key}:
        report = conc.ConcurrencyReport(limit.name, limit.operations, limit.count, limit.key, jobs.min_s, jobs.max_s,
                                        jobs.basis, checked=False, calls=int(mask.sum()))
        report.reason = (f"the samples key these calls by {', '.join(sorted(recorded))}; "
                         f"the limit counts per {limit.key}")
        marks.explained |= mask
        marks.justified |= mask
        return report
    report, v = conc.judge_concurrency(samples, limit, idx, jobs, slack)
    pos = v.thr_index
    marks.explained[pos[~v.thr_false]] = True
    marks.justified[pos[v.thr_justified]] = True
    fresh = marks.limit_of[pos] < 0
    marks.in_window[pos[fresh]] = v.thr_could[fresh]
    unexplained = pos[v.thr_false]
    marks.limit_of[unexplained[marks.limit_of[unexplained] < 0]] = li
    marks.undecided_acc[v.acc_index[v.acc_undecided]] = True
    miss = v.acc_index[v.acc_missed]
    marks.kind_of[miss] = 1
    marks.limit_of[miss] = li
    marks.in_window[miss] = v.acc_sure[v.acc_missed]
    return report


def _judge_size(samples: Samples, limit: Limit, li: int, codes: list[int], marks: _Marks) -> sizes.SizeReport:
    idx = np.nonzero(_op_mask(samples, codes))[0]
    report, v = sizes.judge_sizes(samples, limit, idx)
    free = marks.kind_of[v.finding_index] < 0  # a call yields at most one finding
    at = v.finding_index[free]
    marks.kind_of[at] = SIZE_BASE + v.finding_kind[free]
    marks.in_window[at] = v.finding_bytes[free]
    marks.limit_of[at] = li
    marks.undecided_ref[v.undecided_index] = True
    return report


def _per_op(samples: Samples, table: LimitsTable, marks: _Marks, undecided: np.ndarray) -> dict[str, dict[str, Any]]:
    """Calls, accepted (2xx), refused, statuses, findings and undecided calls (``undecided``: their
    positions) per documented operation.

    Most calls are answered 200: each documented operation's calls are one comparison
    over the op column, and the (operation, status) pairs are counted over the other
    calls only, so a 10-million-sample run pays a few cheap passes.
    """
    n_ops = max(len(samples.op_names), int(samples.op.max()) + 1 if len(samples) else 0)
    size_ops = {o for lim in table.limits if lim.kind == "size" for o in lim.operations}
    wanted = {o for row in ROWS for o in row.operations} | {o for lim in table.limits for o in lim.operations}
    codes = [code for code, name in enumerate(samples.op_names) if name in wanted]
    if not n_ops or not codes:
        return {}
    op = samples.op
    other = np.flatnonzero(samples.status != 200)
    pairs = np.bincount(op[other].astype(np.int64) * 600 + np.clip(samples.status[other], 0, 599),
                        minlength=n_ops * 600).reshape(n_ops, 600)
    hit = np.flatnonzero(marks.kind_of >= 0)
    kinds = np.bincount(op[hit].astype(np.int64) * len(FINDING_KINDS) + marks.kind_of[hit],
                        minlength=n_ops * len(FINDING_KINDS)).reshape(n_ops, len(FINDING_KINDS))
    und = np.bincount(op[undecided], minlength=n_ops)
    out: dict[str, dict[str, Any]] = {}
    for code in codes:
        name = samples.op_names[code]
        row = pairs[code]
        row[200] = np.count_nonzero(op == code) - row.sum()
        if not row.any():
            continue
        refused = int(row[400] + row[413]) if name in size_ops else int(row[429])
        out[name] = {"calls": int(row.sum()), "accepted": int(row[200:300].sum()), "refused": refused,
                     "no_response": int(row[0]),
                     "statuses": {str(s): int(row[s]) for s in np.flatnonzero(row).tolist()},
                     "findings": int(kinds[code].sum()),
                     "findings_by_kind": {FINDING_KINDS[k]: int(kinds[code, k]) for k in np.flatnonzero(kinds[code])},
                     "undecided": int(und[code])}
    return out


def _op_mask(samples: Samples, codes: list[int]) -> np.ndarray:
    """Samples whose op is one of ``codes``, via a lookup table (cheaper than np.isin)."""
    table = np.zeros(max(len(samples.op_names), int(samples.op.max()) + 1 if len(samples) else 0, 1), bool)
    table[codes] = True
    return table[samples.op]


def _judge_limit(samples: Samples, limit: Limit, li: int, idx: np.ndarray, report: LimitReport, model: str,
                 slack: float, infer: bool, marks: _Marks) -> None:
    window = float(limit.window or 0.0)
    count = limit.count
    keys = samples.key[idx]
    calls = arrange(idx, keys, samples.sent[idx], samples.latency[idx], samples.status[idx], window, slack)
    report.tolerance_s = slack
    report.calls = len(calls)
    report.accepted = len(calls.acc)
    report.throttled = len(calls.thr)
    report.no_response = calls.n_unk
    report.keys = int(np.count_nonzero(np.bincount(keys))) if len(idx) else 0
    report.keys_throttled = len(np.unique(calls.key_of(calls.thr.s)))
    sliding = quick_for(calls, "sliding", window)
    j = judge(calls, model, count, window, quick=sliding if model == "sliding" else None)
    proven, possible, near = peaks(calls, window, math.ceil(NEAR * count), sliding, start=count)
    report.max_accepted_in_window, report.max_possible_in_window = proven, possible
    report.tested = near or report.throttled > 0
    # a 429 any limit of the op can explain is not false; remember this limit and its bound
    pos = calls.thr.index
    marks.explained[pos[~j.thr_false]] = True
    marks.justified[pos[~j.thr_false & ~j.thr_undecided]] = True
    fresh = marks.limit_of[pos] < 0
    marks.in_window[pos[fresh]] = j.thr_could[fresh]
    unexplained = pos[j.thr_false]
    marks.limit_of[unexplained[marks.limit_of[unexplained] < 0]] = li
    report.justified_throttles = int((~j.thr_false & ~j.thr_undecided).sum())
    report.undecided_throttles = int(j.thr_undecided.sum())
    report.undecided_accepted = int(j.acc_undecided.sum())
    marks.undecided_acc[calls.acc.index_at(np.flatnonzero(j.acc_undecided))] = True
    missed = np.nonzero(j.acc_missed)[0]
    report.missed_throttles = len(missed)
    if len(missed):
        value = j.acc_sure[missed]
        todo = np.isnan(value)
        if todo.any():
            value[todo] = exact_accepted(calls, model, count, window, missed[todo])[1]
        miss_pos = calls.acc.index_at(missed)
        marks.kind_of[miss_pos] = 1
        marks.limit_of[miss_pos] = li
        marks.in_window[miss_pos] = value
    if report.throttled:
        report.probe = _probe(calls, window)
        if infer:
            report.inference = _infer(calls, _candidate_counts(count, report.probe), window)


def _spread(x: np.ndarray) -> dict[str, float] | None:
    if not len(x):
        return None
    return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())}


def _next_accepted(calls: KeyedCalls, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For 429s at ``comp`` (their s): the key's next accepted call by send time (position, found)."""
    acc = calls.acc
    nxt = acc.n_s_le(comp)
    ok = nxt < len(acc)
    ok[ok] = calls.key_of(acc.s[nxt[ok]]) == calls.key_of(comp[ok])
    return nxt, ok


def _probe(calls: KeyedCalls, window: float) -> dict[str, Any]:
    """Onset count (bounds) and recovery per throttled key, summarised across keys."""
    thr, acc = calls.thr, calls.acc
    keys, first = np.unique(calls.key_of(thr.s), return_index=True)  # thr is sorted by (key, s)
    xs, xe = thr.s[first], thr.e[first]
    low = sure_sliding(acc, xs, xe, window)
    high = could_sliding(calls.maybe, xs, xe, window)
    nxt, ok = _next_accepted(calls, xs)
    ns, ne = acc.s[nxt[ok]], acc.e[nxt[ok]]
    recovery = (ns + ne) / 2 - (xs[ok] + xe[ok]) / 2  # same key: composite differences are time differences
    onset = None
    if len(keys):
        onset = {"min": float(low.min()), "median": float(np.median((low + high) / 2)), "max": float(high.max())}
    # a bucket full at the key's first call refuses once C - n + C t / W < 1: C ~ n / (1 + t / W)
    first_acc = acc.n_s_lt(keys * calls.stride)  # each key's first accepted call (the line starts at key * stride)
    has = first_acc < len(acc)
    has[has] = calls.key_of(acc.s[first_acc[has]]) == keys[has]
    n_before = acc.n_s_lt(xs[has]) - first_acc[has]
    burst = n_before / (1 + (xs[has] - acc.s[first_acc[has]]) / window)
    return {"keys_throttled": len(keys), "onset_count": onset,
            "onset_bounds": {"sure": _spread(low.astype(float)), "could": _spread(high.astype(float))},
            "onset_exact_keys": int((low == high).sum()),
            "recovery_s": _spread(recovery),
            "recovery_bounds_s": ({"min": float((ns - xe[ok]).min()), "max": float((ne - xs[ok]).max())}
                                  if ok.any() else None),
            "recovered_keys": int(ok.sum()), "window_s": window,
            "bucket_capacity_estimate": float(np.median(burst)) if len(burst) else None}


def _candidate_counts(count: int, probe: dict[str, Any]) -> list[int]:
    """The documented count and the observed onsets (sliding onset, bucket capacity), each +-1,
    at most MAX_COUNTS of them, nearest first."""
    out = {count}
    onset = probe.get("onset_count") or {}
    near: list[int] = []
    if onset:
        lo, hi, mid = int(onset["min"]), math.ceil(onset["max"]), round(onset["median"])
        near = [mid, mid - 1, mid + 1, lo, hi]
    bucket = probe.get("bucket_capacity_estimate")
    if bucket:
        near += [round(bucket), math.floor(bucket), math.ceil(bucket)]
    if onset:
        near += [lo - 1, lo + 1, hi - 1, hi + 1]  # while room is left
    for c in near:
        if len(out) >= MAX_COUNTS:
            break
        if c >= 1:
            out.add(c)
    return sorted(out)


def _estimate_phase(calls: KeyedCalls, window: float) -> float:
    """Fixed-window phase: recoveries start just after a boundary, so take the residue
    (earliest decision time mod window) that follows the largest circular gap between residues."""
    nxt, ok = _next_accepted(calls, calls.thr.s)
    if not ok.any():
        return 0.0
    res = np.sort(np.mod(calls.epoch(np.unique(calls.acc.s[nxt[ok]])), window))
    gaps = np.diff(np.concatenate((res, [res[0] + window])))
    return float(res[(int(np.argmax(gaps)) + 1) % len(res)])


def _infer(calls: KeyedCalls, counts: list[int], window: float, max_keys: int = INFER_KEYS) -> dict[str, Any]:
    """Proven violations of each model at each candidate count; the consistent (model, count) pairs.

    Only keys that drew a 429 tell the models apart, and at most ``max_keys`` of them
    (evenly spread over the key codes) are judged, so the cost stays bounded on large
    runs: a handful of judgements of the judged calls per model.
    """
    throttled_keys = np.unique(calls.key_of(calls.thr.s))
    if len(throttled_keys) > max_keys:
        throttled_keys = throttled_keys[np.linspace(0, len(throttled_keys) - 1, max_keys).astype(int)]
    calls = calls.only_keys(throttled_keys)
    by_count: dict[str, dict[str, int]] = {}
    for model in MODELS:
        phases = [0.0, _estimate_phase(calls, window)] if model == "fixed" else [0.0]
        by_count[model] = {}
        for count in counts:
            bad = min(judge(calls, model, count, window, phase).violations for phase in phases)
            by_count[model][str(count)] = bad
    pairs = [(m, int(c)) for m in MODELS for c, bad in by_count[m].items() if bad == 0]
    models = sorted({m for m, _ in pairs}, key=MODELS.index)
    inferred = models[0] if len(models) == 1 else "undetermined"
    counts_ok = sorted({c for m, c in pairs if inferred in ("undetermined", m)})
    return {"model": inferred, "inferred": inferred, "count": counts_ok[0] if len(counts_ok) == 1 else None,
            "window_s": window, "consistent": models,
            "consistent_pairs": [{"model": m, "count": c} for m, c in pairs],
            "violations": {m: min(v.values()) for m, v in by_count.items()}, "violations_by_count": by_count,
            "counts_tried": counts, "judged_keys": len(throttled_keys),
            "judged_calls": len(calls.acc) + len(calls.thr)}


def _collect(samples: Samples, table: LimitsTable, result: Conformance, marks: _Marks, max_findings: int) -> None:
    kind_of, limit_of, in_window = marks.kind_of, marks.limit_of, marks.in_window
    hit = np.nonzero(kind_of >= 0)[0]
    kinds = kind_of[hit]
    result.findings_total = len(hit)
    result.findings_by_kind = {FINDING_KINDS[k]: int((kinds == k).sum()) for k in range(len(FINDING_KINDS))
                               if (kinds == k).any()}
    arrival = samples.sent[hit] + samples.latency[hit] / 2
    first = hit[np.argsort(arrival, kind="stable")[:max_findings]]
    bucket = table.window_model == "token_bucket"

    def where(k: int, w: float) -> str:
        if np.isnan(w):
            return "window not judged"
        if bucket:
            return f"at least {w:.2f} tokens left" if k == 0 else f"at most {w:.2f} tokens left"
        if k == 1:
            return f"at least {w:g} accepted calls surely in its window before it"
        return f"at most {w:g} accepted calls could have been in its window before it"

    jobs = result.jobs

    def jobs_where(k: int, w: float) -> str:
        if np.isnan(w):
            return "jobs not judged"
        if k == 1:
            return f"at least {w:g} earlier accepted call(s) of its key surely still running"
        return f"at most {w:g} earlier accepted call(s) of its key could still have been running"

    def detail(k: int, w: float, lim: Limit | None, i: int) -> str:
        if k >= SIZE_BASE and lim is not None:
            status = int(samples.status[i])
            kname = samples.key_names[samples.key[i]] if samples.key[i] < len(samples.key_names) else ""
            return sizes.finding_detail(FINDING_KINDS[k], int(w), lim.count, status, sizes.request_facts(kname)[2])
        if lim is not None and lim.kind == "concurrency":
            doc = (f"documented {lim.count} running job{'s' if lim.count != 1 else ''} per {lim.key}; jobs last "
                   f"{jobs.text if jobs else '?'} ({jobs.basis if jobs else 'unknown'})")
            return {0: f"429 although no earlier job of its key could still be running: {jobs_where(k, w)}; {doc}",
                    1: f"accepted while an earlier job of its key was surely still running: {jobs_where(k, w)}; {doc}",
                    3: f"429 although the pacing mode promised to stay under the limits: {jobs_where(k, w)}; {doc}",
                    }.get(k, "")
        doc = f"documented {lim.count} per {lim.window:g} s" if lim and lim.window else "no documented rate limit"
        return {0: f"429 before the documented count could have been reached: {where(k, w)}; {doc}",
                1: f"accepted although the documented count was surely reached: {where(k, w)}; {doc}",
                2: "429 for an operation without a documented limit",
                3: f"429 although the pacing mode promised to stay under the limits: {where(k, w)}; {doc}"}[k]

    for i in first.tolist():
        k = int(kind_of[i])
        li = int(limit_of[i])
        lim = table.limits[li] if li >= 0 else None
        if lim is None and k in (0, 3):
            lims = sorted((x for x in table.for_operation(samples.op_names[samples.op[i]]) if x.kind != "size"),
                          key=lambda x: x.kind != "rate")
            lim = lims[0] if lims else None
        op = samples.op_names[samples.op[i]] if samples.op[i] < len(samples.op_names) else str(samples.op[i])
        key = samples.key_names[samples.key[i]] if samples.key[i] < len(samples.key_names) else str(samples.key[i])
        w = in_window[i]
        result.findings.append(Finding(
            kind=FINDING_KINDS[k], limit=lim.name if lim else "", op=op, key=key,
            time=float(samples.sent[i] + samples.latency[i] / 2),
            in_window=float(w) if not np.isnan(w) else -1.0,
            count=lim.count if lim else 0, window=lim.window if lim else None, detail=detail(k, w, lim, i)))
