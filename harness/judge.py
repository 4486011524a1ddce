"""Judge a run folder: samples + limits + criteria → summary.json (also for old runs, with new criteria).

The run writes ``limits.json`` (the table in force) and ``integrity.json`` (the
read-back) beside the samples, so judging again needs nothing but the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness import __version__, harness_calls
from harness.errors import ConfigError
from harness.limits import LimitsTable, table_from_dict, table_to_dict
from harness.report.rundata import epoch_of


def save_limits(run_dir: Path, table: LimitsTable) -> None:
    (run_dir / "limits.json").write_text(json.dumps(table_to_dict(table), indent=1), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _planned_users(path: Path, workers: int) -> int | None:
    """Locust users the scenario starts (``user_counts``, as the run sized its user classes)."""
    from harness.scenario import load_scenario, user_counts

    return sum(user_counts(load_scenario(path), workers).values()) or None


def steady_hints(run_dir: Path, meta: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """What the folder knows of the ramp-up and the stop, for ``throughput.steady_window``.

    Measured times first (``run.json``: ``spawning_complete`` and ``stopping``, written
    by the harness since they were added); else the plan: the run's start, its duration,
    and a ramp-up of users / spawn rate (``run.json`` ``users`` and ``spawn_rate``, or
    the scenario's fleet, operators and ``ramp_up`` for older folders).
    """
    hints: dict[str, Any] = {"started": epoch_of(meta.get("started")), "spawned": epoch_of(meta.get("spawning_complete")),
                             "stopping": epoch_of(meta.get("stopping"))}
    duration = meta.get("duration")
    if isinstance(duration, (int, float)) and duration > 0:
        hints["planned_duration"] = float(duration)
    users, rate = meta.get("users"), meta.get("spawn_rate")
    if not (isinstance(users, int) and users > 0):
        users = None
        try:
            workers = sum(1 for e in meta.get("workers") or [] if isinstance(e, dict) and e.get("event") == "joined")
            users = _planned_users(run_dir / "scenario.yaml", workers)
        except Exception:  # an old or hand-edited scenario: no planned ramp-up, measured times only
            users = None
    if not (isinstance(rate, (int, float)) and rate > 0):
        rate = scenario.get("ramp_up")
    if users and isinstance(rate, (int, float)) and rate > 0:
        hints["ramp_s"] = users / float(rate)
        hints["ramp_note"] = f"{users:,} users at {float(rate):g}/s"
    return {k: v for k, v in hints.items() if v is not None}


def judge_run(run_dir: Path, limits: LimitsTable | None = None, criteria: Any = None) -> dict[str, Any]:
    """Analyse the folder's samples and evaluate the criteria; returns the summary document."""
    from harness.analysis.summary import build_summary
    from harness.record import read_samples
    from harness.target import safe_url

    run_dir = Path(run_dir)
    if not (run_dir / "samples").is_dir():
        raise ConfigError(f"{run_dir}: not a run folder (no samples/ inside)")
    scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text(encoding="utf-8")) or {}
    if limits is None:
        saved = _read_json(run_dir / "limits.json")
        limits = table_from_dict(saved) if saved else LimitsTable()
    fleet = _read_json(run_dir / "fleet.json") or {}
    meta = _read_json(run_dir / "run.json") or {}
    info = {
        "name": scenario.get("name"),
        "run_id": run_dir.name,
        "target": safe_url(fleet.get("base_url", "")) if fleet.get("base_url") else None,
        "target_kind": (scenario.get("target") or {}).get("kind"),
        "job_seconds": (scenario.get("target") or {}).get("job_seconds"),  # the concurrency judge's job lengths
        "devices": fleet.get("devices"),
        "devices_by_kind": fleet.get("by_kind"),
        "planned_duration_s": meta.get("duration"),
        "started": meta.get("started"),
        "ended": meta.get("ended"),
        "dropped_sends": meta.get("dropped_sends"),
        "workers": meta.get("workers"),
        "harness_version": __version__,
        "pacing": scenario.get("pacing"),
    }
    samples = read_samples(run_dir)
    pacing = (scenario.get("pacing") or {}).get("throttle", "respect")
    summary = build_summary(samples, limits, info, criteria, _read_json(run_dir / "integrity.json"), pacing_mode=pacing,
                            steady=steady_hints(run_dir, meta, scenario))
    generator = meta.get("generator")
    if isinstance(generator, dict) and isinstance(generator.get("cpu_seconds"), (int, float)):
        # the generator's own CPU (rundir.finish_run): per second of run, and per 1,000 requests
        per_k = 1000 * generator["cpu_seconds"] / len(samples) if len(samples) else None
        summary["generator"] = {**generator, "cpu_seconds_per_1000_requests": None if per_k is None else round(per_k, 4)}
    own = harness_calls.read(run_dir)
    if own is not None:  # the harness's set-up and tear-down: shown, never judged (harness/harness_calls.py)
        summary["harness_calls"] = own
    if meta.get("incomplete"):
        # an interrupted run never passes: its figures cover only part of the plan
        summary.update(complete=False, incomplete_reason=meta["incomplete"], passed=False)
    else:
        summary["complete"] = True
    return summary


ORIGINAL = "summary.original.json"


def rejudge(run_dir: Path, criteria_file: Path | None = None) -> dict[str, Any]:
    """``losant-load analyze``: judge the folder again, optionally with other criteria.

    summary.json, junit.xml and index.html are rewritten together, so they never disagree;
    the verdict the run itself reached is kept once, in ``summary.original.json``, and the
    new summary says so under ``rejudged``.
    """
    from harness.scenario.criteria import load_criteria, parse_criteria
    from harness.analysis.summary import write_summary

    run_dir = Path(run_dir)
    if not (run_dir / "scenario.yaml").exists():
        raise ConfigError(f"{run_dir}: not a run folder (no scenario.yaml inside)")
    if criteria_file is not None:
        criteria = load_criteria(criteria_file)
    else:
        scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text(encoding="utf-8")) or {}
        criteria = parse_criteria(scenario.get("criteria"), where=f"{run_dir / 'scenario.yaml'}: criteria")
    old_summary = _read_json(run_dir / "summary.json")
    previous = old_summary.get("regression") if isinstance(old_summary, dict) else None
    summary = judge_run(run_dir, criteria=criteria)
    baseline, comparison = None, None
    if isinstance(previous, dict) and previous.get("baseline"):  # a run judged against --baseline stays judged so
        from harness.report.compare import apply_baseline

        floors = {k: previous[k] for k in ("threshold", "min_change_ms") if isinstance(previous.get(k), (int, float))}
        baseline = Path(previous["baseline"])
        comparison = apply_baseline(summary, baseline, run_dir, **floors)
    original = run_dir / ORIGINAL
    if isinstance(old_summary, dict) and not original.exists():
        original.write_text(json.dumps(old_summary, indent=1) + "\n", encoding="utf-8")
    kept = _read_json(original) if original.exists() else None
    summary["rejudged"] = {"criteria": str(criteria_file) if criteria_file is not None else "the scenario's",
                           "original": ORIGINAL if kept is not None else None,
                           "original_passed": kept.get("passed") if isinstance(kept, dict) else None}
    write_summary(run_dir, summary)
    from harness.report import write_report
    from harness.report.junit import write_junit

    write_junit(run_dir, summary)  # CI reads junit.xml: it says what summary.json says
    write_report(run_dir, baseline if comparison is not None else None, comparison)  # and so does the report
    return summary
