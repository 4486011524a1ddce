"""Ctrl-C or SIGTERM mid-run: the run stops cleanly, keeps its samples, and its report says it is incomplete."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import ROOT, Run, write_scenario

from harness.record import read_samples

SCENARIO = {
    "name": "interrupt",
    "duration": "60s",
    "fleet": {"classes": [{"name": "s", "count": 10, "report_interval": "200ms",
                           "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_keeps_samples_and_is_marked_incomplete(tmp_path: Path, sig: int) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path), "--headless",
                             "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    reports = tmp_path / "reports"
    while time.time() < deadline and not (reports.exists() and any(reports.iterdir())):
        time.sleep(0.2)
    time.sleep(3)  # some load
    started = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - started < 30, "stopping took too long"
    run = Run(proc.returncode, out, reports)
    assert run.code == 2, out[-3000:]
    assert "Traceback" not in out
    assert "INCOMPLETE" in out
    samples = read_samples(run.run_dir)
    assert len(samples.op) > 50, "what was gathered before the signal is kept"
    summary = run.summary()
    assert summary["complete"] is False and summary["passed"] is False
    assert summary["integrity"]["checked"] is True, "the target was still up for the read-back"
    assert "Incomplete run" in (run.run_dir / "index.html").read_text()
    assert json.loads((run.run_dir / "run.json").read_text())["incomplete"]
