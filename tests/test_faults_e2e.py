"""The harness keeps measuring through a failing target: injected 503s, resets, revoked tokens, a pause."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml
from runs import ROOT, Run, write_scenario

from harness.emulator.process import EmulatorProcess
from harness.record import ERROR_KINDS, read_samples

EMAIL, PASSWORD = "faults@example.com", "faults-password-1"
PLAN = {
    "seed": 7,
    "operations": {
        "device.sendState": {"error": {"rate": 0.2, "status": 503}, "reset_rate": 0.05},
        "device.getCommand": {"error": {"rate": 0.3, "status": 401}},  # tokens revoked server-side
    },
}


def test_run_goes_on_through_503s_resets_revoked_tokens_and_a_pause(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump(PLAN))
    with EmulatorProcess(email=EMAIL, password=PASSWORD, faults=str(faults), admin=True) as emu:
        scenario = write_scenario(tmp_path, {
            "name": "faults", "duration": "12s", "ramp_up": 100,
            "target": {"kind": "live", "url": emu.url, "auth": "user"},
            "fleet": {"classes": [{"name": "s", "count": 12, "report_interval": "600ms", "command_poll_interval": "1s",
                                   "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
            "criteria": {"max_error_rate": 0.5},
        })
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scenario), "--headless", "--yes",
                                 "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                                env={**os.environ, "LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD})
        time.sleep(6)
        paused_at = time.time()
        body = json.dumps({**PLAN, "pause_s": 2}).encode()
        req = urllib.request.Request(emu.url + "/_emulator/faults", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(req, timeout=10).status == 200
        out, _ = proc.communicate(timeout=120)
    run = Run(proc.returncode, out, tmp_path / "reports")
    assert run.code in (0, 1), out[-3000:]
    assert "Traceback" not in out

    s = read_samples(run.run_dir)
    state = s.op == s.op_names.index("device.sendState")
    kinds = {ERROR_KINDS[k]: int(((s.error == k) & state).sum()) for k in np.unique(s.error[state])}
    assert 0.1 < (s.status[state] == 503).mean() < 0.3, kinds
    assert kinds.get("connection", 0) > 0, f"resets are counted as connection errors: {kinds}"
    summary = run.summary()
    by_kind = summary["operations"]["device.sendState"]["errors_by_kind"]
    assert by_kind["http"] == int((s.status[state] == 503).sum()) and by_kind["connection"] == kinds["connection"]

    # a reset connection is re-established: every device keeps reporting after its first reset
    reset = state & (s.error == ERROR_KINDS.index("connection")) & (s.sent < s.sent.max() - 2)
    assert reset.any()
    for key in np.unique(s.key[reset]):
        first = s.sent[reset & (s.key == key)].min()
        assert ((s.key == key) & state & (s.status == 200) & (s.sent > first)).any()

    # a revoked token (401) makes the device authenticate again, and its polls work afterwards
    polls = s.op == s.op_names.index("device.getCommand")
    auths = s.op == s.op_names.index("auth.device")
    assert (polls & (s.status == 401)).any()
    assert auths.sum() > 12, "devices re-authenticated after 401s"
    assert (polls & (s.status == 200) & (s.sent > s.sent[polls & (s.status == 401)].min())).any()

    # the 2 s pause shows in the figures: calls sent into it waited about that long
    during = state & (s.sent > paused_at) & (s.sent < paused_at + 2)
    assert during.any() and s.latency[during].max() > 1.0
    assert summary["operations"]["device.sendState"]["corrected_latency_ms"]["max"] > 1000
    assert 'alt="errors over time"' in (run.run_dir / "index.html").read_text()
