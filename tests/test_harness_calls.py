"""The harness's own set-up and tear-down calls are counted apart and never judged as the target's traffic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from runs import run_cli, write_scenario

from harness.harness_calls import HarnessCalls, read
from harness.record import CONNECTION, NO_ERROR, read_samples
from harness.rundir import epoch_of


def test_tally_by_phase_and_outcome(tmp_path: Path) -> None:
    calls = HarnessCalls()
    log = calls.log("provision")
    log(201, 0.5, "", True)
    log(0, 0.25, "ConnectError", False)
    rec = calls.recorder("stop")  # what LosantUser.call records into during the stop
    rec.record(rec.op_code("device.setConnectionStatus"), rec.key_code("d1"), 1.0, 1.0, 0.125, 200, 10, NO_ERROR)
    rec.record(0, 0, 1.0, 1.0, 0.0, 0, 0, CONNECTION)
    calls.write(tmp_path)
    assert read(tmp_path) == {
        "provision": {"calls": 2, "failed": 1, "seconds": 0.75, "outcomes": {"201": 1, "ConnectError": 1}},
        "stop": {"calls": 2, "failed": 1, "seconds": 0.125, "outcomes": {"200": 1, "connection": 1}},
    }
    seeded = HarnessCalls(calls.phases)  # a run starts from the set-up it stands on
    seeded.log("release")(200, 0.0, "", True)
    assert list(seeded.to_dict()) == ["provision", "stop", "release"]
    assert read(tmp_path / "missing") is None


def test_disconnects_at_the_stop_and_the_set_up_are_not_the_targets_samples(tmp_path: Path) -> None:
    devices = 4
    path = write_scenario(tmp_path, {
        "name": "own-calls", "duration": "3s", "ramp_up": 100,
        "fleet": {"classes": [{"name": "s", "count": devices, "report_interval": "1s", "connection_status": True,
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "criteria": {"max_error_rate": 0.0},
    })
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    samples = read_samples(run.run_dir)
    status_op = samples.op == samples.op_names.index("device.setConnectionStatus")
    assert int(status_op.sum()) == devices, "only the connect announcements are the load's"
    meta = json.loads((run.run_dir / "run.json").read_text())
    stopping = epoch_of(meta["stopping"])
    assert stopping is not None and np.all(samples.sent < stopping + 0.5), "nothing sent during the stop is judged"
    calls = json.loads((run.run_dir / "harness_calls.json").read_text())
    assert calls["stop"]["calls"] == devices, calls  # one disconnect announcement each, counted apart
    assert calls["provision"]["calls"] >= devices + 3 and calls["provision"]["failed"] == 0
    assert calls["read-back"]["calls"] >= 1
    assert calls["release"]["calls"] == 1 and calls["release"]["failed"] == 0, "the run's access key was deleted"
    summary = run.summary()
    assert summary["overall"]["count"] == len(samples.op)
    assert summary["harness_calls"]["stop"]["calls"] == devices, "the summary shows them, apart"


def test_the_verdict_mentions_failed_harness_calls_only() -> None:
    from harness.console import harness_call_lines

    ok = {"harness_calls": {"provision": {"calls": 30, "failed": 0, "outcomes": {"201": 30}}}}
    assert harness_call_lines(ok) == []
    bad = {"harness_calls": {"provision": {"calls": 30, "failed": 0, "outcomes": {"201": 30}},
                             "stop": {"calls": 200, "failed": 14, "outcomes": {"200": 186, "connection": 14}}}}
    assert harness_call_lines(bad) == ["  harness calls (not judged): provision 30; stop 200, 14 failed (connection 14)"]
