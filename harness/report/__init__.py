"""The run report: ``reports/<run-id>/index.html`` (+ ``operations.csv``), and run comparison.

Public surface::

    write_report(run_dir, baseline=None) -> Path      # index.html, self-contained
    compare_runs(baseline, current, threshold=0.10, min_change_ms=2.0, ..., force=False) -> dict
    main_report(argv) -> int                           # losant-load report RUN_DIR [--baseline DIR]
    main_compare(argv) -> int                          # losant-load compare BASELINE CURRENT [--threshold ...]

The report re-reads the run folder (samples, summary.json, integrity.json, ...), so it
works on old runs and is the same whether written at test stop or later.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.report.compare import compare_runs, compare_samples, comparison_section, main_compare

__all__ = ["write_report", "compare_runs", "main_report", "main_compare"]


def write_report(run_dir: Path, baseline: Path | None = None, comparison: dict | None = None) -> Path:
    """Write ``index.html`` and ``operations.csv`` into ``run_dir``; return the HTML path.

    With ``baseline`` (another run folder), a comparison section with overlay charts
    is added: ``comparison`` if given (``compare_runs``'s result, as the run judged it),
    else computed at compare's defaults. The file is written to a temporary name and
    renamed, so a reader never sees half a report.
    """
    from harness.report import figures, html, tables
    from harness.report.rundata import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    fig = figures.compute(run.samples)
    section = ""
    if baseline is not None:
        base = load_run(Path(baseline))
        result = comparison
        if result is None:
            from harness.report.compare import identity_problem, run_identity
            from harness.report.rundata import read_json_object as _read_json

            problem = identity_problem(run_identity(Path(baseline)), run_identity(run_dir))
            result = {"baseline": str(baseline), "current": str(run_dir),
                      "identity": {"problem": problem, "forced": bool(problem)},
                      **compare_samples(base.samples, run.samples, base_info=_read_json(Path(baseline) / "run.json"),
                                        cur_info=_read_json(run_dir / "run.json"))}
        base_fig = figures.compute(base.samples, bucket=fig.bucket)
        section = comparison_section(result, base_fig, fig)
    text = html.page(run, fig, section)
    tables.write_operations_csv(fig, run_dir / "operations.csv")
    out = run_dir / "index.html"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def main_report(argv: list[str] | None = None) -> int:
    """``losant-load report RUN_DIR [--baseline DIR]``: write the report, print its path; 2 on error."""
    p = argparse.ArgumentParser(prog="losant-load report", description="Write reports/<run-id>/index.html.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--baseline", type=Path, help="another run folder to compare with")
    args = p.parse_args(argv)
    try:
        path = write_report(args.run_dir, args.baseline)
    except (FileNotFoundError, ValueError) as exc:
        print(f"losant-load report: {exc}", file=sys.stderr)
        return 2
    print(path.resolve())
    return 0
