"""Each user type exercises its endpoints against the emulator, and live credentials never leak."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from runs import run_cli, write_scenario

from harness.emulator.process import EmulatorProcess
from harness.record import read_samples

ALL_ACTIONS = {
    "list_devices": {"weight": 1, "tags": {"site": "s1"}},
    "get_device": 1,
    "time_series": {"weight": 1, "window": "10m", "resolution": "1m", "aggregation": "MEAN"},
    "last_value": 1,
    "state_history": {"weight": 1, "limit": 5},
    "send_command": {"weight": 1, "name": "reboot"},
    "send_command_tag": {"weight": 1, "name": "sync", "tags": {"site": "s1"}},
    "create_event": {"weight": 1, "level": "warning"},
}


def mixed(name: str, mode: str = "users", auth: str = "user") -> dict:
    return {
        "name": name,
        "duration": "5s",
        "ramp_up": 100,
        "fleet": {"mode": mode, **({"connections": 8} if mode == "multiplexed" else {}), "classes": [
            {"name": "sensors", "count": 6, "report_interval": "500ms", "tags": {"site": "s1"},
             "attributes": {"t": {"type": "random_walk", "start": 1, "step": 1}}, "command_poll_interval": "1s",
             "connection_status": True, "batch_size": 2},
            {"name": "gw", "count": 2, "kind": "gateway", "peripherals": 3, "report_interval": "500ms",
             "attributes": {"v": {"type": "boolean"}}},
        ]},
        "operators": {"count": 3, "auth": auth, "think_time": {"min": "50ms", "max": "100ms"}, "actions": ALL_ACTIONS},
        "criteria": {"max_error_rate": 0.0, "max_throttled_rate": 0.0},
    }


def ops_ok(run_dir: Path) -> dict[str, int]:
    s = read_samples(run_dir)
    out = {}
    for i, name in enumerate(s.op_names):
        mask = s.op == i
        if mask.any():
            out[name] = int(((s.status[mask] >= 200) & (s.status[mask] < 300)).sum())
    return out


def check_all_endpoints(run_dir: Path) -> None:
    ok = ops_ok(run_dir)
    for op in ("auth.device", "device.sendState", "device.getCommand", "device.setConnectionStatus",
               "devices.get", "device.get", "data.timeSeriesQuery", "data.lastValueQuery", "device.getState",
               "device.sendCommand", "devices.sendCommand", "events.post"):
        assert ok.get(op, 0) > 0, f"no successful {op}: {ok}"
    s = read_samples(run_dir)
    state = s.op == s.op_names.index("device.sendState")
    keys = {s.key_names[k] for k in np.unique(s.key[state])}
    assert len(keys) == 6 + 2 + 6, "every standalone device, gateway and peripheral reported state"


def test_devices_gateways_and_operators_exercise_their_endpoints(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mixed("all-users"))
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    check_all_endpoints(run.run_dir)
    assert "auth.user" in ops_ok(run.run_dir)
    assert run.summary()["integrity"]["checked"] is True
    assert run.summary()["integrity"]["lost_writes"] == 0


def test_fleet_mode_drives_the_same_endpoints_over_a_shared_pool(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mixed("multiplexed", mode="multiplexed", auth="token"))
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    check_all_endpoints(run.run_dir)


def test_live_tenant_credentials_never_appear_in_any_output(tmp_path: Path) -> None:
    password = "live-Secret-pw-9271"
    with EmulatorProcess(email="live@example.com", password=password) as live:
        data = mixed("live-check")
        data["target"] = {"kind": "live", "url": live.url, "auth": "user"}
        data["duration"] = "3s"
        path = write_scenario(tmp_path, data)
        run = run_cli(["run", str(path), "--headless", "--yes", "--teardown"], tmp_path / "reports",
                      env={"LOSANT_EMAIL": "live@example.com", "LOSANT_PASSWORD": password})
    assert run.code in (0, 1), run.output[-3000:]
    assert password not in run.output
    assert not re.search(r"Bearer\s+\S{10,}", run.output)
    for f in run.run_dir.rglob("*"):
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f"password written to {f}"
    assert "teardown removed" in run.output
