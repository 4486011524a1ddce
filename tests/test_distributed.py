"""Distributed runs on Locust's master and local workers, against the emulator on loopback."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from runs import ROOT, Run, write_scenario

from harness.distributed import owners, split_table
from harness.limits import LimitsTable
from harness.record import read_samples

SCENARIO = {
    "name": "dist",
    "duration": "10s",
    "ramp_up": 100,
    "fleet": {"classes": [
        {"name": "s", "count": 30, "report_interval": "400ms", "attributes": {"v": {"type": "number", "min": 0, "max": 1}},
         "command_poll_interval": "2s"},
        {"name": "g", "count": 2, "kind": "gateway", "peripherals": 4, "report_interval": "400ms",
         "attributes": {"v": {"type": "boolean"}}},
    ]},
    "operators": {"count": 2, "think_time": {"min": "100ms", "max": "200ms"},
                  "actions": {"send_command": 1, "create_event": 1, "get_device": 1}},
    "criteria": {"max_error_rate": 0, "max_throttled_rate": 0},
}
DEVICES = 30 + 2 * 5


def test_rendezvous_owners_are_disjoint_total_and_move_little() -> None:
    two = owners(1000, ["w1", "w2"])
    assert not (two["w1"] & two["w2"]) and len(two["w1"] | two["w2"]) == 1000
    assert 400 < len(two["w1"]) < 600
    three = owners(1000, ["w1", "w2", "w3"])
    moved = sum(1 for u in range(1000) if not any(u in three[w] and u in two[w] for w in ("w1", "w2")))
    assert moved == len(three["w3"]), "a joining worker takes units only from the others, nothing else moves"
    assert owners(1000, ["w2", "w1"]) == two, "order of the worker list does not matter"


def test_split_table_divides_only_non_device_rate_limits() -> None:
    table = split_table(LimitsTable(), 2)
    assert table.by_name("events.post").count == 7
    assert table.by_name("device.sendState").count == 30
    mqtt = {lim.name: lim.count for lim in table.mqtt}
    assert mqtt["mqtt.newConnections"] == 150, "per application: shared by the workers"
    assert mqtt["mqtt.publishIn"] == 30 and mqtt["mqtt.connectionMessages"] == 300, "per device: one owner"


def start(tmp_path: Path, *extra: str, scenario: dict[str, Any] | None = None) -> subprocess.Popen:
    path = write_scenario(tmp_path, scenario or SCENARIO)
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path), "--headless", "--workers", "2",
                             "--reports-dir", str(tmp_path / "reports"), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def per_device(run_dir: Path) -> dict[str, np.ndarray]:
    s = read_samples(run_dir)
    mask = s.op == s.op_names.index("device.sendState")
    return {s.key_names[k]: np.sort(s.sent[mask & (s.key == k)]) for k in np.unique(s.key[mask])}


def test_two_workers_report_every_device_once_and_merge_one_report(tmp_path: Path) -> None:
    proc = start(tmp_path)
    out, _ = proc.communicate(timeout=120)
    run = Run(proc.returncode, out, tmp_path / "reports")
    assert run.code == 0, out[-3000:]
    sends = per_device(run.run_dir)
    assert len(sends) == DEVICES, "every device (peripherals included) reported"
    for device, times in sends.items():
        # one driver per device: its sends keep the planned spacing (two drivers would double them)
        assert len(times) <= 10 / 0.4 + 2, device
        assert np.min(np.diff(times)) > 0.2, f"{device} was driven twice"
    summary = run.summary()
    assert summary["overall"]["count"] == len(read_samples(run.run_dir).op)
    integrity = summary["integrity"]
    assert integrity["lost_writes"] == 0
    # the workers' accepted states reached the master: every device that reported was read back
    assert integrity["coverage"] == "all" and integrity["devices_checked"] == integrity["devices_total"] == DEVICES
    events = json.loads((run.run_dir / "run.json").read_text())["workers"]
    assert sum(e["event"] == "joined" for e in events) == 2 and not any(e["event"] == "left" for e in events)
    assert "Distributed over 2 Locust workers" in (run.run_dir / "index.html").read_text()


def workers_of(pid: int) -> list[int]:
    """Locust's forked workers: the master's children other than the embedded emulator."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    found = []
    for child in (int(x) for x in out.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"harness.emulator" not in cmdline:
            found.append(child)
    return found


def test_a_worker_killed_mid_run_moves_its_devices_and_keeps_its_samples(tmp_path: Path) -> None:
    scenario = copy.deepcopy(SCENARIO)
    scenario["duration"] = "14s"
    proc = start(tmp_path, scenario=scenario)
    assert proc.stdout is not None
    lines: list[str] = []
    loaded = threading.Event()

    def read() -> None:  # the master's progress line says the workers are driving the fleet
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("[") and "requests" in line and " 0 " not in line.split("requests")[1][:12]:
                loaded.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert loaded.wait(90), "".join(lines)[-3000:]
        workers = workers_of(proc.pid)
        assert len(workers) >= 2, workers
        killed_at = time.time()
        os.kill(workers[0], signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    out = "".join(lines)
    run = Run(proc.returncode, out, tmp_path / "reports")
    assert run.code in (0, 1), out[-3000:]
    events = json.loads((run.run_dir / "run.json").read_text())["workers"]
    left = [e for e in events if e["event"] == "left"]
    assert len(left) == 1, events
    sends = per_device(run.run_dir)
    assert len(sends) == DEVICES
    for device, times in sends.items():
        assert times.min() < killed_at, f"{device}: what was sent before the kill is kept"
        assert times.max() > killed_at + 5, f"{device}: driven again after its worker left"
    html = (run.run_dir / "index.html").read_text()
    assert "left at" in html and left[0]["worker"] in html
