"""Respect mode on actual send time, end to end: zero 429s from a correct target through a 2 s and
a 10 s pause of the target and a 2 s stall of the generator itself.

Ten devices ask for twice their documented rate (a report every 250 ms against 30 per 15 s), so
every device's budget is full throughout and any bunching of the backlog after a pause would
overfill a window; they send in bursts (30 in 7.5 s, then wait for the window), so five more
devices ask for exactly the documented rate (every 500 ms) and are sending whenever a pause
starts. Before the ledger admitted calls at their actual send time, a run like this drew about
70 429s from the emulator in 50 s with a single 2 s pause. The pauses and the stall
are injected from inside the run process (tests/respect_pause_locustfile.py) at set times after
the run starts; the test itself only waits for the run to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runs import ROOT, Run, write_scenario

from harness.emulator.process import EmulatorProcess
from harness.record import read_samples

EMAIL, PASSWORD = "respect@example.com", "respect-password-1"
DURATION = 44
PLAN = [{"at": 8, "pause_s": 2}, {"at": 14, "stall_s": 2}, {"at": 19, "pause_s": 10}]
WINDOW, COUNT = 15.0, 30


@pytest.mark.timeout(240)
def test_respect_mode_draws_no_429_through_target_pauses_and_a_generator_stall(tmp_path: Path) -> None:
    log = tmp_path / "injected.jsonl"
    with EmulatorProcess(email=EMAIL, password=PASSWORD, admin=True) as emu:
        scenario = write_scenario(tmp_path, {
            "name": "respect-pause", "duration": f"{DURATION}s", "ramp_up": 100,
            "target": {"kind": "live", "url": emu.url, "auth": "user"},
            "fleet": {"classes": [
                {"name": "fast", "count": 10, "report_interval": "250ms", "jitter": 0,
                 "attributes": {"v": {"type": "number", "min": 0, "max": 1}}},
                {"name": "steady", "count": 5, "report_interval": "500ms", "jitter": 0,
                 "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
            "pacing": {"throttle": "respect"},
        })
        argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "respect_pause_locustfile.py"),
                "--scenario", str(scenario), "--reports-dir", str(tmp_path / "reports"), "--yes",
                "--headless", "--run-time", f"{DURATION}s", "--only-summary", "--loglevel", "WARNING",
                "--spawn-rate", "100"]
        env = {**os.environ, "LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD, "RESPECT_PAUSE_URL": emu.url,
               "RESPECT_PAUSE_PLAN": json.dumps(PLAN), "RESPECT_PAUSE_LOG": str(log)}
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=220,
                              stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    run = Run(proc.returncode, out, tmp_path / "reports")
    assert "Traceback" not in out, out[-3000:]

    injected = [json.loads(line) for line in log.read_text().splitlines()]
    assert [("pause_s" in i, i.get("pause_s", i.get("stall_s"))) for i in injected] == [(True, 2), (False, 2), (True, 10)]
    s = read_samples(run.run_dir)
    state = s.op == s.op_names.index("device.sendState")
    assert int((s.status == 429).sum()) == 0, f"429s: {np.unique(s.op[s.status == 429], return_counts=True)}"
    assert run.code == 0, out[-3000:]

    # the faults really happened: calls sent into each pause (it starts when the PUT is answered, at
    # "end") were held about that long ...
    for step in (injected[0], injected[2]):
        held = state & (s.sent >= step["end"]) & (s.sent < step["end"] + step["pause_s"] - 0.5)
        assert held.sum() >= 5 and s.latency[held].max() > step["pause_s"] * 0.8, step
    # ... and the generator stood still for 2 s: nothing was sent during the stall, and the sends planned
    # in it went late
    stall = injected[1]
    assert not (state & (s.sent > stall["start"] + 0.05) & (s.sent < stall["end"] - 0.05)).any()
    assert (s.sent - s.planned)[state].max() > 1.5

    # every device kept sending near its limit (calls held by a pause count until a window after their
    # answer, so a 10 s pause costs up to 25 s of budget), never over it in any window of sends
    by_device = {k: np.sort(s.sent[state & (s.key == k) & (s.status == 200)]) for k in np.unique(s.key[state])}
    assert len(by_device) == 15
    for key, sent in by_device.items():
        in_window = np.searchsorted(sent, sent + WINDOW, side="right") - np.arange(len(sent))
        assert in_window.max() <= COUNT, s.key_names[key]
        resumed = injected[2]["end"] + injected[2]["pause_s"]
        assert len(sent) >= 2 * COUNT and sent.max() > resumed + 3, (s.key_names[key], len(sent))
    # the sends beyond the limit (half of what the devices asked for) were dropped and counted, not queued
    dropped = json.loads((run.run_dir / "run.json").read_text())["dropped_sends"]
    assert dropped > 0.3 * 10 * DURATION * 4
