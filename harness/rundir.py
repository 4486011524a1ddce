"""The run folder: ``reports/<run-id>/`` holds everything one run produced.

Layout: ``scenario.yaml`` (the resolved scenario), ``fleet.json`` (what was
provisioned, no secrets), ``locust_stats.csv`` (Locust's own table), ``samples/``
(one record per request), ``summary.json`` (analysis and verdicts) and
``index.html`` (the report). ``analyze`` and ``report`` re-read the folder, so old
runs can be re-judged.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from harness.harness_calls import HarnessCalls
from harness.session import RunContext
from harness.target import Target
from harness.report.rundata import epoch_of  # noqa: F401  (run.json times; read by tests and callers here)


def check_output_file(path: Path, option: str) -> None:
    """A file an option names is checked before the run starts, not found unwritable after it."""
    from harness.errors import ConfigError

    if path.is_dir() or not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise ConfigError(f"{option} {path}: expected a file in an existing folder")


def make_run_id(scenario_name: str, now: datetime | None = None) -> str:
    """UTC start time and scenario name: sorts by time, says what ran."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{scenario_name}"


def new_run_dir(root: Path, scenario: Any, run_id: str = "") -> Path:
    """Create the folder (adding a suffix if the id is taken) and write the resolved scenario."""
    base = run_id or make_run_id(scenario.name)
    path = root / base
    n = 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    path.mkdir(parents=True)
    (path / "scenario.yaml").write_text(yaml.safe_dump(scenario.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def write_locust_stats(environment: Any, run_dir: Path) -> None:
    """Locust's own per-request table, for people who know its format (its percentiles are rounded)."""
    stats = environment.runner.stats if environment.runner else environment.stats
    with open(run_dir / "locust_stats.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "requests", "failures", "median_ms", "avg_ms", "min_ms", "max_ms", "rps"])
        for entry in sorted(stats.entries.values(), key=lambda e: e.name):
            w.writerow([entry.name, entry.num_requests, entry.num_failures, entry.median_response_time,
                        round(entry.avg_response_time, 2), round(entry.min_response_time or 0, 2),
                        round(entry.max_response_time, 2), round(entry.total_rps, 2)])


def write_run_info(run_dir: Path, scenario: Any, limits: Any, duration: float | None) -> None:
    """What judging needs besides the samples: the limits in force and when the run started."""
    from harness.judge import save_limits

    save_limits(run_dir, limits)
    info = {"started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "duration": duration,
            "scenario": scenario.name}
    (run_dir / "run.json").write_text(json.dumps(info, indent=1), encoding="utf-8")


def finish_run(environment: Any, ctx: RunContext, target: Target, baseline: Path | None = None,
               compare_options: dict[str, Any] | None = None, calls: HarnessCalls | None = None,
               hurried: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Close the samples, check integrity, analyse, write summary and report; return the summary.

    ``calls``: the harness's own calls so far (set-up, the stop's disconnects), to which the
    read-back's are added, written to ``harness_calls.json`` before judging. ``hurried``
    turns true on a second Ctrl-C: the read-back stops sending and integrity is "not checked".
    """
    from harness.analysis.summary import write_summary
    from harness.judge import judge_run
    from harness.readback import read_back

    ctx.recorder.close()
    run_dir = ctx.run_dir
    assert run_dir is not None, "a worker's run has no folder: its samples go to the master"
    if not ctx.recorder.enabled:
        write_locust_stats(environment, run_dir)
        return {"passed": True, "note": "--no-record: no samples were kept, nothing was judged"}
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info.update(ended=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), dropped_sends=ctx.dropped,
                incomplete=ctx.incomplete, generator=ctx.generator_cpu(time.time()))
    # the ramp-up's end and the stop's start bound the steady window of throughput (judge.steady_hints)
    for name, at in (("spawning_complete", ctx.spawned_at), ("stopping", ctx.stopping_at)):
        if at is not None:
            info[name] = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
    opts = getattr(environment, "parsed_options", None)
    for name, attr in (("users", "num_users"), ("spawn_rate", "spawn_rate")):
        value = getattr(opts, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            info.setdefault(name, value)
    if ctx.worker_events:
        info["workers"] = [{**e, "at": datetime.fromtimestamp(e["at"], timezone.utc).isoformat(timespec="milliseconds")}
                           for e in ctx.worker_events]
    info_path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    write_locust_stats(environment, run_dir)
    (run_dir / "fleet.json").write_text(json.dumps(ctx.fleet.public(), indent=2), encoding="utf-8")
    integrity = read_back(target.url, ctx.fleet, ctx.accepted, ctx.scenario.integrity.sample,
                          {c.name: c.attributes[0].name if c.attributes else None for c in ctx.scenario.fleet.classes},
                          log=calls.log("read-back") if calls is not None else None, cancelled=hurried)
    if calls is not None:
        calls.write(run_dir)
    (run_dir / "integrity.json").write_text(json.dumps(integrity, indent=2), encoding="utf-8")
    summary = judge_run(run_dir, ctx.limits, ctx.scenario.criteria)
    comparison = None
    if baseline is not None:  # a regression fails the run: summary.passed, failed_because, regression block
        from harness.report.compare import apply_baseline

        comparison = apply_baseline(summary, baseline, run_dir, **(compare_options or {}))
    write_summary(run_dir, summary)
    from harness.report import write_report

    write_report(run_dir, baseline if comparison is not None else None, comparison)
    from harness.report.junit import write_junit

    junit = getattr(opts, "junit", "") or ""
    write_junit(run_dir, summary, Path(junit) if junit else None)
    return summary
