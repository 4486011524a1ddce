"""The target dies and comes back mid-run (file database): the harness records the outage,
resumes, and the integrity check finds every accepted state."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import numpy as np
from runs import Run, write_scenario
from terminal import Terminal

from harness.emulator.process import EmulatorProcess
from harness.record import ERROR_KINDS, read_samples

EMAIL, PASSWORD = "outage@example.com", "outage-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def errors_in(line: str) -> int:
    match = re.search(r"errors\s+(\d+)", line)
    return int(match.group(1)) if match else 0


def test_emulator_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "emulator.db"
    options = dict(email=EMAIL, password=PASSWORD, port=port, db=str(db))
    emu = EmulatorProcess(**options).start()
    scenario = write_scenario(tmp_path, {
        "name": "outage", "duration": "20s", "ramp_up": 100,
        "target": {"kind": "live", "url": emu.url, "auth": "user"},
        "fleet": {"classes": [{"name": "s", "count": 10, "report_interval": "600ms",
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "criteria": {"lost_writes": 0},
    })
    term = Terminal(["run", str(scenario), "--headless", "--yes", "--reports-dir", str(tmp_path / "reports")],
                    env={"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD})
    try:
        term.wait_for("[    5/20s]", 90)  # the load is steady: states are being accepted
        assert emu.proc is not None
        emu.proc.kill()  # SIGKILL: no chance to flush anything it had not committed
        emu.proc.wait()
        down_at = time.time()
        # down until the harness has seen it: a progress line counting connection errors (every 5 s)
        term.wait_until(lambda lines: any(errors_in(line) > 0 for line in lines if line.startswith("[")), 30)
        emu = EmulatorProcess(**options).start()
        up_at = time.time()
        code = term.finish(120)
    finally:
        emu.stop()
    out = term.output
    run = Run(code, out, tmp_path / "reports")
    assert run.code in (0, 1), out[-3000:]
    s = read_samples(run.run_dir)
    state = s.op == s.op_names.index("device.sendState")
    failed = state & (s.error == ERROR_KINDS.index("connection"))
    assert failed.any(), "the outage is recorded as connection errors"
    assert np.all((s.sent[failed] > down_at - 1) & (s.sent[failed] < up_at + 1))
    ok_after = state & (s.status == 200) & (s.sent > up_at + 1)
    assert ok_after.sum() > 30, "the run resumed after the restart"
    assert 'alt="errors over time"' in (run.run_dir / "index.html").read_text(), "the report shows the outage"
    integrity = run.summary()["integrity"]
    assert integrity["checked"] and integrity["lost_writes"] == 0, integrity
    assert integrity["accepted"] > 50
