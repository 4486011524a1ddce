"""The generated report opened from disk in headless Chromium: renders, charts have size, no console errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import write_report
from harness.report.synthetic import Shape, write_run

HELPER = Path(__file__).with_name("browser_check.py")
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),  # in CI a missing browser is a failure
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run browser tests")


def test_report_renders_from_file_url(tmp_path: Path) -> None:
    assert importlib.util.find_spec("playwright"), "install the Python package: pip install playwright (no browser download)"
    base = write_run(tmp_path / "base", Shape(devices=20, duration=30, seed=1), summary=False)
    run = write_run(tmp_path / "run", Shape(devices=20, duration=30, seed=2, latency_scale=1.5))
    report = write_report(run, baseline=base)
    shot = tmp_path / "report.png"
    proc = subprocess.run([sys.executable, str(HELPER), "report", report.resolve().as_uri(), str(shot)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["console_errors"] == []
    assert {"verdict", "load", "latency", "operations", "throttles", "scheduler", "errors", "integrity",
            "comparison"} <= set(result["sections"])
    charts = [c for c in result["charts"] if c["tag"] == "IMG"]
    assert len(charts) >= 8
    for c in charts:
        assert c["complete"] and c["natural"] > 0 and c["w"] > 100 and c["h"] > 100, c
    assert shot.exists() and shot.stat().st_size > 50_000
