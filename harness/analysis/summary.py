"""``summary.json``: every figure of a run, named, plus the verdicts. Fields: docs/SUMMARY.md.

Three latency figures are reported everywhere, each under its own name, because
they answer different questions:

- ``response_time_ms`` - response time (from actual send): what the target took;
- ``corrected_latency_ms`` - corrected latency (from planned send):
  ``(sent - planned) + latency``, what a caller on schedule waited (coordinated
  omission corrected: a stalled sender's waiting counts);
- ``lateness_ms`` - lateness (actual send - planned send): how far the load
  generator fell behind its own schedule; large values mean the generator, not the
  target, limited the test.

All are exact order statistics of every sample (``percentiles.py``).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.limits import LimitsTable
from harness.record import Samples
from harness.scenario.criteria import Criteria

from . import throughput as tp
from .concurrency import JobLength, job_length
from .conformance import check_conformance
from .criteria import evaluate, passed
from .mqtt import analyze_mqtt, has_mqtt, merge_into_conformance
from .percentiles import (LABELS, SERIES_LABELS, bucket_index, exact_percentiles, grouped_order, grouped_percentiles,
                          percentile_series)

SCHEMA = "losant-load/summary"
VERSION = 1
FIGURES = {
    "response_time_ms": "response time (from actual send)",
    "corrected_latency_ms": "corrected latency (from planned send)",
    "lateness_ms": "lateness (actual send - planned send)",
}
LATE_THRESHOLDS_MS = (10, 50, 100, 1000)


def _ms(p: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (v * 1000.0 if v is not None else None) for k, v in p.items()}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _series_list(a: np.ndarray, scale: float = 1.0, digits: int = 3) -> list[float | None]:
    return [None if math.isnan(x) else round(x * scale, digits) for x in a.tolist()]


def latency_stats(samples: Samples) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, dict[str, Any]]]]:
    """Overall and per-op percentiles (ms) of the three figures; one grouping sort serves all."""
    columns = {"response_time_ms": samples.latency, "corrected_latency_ms": samples.corrected,
               "lateness_ms": samples.lateness}
    n_ops = max(len(samples.op_names), int(samples.op.max()) + 1 if len(samples) else 0)
    order, bounds = grouped_order(samples.op, n_ops)
    overall: dict[str, dict[str, Any]] = {}
    per_op: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in range(n_ops)}
    for name, values in columns.items():
        overall[name] = {"label": FIGURES[name], **_ms(exact_percentiles(values, LABELS))}
        for i, pct in enumerate(grouped_percentiles(values, order, bounds, LABELS)):
            per_op[i][name] = {"label": FIGURES[name], **_ms(pct)}
    return overall, per_op


def analyze(samples: Samples, table: LimitsTable, pacing_mode: str = "respect",
            key_kinds: Mapping[str, str] | None = None, series: bool = True, bucket: float = 1.0,
            max_findings: int = 1000, steady: Mapping[str, Any] | None = None,
            jobs: JobLength | None = None, probe_limits: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every figure of the summary except scenario, integrity and verdicts.

    ``steady`` passes what the run folder knows of the ramp-up and the stop to
    ``throughput.steady_window`` (``started``, ``spawned``, ``stopping``,
    ``planned_duration``, ``ramp_s``, ``ramp_note``); without it the steady window is the
    whole run. ``jobs``: the job lengths the concurrency judge allows (default: an
    unknown target's, see ``concurrency.job_length``). ``probe_limits``: the scenario's
    ``pacing.probe.limits`` (the MQTT judge's probe block).
    """
    t0, t_end = tp.time_origin(samples)
    n = len(samples)
    duration = (t_end - float(samples.sent.min())) if n else 0.0
    counts = tp.counts_by_op(samples)
    statuses = tp.status_counts(samples)
    lat_overall, lat_ops = latency_stats(samples)
    overall = tp.rate_block(counts["count"].sum(), counts["ok"].sum(), counts["errors"].sum(),
                            counts["throttled"].sum(), counts["bytes"].sum(), counts["by_kind"].sum(axis=0), duration)
    overall["throughput_rps"] = overall.pop("throughput_per_s")
    overall["status_counts"] = {s: sum(sc.get(s, 0) for sc in statuses.values())
                                for s in sorted({s for sc in statuses.values() for s in sc})}
    window, steady_ops = tp.steady_window_by_op(samples, counts["count"], (t0, t_end), **dict(steady or {}))
    overall["steady_throughput_rps"] = window["throughput_rps"]
    overall["steady_window"] = window
    overall.update(lat_overall)
    operations: dict[str, Any] = {}
    for i, name in enumerate(samples.op_names):
        if not counts["count"][i]:
            continue
        block = tp.rate_block(counts["count"][i], counts["ok"][i], counts["errors"][i], counts["throttled"][i],
                              counts["bytes"][i], counts["by_kind"][i], duration)
        block["throughput_rps"] = block.pop("throughput_per_s")
        block["status_counts"] = statuses.get(i, {})
        block["steady_throughput_rps"] = (int(steady_ops[i]) / window["duration_s"]
                                          if window["duration_s"] > 0 else None)
        block.update(lat_ops[i])
        operations[name] = block
    lateness = samples.lateness
    late = {str(ms): float((lateness > ms / 1000.0).mean()) if n else 0.0 for ms in LATE_THRESHOLDS_MS}
    conf = check_conformance(samples, table, pacing_mode, key_kinds, max_findings=max_findings, jobs=jobs)
    out: dict[str, Any] = {
        "run": {"pacing_mode": pacing_mode, "samples": n, "t0": t0, "start": _iso(t0) if n else None,
                "end": _iso(t_end) if n else None, "duration_s": duration, "window_model": table.window_model},
        "figures": dict(FIGURES),
        "overall": overall,
        "operations": operations,
        "lateness": {"label": FIGURES["lateness_ms"], **{k: v for k, v in lat_overall["lateness_ms"].items()
                                                         if k != "label"}, "share_later_than_ms": late},
        "conformance": {
            "pacing_mode": conf.mode,
            "window_model": table.window_model,
            "limits": [r.to_dict() for r in conf.limits],
            "concurrency_limits_touched": conf.concurrency_touched,
            "concurrency": [r.to_dict() for r in conf.concurrency],
            "job_length": ({"min_s": conf.jobs.min_s, "max_s": conf.jobs.max_s, "basis": conf.jobs.basis}
                           if conf.jobs else None),
            "sizes": [r.to_dict() for r in conf.sizes],
            "documented_rows": conf.documented_rows,
            "rows_summary": conf.rows_summary,
            "findings_total": conf.findings_total,
            "findings_by_kind": conf.findings_by_kind,
            "findings": [f.to_dict() for f in conf.findings],
            "undecided_total": conf.undecided_total,
            "undecided_by_kind": conf.undecided_by_kind,
            "tested": conf.tested,
            "not_tested_reason": conf.not_tested_reason,
            "rule": conf.rule,
        },
    }
    if has_mqtt(samples):  # MQTT devices: their block, and their findings in the one conformance total
        out["mqtt"] = analyze_mqtt(samples, table, stop_at=(steady or {}).get("stopping"), pacing_mode=pacing_mode,
                                   probe_limits=probe_limits, max_findings=max_findings)
        merge_into_conformance(out["conformance"], out["mqtt"], max_findings)
    if series and n:
        out["series"] = build_series(samples, t0, t_end, bucket)
    return out


def build_series(samples: Samples, t0: float, t_end: float, bucket: float = 1.0) -> dict[str, Any]:
    """Per-bucket counts (by actual send) and percentiles; corrected latency by planned send.

    Corrected latency is bucketed by planned time so a stall shows where the calls
    were due, not where the sender caught up.
    """
    nb = int(math.floor((t_end - t0) / bucket)) + 1
    sent_bucket = bucket_index(samples.sent, t0, bucket)
    rates = tp.per_second(samples, t0, nb, bucket, index=sent_bucket)
    _, resp = percentile_series(samples.sent, samples.latency, t0, bucket, SERIES_LABELS, nb, index=sent_bucket)
    _, corr = percentile_series(samples.planned, samples.corrected, t0, bucket, SERIES_LABELS, nb)
    return {
        "t0": t0, "bucket_s": bucket, "buckets": nb,
        **{k: v.tolist() for k, v in rates.items()},
        "response_time_ms": {"label": FIGURES["response_time_ms"], "bucketed_by": "sent",
                             **{k: _series_list(v, 1000.0) for k, v in resp.items()}},
        "corrected_latency_ms": {"label": FIGURES["corrected_latency_ms"], "bucketed_by": "planned",
                                 **{k: _series_list(v, 1000.0) for k, v in corr.items()}},
    }


def build_summary(samples: Samples, table: LimitsTable, scenario_info: Mapping[str, Any],
                  criteria: Criteria | None, integrity: Mapping[str, Any] | None = None,
                  pacing_mode: str = "respect", key_kinds: Mapping[str, str] | None = None,
                  series: bool = True, steady: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole ``summary.json`` document (plain JSON types only).

    ``integrity`` is the read-back result (``integrity.integrity_block`` or the
    harness's equivalent with ``checked``, ``accepted``, ``lost``); None means the
    read-back was not run and the lost-writes criterion is reported "not checked".
    ``steady``: the ramp-up and stop times for the steady window (see ``analyze``).
    The concurrency judge's job lengths come from ``scenario_info``: ``job_seconds``
    (the scenario's ``target.job_seconds``) and ``target_kind``.
    """
    criteria = criteria if criteria is not None else Criteria()
    summary: dict[str, Any] = {"schema": SCHEMA, "version": VERSION, "scenario": dict(scenario_info)}
    jobs = job_length(scenario_info.get("job_seconds"), scenario_info.get("target_kind"), table)
    probe = ((scenario_info.get("pacing") or {}).get("probe") or {}) if isinstance(scenario_info.get("pacing"), dict) else {}
    probe_limits = tuple(str(x) for x in probe.get("limits") or ()) if isinstance(probe, dict) else ()
    summary.update(analyze(samples, table, pacing_mode, key_kinds, series, steady=steady, jobs=jobs,
                           probe_limits=probe_limits))
    summary["integrity"] = dict(integrity) if integrity is not None else {
        "checked": False, "reason": "the read-back was not run"}
    summary["criteria"] = {"latency": [{"op": op, "percentile": p, "bound_ms": b} for op, p, b in criteria.latency],
                           "latency_basis": criteria.latency_basis, "max_error_rate": criteria.max_error_rate,
                           "max_throttled_rate": criteria.max_throttled_rate, "lost_writes": criteria.lost_writes,
                           "conformance_findings": criteria.conformance_findings,
                           "min_throughput": criteria.min_throughput}
    verdicts = evaluate(criteria, summary)
    summary["verdicts"] = [v.to_dict() for v in verdicts]
    summary["passed"] = passed(verdicts)
    return summary


def _plain(value: Any) -> Any:
    """numpy scalars and non-finite floats → JSON (NaN/inf become null)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``run_dir/summary.json`` atomically; returns its path."""
    path = Path(run_dir) / "summary.json"
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(_plain(dict(summary)), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
