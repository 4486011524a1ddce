"""How long ``write_report`` takes on a 10-million-sample run folder (target: under 20 s).

    .venv/bin/python bench/report.py [--samples 10000000] [--summary] [--compare] [--keep DIR]

Builds a synthetic run folder (``harness.report.synthetic``: devices ramping up and
sending state at 1.9/s, operators reading, one application posting events, a few
429s, errors and scheduler stalls) through the real Recorder, then times the report
end to end (read the samples, compute tables and series, draw the charts, write
``index.html`` and ``operations.csv``) and prints the seconds, with a breakdown.
``--summary`` also writes summary.json with the analysis package first (slower to
build, and the report then shows verdicts and conformance findings); ``--compare``
also times ``compare_runs`` of the folder against a second synthetic run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.report import compare_runs, write_report  # noqa: E402
from harness.report import figures, html  # noqa: E402
from harness.report.rundata import load_run  # noqa: E402
from harness.report.synthetic import Shape, write_run  # noqa: E402


def shape_for(samples: int, seed: int = 1, devices: int = 2000) -> Shape:
    """A Shape whose run holds about ``samples`` rows (devices ramp over the first 20 %)."""
    rate = 1.9
    duration = samples / (devices * rate * 0.9 + 4 * 2.0 + 0.9)
    return Shape(devices=devices, duration=duration, rate=rate, seed=seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=10_000_000)
    p.add_argument("--summary", action="store_true", help="write summary.json with harness.analysis first")
    p.add_argument("--compare", action="store_true", help="also time compare_runs against a second run")
    p.add_argument("--keep", type=Path, help="build the run folder here and keep it")
    args = p.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t = time.perf_counter()
        run = write_run(root / "run", shape_for(args.samples), summary=args.summary)
        print(f"built run folder ({args.samples:,} samples requested) in {time.perf_counter() - t:.1f} s: {run}")

        t0 = time.perf_counter()
        out = write_report(run)
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        data = load_run(run)
        t2 = time.perf_counter()
        fig = figures.compute(data.samples)
        t3 = time.perf_counter()
        html.page(data, fig)
        t4 = time.perf_counter()
        print(f"samples: {len(data.samples):,}; index.html {out.stat().st_size / 1e6:.2f} MB")
        print(f"breakdown (second pass): read {t2 - t1:.2f} s, compute {t3 - t2:.2f} s, "
              f"charts + page {t4 - t3:.2f} s")
        print(f"write_report: {total:.2f} s (target < 20 s) {'OK' if total < 20 else 'OVER TARGET'}")
        if args.compare:
            other = write_run(root / "other", shape_for(args.samples, seed=2), summary=False)
            t = time.perf_counter()
            result = compare_runs(run, other)
            print(f"compare_runs: {time.perf_counter() - t:.2f} s, verdict {result['verdict']}")
        return 0 if total < 20 else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
