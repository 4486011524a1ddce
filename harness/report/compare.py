"""Baseline vs current: what changed per operation, and which changes are regressions.

A change is a **regression** only when both hold:

1. it exceeds the threshold (default 10 %): a percentile of corrected latency or of
   response time rose by more than ``threshold`` of the baseline value, or the
   throughput fell by more than ``threshold``;
2. it is beyond run-to-run noise: for a percentile, the whole bootstrap confidence
   interval of the difference (current - baseline) lies above zero; for throughput, a
   Poisson test on the two counts rejects "same rate". Both run at a family-wise 99 %:
   a comparison makes m tests (operations x 2 latencies x 5 percentiles, plus one
   throughput test per operation), so each interval is at 1 - 0.01/m (Bonferroni).
   Without that, 30 tests at 99 % each flagged about one same-distribution pair in 30.

The bootstrap is exact and cheap. A bootstrap resample of a sorted sample ``x`` (size
n) is ``x[ceil(n U_i) - 1]`` for uniforms ``U_i``; that map is monotone, so the k-th
order statistic of the resample is ``x[ceil(n U_(k)) - 1]``, and the k-th smallest of n
uniforms is distributed Beta(k, n - k + 1). So ``B`` draws of that Beta give ``B``
bootstrap replicates of the percentile without building a single resample. Each
operation is first subsampled to at most 50,000 values per run (fixed seed), which
bounds the cost (one sort of 50k per op, metric and run) and makes the interval a
little wider (conservative); the reported values themselves are exact, over every sample.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from harness.analysis.percentiles import exact_percentiles, rank
from harness.analysis.throughput import counts_by_op, time_origin
from harness.record import Samples, read_samples

COMPARED = ("p50", "p90", "p95", "p99", "p99.9")
METRICS = ("corrected", "response")
MAX_SUBSAMPLE = 50_000
CONFIDENCE = 0.99  # family-wise, over every test of one comparison
SEED = 20261127
METHOD = (f"bootstrap confidence interval of the percentile difference (exact order-statistic bootstrap via "
          f"Beta draws, at most {MAX_SUBSAMPLE:,} samples per operation and run, seed {SEED}), family-wise "
          f"{CONFIDENCE:.0%} with Bonferroni over all tests; throughput: Poisson z-test on the counts, same level")


def draws_for(alpha: float) -> int:
    """Bootstrap replicates so that the alpha/2 tail holds at least ~10 of them (2,000 to 200,000)."""
    return int(min(max(2000, math.ceil(20 / alpha)), 200_000))


def _subsample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(values) > MAX_SUBSAMPLE:
        values = values[rng.choice(len(values), MAX_SUBSAMPLE, replace=False)]
    return np.sort(values)


def bootstrap_percentile(sorted_values: np.ndarray, label: str, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` bootstrap replicates of a percentile of a sorted sample (see the module docstring).

    >>> rng = np.random.default_rng(0)
    >>> reps = bootstrap_percentile(np.arange(1000.0), "p50", 4000, rng)
    >>> bool(440 < np.quantile(reps, 0.005) < 499 < np.quantile(reps, 0.995) < 560)
    True
    """
    n = len(sorted_values)
    k = rank(label, n) + 1  # 1-based order statistic
    u = rng.beta(k, n - k + 1, size=draws)
    idx = np.clip(np.ceil(n * u).astype(np.int64) - 1, 0, n - 1)
    return sorted_values[idx]


def _count(counts: np.ndarray, i: int | None) -> int:
    return int(counts[i]) if i is not None and i < len(counts) else 0


def _change(base: float | None, cur: float | None) -> float | None:
    if base is None or cur is None:
        return None
    if base == 0:
        return 0.0 if cur == 0 else math.inf
    return (cur - base) / base


def _metric_values(s: Samples, sel: np.ndarray, metric: str) -> np.ndarray:
    if metric == "corrected":
        return np.maximum(s.sent[sel] - s.planned[sel] + s.latency[sel], 0.0)
    return s.latency[sel]


def compare_samples(base: Samples, cur: Samples, threshold: float = 0.10) -> dict[str, Any]:
    """The comparison of two runs' samples; ``compare_runs`` reads the folders and calls this."""
    rng = np.random.default_rng(SEED)
    tb, te = time_origin(base)
    cb, ce = time_origin(cur)
    dur_b, dur_c = max(te - tb, 1e-9), max(ce - cb, 1e-9)
    counts_b, counts_c = counts_by_op(base)["count"], counts_by_op(cur)["count"]
    names = list(dict.fromkeys([*base.op_names, *cur.op_names]))
    both = sum(1 for op in names if _count(counts_b, base.op_index(op)) and _count(counts_c, cur.op_index(op)))
    tests = max(both * (1 + len(METRICS) * len(COMPARED)), 1)
    alpha = (1 - CONFIDENCE) / tests  # per test, two-sided
    z_crit = NormalDist().inv_cdf(1 - alpha / 2)
    draws = draws_for(alpha)
    rows: list[dict[str, Any]] = []
    regressions: list[dict[str, Any]] = []
    for op in names:
        ib, ic = base.op_index(op), cur.op_index(op)
        nb_, nc_ = _count(counts_b, ib), _count(counts_c, ic)
        row: dict[str, Any] = {"op": op, "baseline_count": nb_, "current_count": nc_}
        if nb_ == 0 or nc_ == 0:
            row["note"] = "only in the current run" if nb_ == 0 else "only in the baseline run"
            rows.append(row)
            continue
        rate_b, rate_c = nb_ / dur_b, nc_ / dur_c
        z = (rate_c - rate_b) / math.sqrt(nc_ / dur_c**2 + nb_ / dur_b**2)
        tchange = _change(rate_b, rate_c)
        t_reg = tchange is not None and tchange < -threshold and z < -z_crit
        row["throughput"] = {"baseline": rate_b, "current": rate_c, "change": tchange, "z": z, "regression": t_reg}
        if t_reg:
            regressions.append({"op": op, "metric": "throughput", "label": "req/s", "baseline": rate_b,
                                "current": rate_c, "change": tchange})
        sel_b = np.nonzero(base.op == ib)[0]
        sel_c = np.nonzero(cur.op == ic)[0]
        for metric in METRICS:
            vb, vc = _metric_values(base, sel_b, metric), _metric_values(cur, sel_c, metric)
            pb, pc = exact_percentiles(vb, COMPARED), exact_percentiles(vc, COMPARED)
            sb, sc = _subsample(vb, rng), _subsample(vc, rng)
            out: dict[str, Any] = {}
            for label in COMPARED:
                diff = bootstrap_percentile(sc, label, draws, rng) - bootstrap_percentile(sb, label, draws, rng)
                lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2]).tolist()
                change = _change(pb[label], pc[label])
                reg = change is not None and change > threshold and lo > 0
                out[label] = {"baseline": pb[label], "current": pc[label], "change": change,
                              "ci_low": lo, "ci_high": hi, "regression": bool(reg)}
                if reg:
                    regressions.append({"op": op, "metric": metric, "label": label, "baseline": pb[label],
                                        "current": pc[label], "change": change, "ci_low": lo, "ci_high": hi})
            row[metric] = out
        rows.append(row)
    return {"method": METHOD, "threshold": threshold, "confidence": CONFIDENCE, "tests": tests,
            "per_test_confidence": 1 - alpha, "operations": rows,
            "regressions": regressions, "verdict": "regression" if regressions else "ok"}


def compare_runs(baseline: Path, current: Path, threshold: float = 0.10) -> dict[str, Any]:
    """Compare two run folders per operation; see the module docstring for what counts as a regression.

    Returns ``{"method", "threshold", "confidence", "baseline", "current", "operations": [...],
    "regressions": [...], "verdict": "ok" | "regression"}``; latencies in seconds.
    """
    result = compare_samples(read_samples(Path(baseline)), read_samples(Path(current)), threshold)
    return {"baseline": str(baseline), "current": str(current), **result}


# -- text and CLI -------------------------------------------------------------------------

def _pct(change: float | None) -> str:
    if change is None:
        return "–"
    if math.isinf(change):
        return "+inf%"
    return "0.0%" if abs(change) < 0.0005 else f"{change:+.1%}"


def format_comparison(result: dict[str, Any]) -> str:
    """The comparison as terminal text: one line per regression, then the verdict."""
    lines = [f"compare: baseline {result.get('baseline', '?')} -> current {result.get('current', '?')}",
             f"  threshold {result['threshold']:.0%}; noise test: {result['method']}"]
    for row in result["operations"]:
        if "throughput" not in row:
            lines.append(f"  {row['op']}: {row.get('note', '')}")
            continue
        t = row["throughput"]
        cor, rsp = row["corrected"], row["response"]
        lines.append(f"  {row['op']}: throughput {_pct(t['change'])}, corrected p50 {_pct(cor['p50']['change'])} "
                     f"p99 {_pct(cor['p99']['change'])}, response p50 {_pct(rsp['p50']['change'])} "
                     f"p99 {_pct(rsp['p99']['change'])}")
    for r in result["regressions"]:
        unit = "req/s" if r["metric"] == "throughput" else "ms"
        scale = 1.0 if r["metric"] == "throughput" else 1000.0
        lines.append(f"  REGRESSION {r['op']} {r['metric']} {r['label']}: {r['baseline'] * scale:.4g} -> "
                     f"{r['current'] * scale:.4g} {unit} ({_pct(r['change'])})")
    lines.append(f"verdict: {'REGRESSION' if result['regressions'] else 'no regression'}")
    return "\n".join(lines)


def main_compare(argv: list[str] | None = None) -> int:
    """``losant-load compare BASELINE CURRENT [--threshold 0.1] [--json]``: exit 1 on regression, 2 on error."""
    p = argparse.ArgumentParser(prog="losant-load compare", description="Compare two run folders per operation.")
    p.add_argument("baseline", type=Path)
    p.add_argument("current", type=Path)
    p.add_argument("--threshold", type=float, default=0.10, help="relative change that counts (default: 0.1 = 10%%)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    if not 0 <= args.threshold < 10:
        print(f"losant-load compare: --threshold {args.threshold} is not allowed; expected a fraction such as 0.1",
              file=sys.stderr)
        return 2
    try:
        result = compare_runs(args.baseline, args.current, args.threshold)
    except (FileNotFoundError, ValueError) as exc:
        print(f"losant-load compare: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(jsonable(result), indent=2, allow_nan=False, default=str) if args.json else format_comparison(result))
    return 1 if result["regressions"] else 0


def jsonable(obj: Any) -> Any:
    """The result with inf/NaN replaced by None, so strict JSON accepts it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


# -- report section ------------------------------------------------------------------------

def comparison_section(result: dict[str, Any], base_fig: Any, cur_fig: Any) -> str:
    """The report's comparison section: verdict, per-op change table, overlay charts.

    ``base_fig``/``cur_fig`` are ``figures.Figures`` of the two runs (for the overlays).
    """
    from harness.report import charts
    from harness.report.tables import cell, esc, ms, table

    regs = result["regressions"]
    head = (f'<div class="alert {"fail" if regs else "ok"}" id="comparison-verdict">'
            f'{"REGRESSION: " + str(len(regs)) + " change(s) beyond threshold and noise" if regs else "No regression"}'
            f" against baseline {esc(result.get('baseline', ''))} (threshold {result['threshold']:.0%}).</div>"
            f'<p class="legend-note">Noise test: {esc(result["method"])}.</p>')
    body = head
    for metric, caption in (("corrected", "Corrected latency (from planned send): change vs baseline"),
                            ("response", "Response time (from actual send): change vs baseline")):
        rows = []
        for row in result["operations"]:
            if "throughput" not in row:
                rows.append(f"<tr>{cell(row['op'], 'op')}{cell(row.get('note', ''))}" + "<td></td>" * 5 + "</tr>")
                continue
            t = row["throughput"]
            cells = [cell(row["op"], "op"), cell(_pct(t["change"]), "n bad" if t["regression"] else "n",
                                                  title=f"{t['baseline']:.2f} -> {t['current']:.2f} req/s")]
            for label in COMPARED:
                c = row[metric][label]
                cells.append(cell(f"{_pct(c['change'])} ({ms(c['baseline'])} → {ms(c['current'])})",
                                  "n bad" if c["regression"] else "n",
                                  title=f"{result['per_test_confidence']:.3%} CI of the difference: "
                                        f"[{ms(c['ci_low'])}, {ms(c['ci_high'])}] ms"))
            rows.append(f'<tr data-op="{esc(row["op"])}" data-kind="{metric}">{"".join(cells)}</tr>')
        headers = ["operation", "throughput"] + [f"{p} ms" for p in COMPARED]
        body += table(headers, rows, cls=f"comparison {metric}", caption=caption)
    if regs:
        items = "".join(f"<li>{esc(r['op'])} {esc(r['metric'])} {esc(r['label'])}: {_pct(r['change'])}</li>" for r in regs)
        body += f'<h3>Regressions</h3><ul class="bad">{items}</ul>'
    if base_fig is not None and cur_fig is not None:
        def total(fig: Any) -> tuple[np.ndarray, np.ndarray]:
            rps = sum(fig.rps.values()) if fig.rps else np.zeros(len(fig.times))
            return fig.times, rps

        shown = [op for op in cur_fig.ops if op in base_fig.curves][:6]
        body += (f'<img class="chart" src="{charts.overlay_throughput(total(base_fig), total(cur_fig))}" alt="throughput overlay">'
                 f'<img class="chart" src="{charts.distribution(cur_fig.curves, shown, base_fig.curves)}" '
                 'alt="latency distribution overlay">')
    return f'<section id="comparison"><h2>Comparison with baseline</h2>{body}</section>'
