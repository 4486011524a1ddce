"""Ctrl-C as a terminal sends it (SIGINT to the whole foreground process group) and SIGTERM mid-run.

The harness is started in a session of its own, as a shell starts a job; the signal goes to
that process group, so it would reach the embedded emulator too unless the emulator runs
in a session of its own. Every wait is on a condition (a line of output, a process gone),
with a bounded deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
from runs import Run, write_scenario
from terminal import Terminal

from harness.record import read_samples

SCENARIO = {
    "name": "interrupt",
    "duration": "60s",
    "ramp_up": 100,
    "fleet": {"classes": [{"name": "s", "count": 10, "report_interval": "500ms", "connection_status": True,
                           "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
}


def emulator_pid(term: Terminal, timeout: float = 60) -> int:
    """The embedded emulator's pid: the harness's child running ``harness.emulator``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(term.proc.pid).children():
            try:
                if "harness.emulator" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        assert term.proc.poll() is None, term.output[-3000:]
        time.sleep(0.05)  # polling a condition, bounded by the deadline
    raise AssertionError(f"no emulator process within {timeout} s")


def gone(pid: int, timeout: float = 15) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its parent counts as exited)."""
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return proc.status() == psutil.STATUS_ZOMBIE
    return True


def start_run(tmp_path: Path) -> tuple[Terminal, int]:
    path = write_scenario(tmp_path, SCENARIO)
    term = Terminal(["run", str(path), "--headless", "--reports-dir", str(tmp_path / "reports")])
    pid = emulator_pid(term)
    term.wait_for("[    5/60s]", 90)  # the first progress line: every user started, the load is steady
    return term, pid


def check_interrupted(term: Terminal, code: int, reports: Path, read_back: bool) -> dict:
    out = term.output
    assert code == 2, out[-3000:]
    assert "Traceback" not in out, out[-5000:]
    assert "INCOMPLETE" in out
    run = Run(code, out, reports)
    assert len(read_samples(run.run_dir).op) > 50, "what was gathered before the signal is kept"
    summary = run.summary()
    assert summary["complete"] is False and summary["passed"] is False
    assert summary["overall"]["errors"] == 0, "no error caused by the harness's own stop counts against the target"
    assert summary["integrity"]["checked"] is read_back, summary["integrity"]
    assert "Incomplete run" in (run.run_dir / "index.html").read_text()
    assert json.loads((run.run_dir / "run.json").read_text())["incomplete"]
    calls = json.loads((run.run_dir / "harness_calls.json").read_text())
    assert calls["provision"]["calls"] > 10 and calls["release"]["failed"] == 0, calls
    return summary


def test_ctrl_c_in_a_terminal_judges_what_was_gathered_and_stops_the_emulator_last(tmp_path: Path) -> None:
    term, pid = start_run(tmp_path)
    term.ctrl_c()
    code = term.finish(120)
    check_interrupted(term, code, tmp_path / "reports", read_back=True)
    assert "deleting the access key" not in term.output, "the credentials were deleted while the target was up"
    assert gone(pid), "the embedded emulator was stopped"


def test_ctrl_c_twice_skips_the_read_back_and_leaves_no_emulator_behind(tmp_path: Path) -> None:
    term, pid = start_run(tmp_path)
    term.ctrl_c()
    term.wait_for("interrupted: stopping", 30)
    term.ctrl_c()
    code = term.finish(120)
    summary = check_interrupted(term, code, tmp_path / "reports", read_back=False)
    assert "skipped" in summary["integrity"]["reason"]
    assert gone(pid), "no orphan emulator"


def test_sigterm_is_judged_like_ctrl_c(tmp_path: Path) -> None:
    term, pid = start_run(tmp_path)
    term.proc.send_signal(signal.SIGTERM)
    code = term.finish(120)
    check_interrupted(term, code, tmp_path / "reports", read_back=True)
    assert gone(pid)


def test_killed_harness_takes_its_emulator_along(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    path = write_scenario(tmp_path, SCENARIO)
    term = Terminal(["run", str(path), "--headless", "--reports-dir", str(tmp_path / "reports")])
    pid = emulator_pid(term)
    term.proc.kill()
    term.finish(30)
    assert gone(pid), "the emulator outlived a harness killed with SIGKILL"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "SIGTERM"])
def test_emulator_command_stops_with_exit_zero_and_no_traceback(sig: int) -> None:
    term = Terminal(["emulator", "--port", "0", "--mqtt-port", "0"])
    term.wait_for("listening on", 60)
    os.killpg(term.proc.pid, sig)
    code = term.finish(30)
    assert code == 0, term.output
    assert "Traceback" not in term.output
