"""MQTT devices in distributed runs: each device connected by exactly one worker, on the master's broker.

A distributed run gives each worker one MQTT user driving the MQTT devices it owned when the run
started (``RunContext.mqtt_owned``), with the broker address from the master's setup message; a
scenario mixing REST and MQTT classes, or with timed events, is refused before anything starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runs import ROOT, Run, write_scenario

from harness.distributed import apply_owners, setup_message, worker_context
from harness.errors import ConfigError
from harness.fleet import Device, Fleet, Login, Secret, plan_devices
from harness.limits import LimitsTable
from harness.record import read_samples
from harness.scenario import check_distributable, parse_scenario, user_counts
from harness.session import RunContext, make_recorder

ATTRS = {"v": {"type": "number", "min": 0, "max": 1}}
SCENARIO: dict[str, Any] = {
    "name": "mqtt-dist",
    "duration": "8s",
    "ramp_up": 100,
    "fleet": {"classes": [
        {"name": "sensors", "count": 24, "transport": "mqtt", "report_interval": "2s", "attributes": ATTRS,
         "tags": {"site": "a"}},
        {"name": "gw", "count": 2, "kind": "gateway", "peripherals": 3, "transport": "mqtt", "report_interval": "2s",
         "attributes": ATTRS},
    ]},
    "operators": {"count": 2, "think_time": {"min": "300ms", "max": "600ms"},
                  "actions": {"send_command": 3, "send_command_tag": {"weight": 1, "tags": {"site": "a"}}}},
    "criteria": {"max_error_rate": 0, "max_throttled_rate": 0, "lost_writes": 0},
}
DEVICES = 24 + 2 * 4
CONNECTIONS = 24 + 2  # a gateway publishes for its peripherals over its own connection


def fake_fleet(scenario: Any) -> Fleet:
    specs = plan_devices(scenario)
    ids = {s.name: f"{i:024x}" for i, s in enumerate(specs)}
    devices = [Device(ids[s.name], s.name, s.class_name, s.kind, ids[s.gateway_name] if s.gateway_name else None)
               for s in specs]
    by_id = {d.id: d for d in devices}
    for d in devices:
        if d.gateway_id:
            by_id[d.gateway_id].peripheral_ids.append(d.id)
    return Fleet("http://127.0.0.1:1", "a" * 24, scenario.run_tag, "key", Secret("secret"), None, None, devices)


def test_workers_share_the_mqtt_devices_without_overlap_and_keep_gateways_whole() -> None:
    scenario = parse_scenario(SCENARIO, "s.yaml")
    master = RunContext(scenario, fake_fleet(scenario), Login(email="e", password=Secret("p")), LimitsTable(), None,
                        make_recorder(None))
    master.mqtt_url = "mqtt://127.0.0.1:1883"
    data = setup_message(master, ["w1", "w2"])
    claimed: dict[str, list[Device]] = {}
    for w in ("w1", "w2"):
        ctx = worker_context(data, w)
        assert ctx.mqtt_url == "mqtt://127.0.0.1:1883", "the broker travels with the setup"
        assert ctx.claim("multiplexed") == [], "a REST fleet user never takes MQTT devices"
        units = ctx.claim("mqtt")
        assert ctx.claim("mqtt") == [], "a second MQTT user on the worker gets nothing"
        claimed[w] = [d for u in units for d in u.devices]
        for u in units:  # a gateway and its peripherals are one unit: one connection, one worker
            assert {d.gateway_id or d.id for d in u.devices} == {u.devices[0].id}
    ids = [d.id for devices in claimed.values() for d in devices]
    assert len(ids) == len(set(ids)) == DEVICES
    assert all(claimed.values()), "both workers drive some"
    # ownership changes move REST units only: MQTT connections stay with the worker that opened them
    ctx = worker_context(data, "w1")
    before = set(ctx.mqtt_owned or ())
    apply_owners(ctx, "w1", {"version": 1, "workers": ["w1", "w2", "w3"], "effective_at": 0})
    assert ctx.mqtt_owned == before and ctx.claim("mqtt")


def test_one_user_per_worker_of_the_transport_the_scenario_uses() -> None:
    scenario = parse_scenario(SCENARIO, "s.yaml")
    assert user_counts(scenario, 2) == {"standalone": 0, "gateway": 0, "multiplexed": 0, "mqtt": 2, "operator": 2}


@pytest.mark.parametrize(("change", "says"), [
    ({"fleet": {"classes": [*SCENARIO["fleet"]["classes"],
                            {"name": "rest", "count": 2, "report_interval": "2s", "attributes": ATTRS}]}},
     "mixes REST and MQTT devices"),
    ({"events": [{"at": "2s", "action": "drop_mqtt"}]}, "events"),
])
def test_what_a_distributed_run_cannot_drive_is_refused(change: dict[str, Any], says: str) -> None:
    scenario = parse_scenario({**SCENARIO, **change}, "s.yaml")
    with pytest.raises(ConfigError, match=says):
        check_distributable(scenario)


def mixed(tmp_path: Path) -> Path:
    classes = [*SCENARIO["fleet"]["classes"], {"name": "rest", "count": 2, "report_interval": "2s", "attributes": ATTRS}]
    return write_scenario(tmp_path, {**SCENARIO, "fleet": {"classes": classes}})


def test_the_run_command_refuses_before_anything_starts(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(mixed(tmp_path)), "--headless", "--workers",
                          "2", "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "mixes REST and MQTT devices" in lines[0], out.stderr
    assert not (tmp_path / "reports").exists(), "nothing started"


def _running(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_workers_forked_by_locust_quit_when_the_master_refuses_at_init(tmp_path: Path) -> None:
    """``locust -f locustfile.py --processes 2``: Locust forks the workers before init; the master's
    refusal must not leave them waiting 60 s for its heartbeat."""
    path = mixed(tmp_path)
    out = subprocess.run([str(Path(sys.executable).parent / "locust"), "-f", "locustfile.py", "--processes", "2",
                          "--headless", "--scenario", str(path), "--reports-dir", str(tmp_path / "reports")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "mixes REST and MQTT devices" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    deadline = time.monotonic() + 20
    while _running(str(path)) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling a condition with a bounded deadline
    assert not _running(str(path)), "orphaned workers"


def test_two_workers_connect_each_mqtt_device_once_and_read_every_state_back(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--headless", "--workers", "2",
                           "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    run = Run(proc.returncode, out, tmp_path / "reports")
    assert run.code == 0, out[-3000:]
    samples = read_samples(run.run_dir)

    def per_key(op: str) -> dict[str, np.ndarray]:
        mask = samples.op == samples.op_names.index(op)
        return {samples.key_names[k]: samples.status[mask & (samples.key == k)] for k in np.unique(samples.key[mask])}

    connects = per_key("mqtt.connect")
    assert len(connects) == CONNECTIONS and all(len(s) == 1 and s[0] == 200 for s in connects.values()), \
        "each device's connection opened once, by one worker"
    closes = per_key("mqtt.disconnect")
    assert len(closes) == CONNECTIONS and all(list(s) == [2] for s in closes.values()), \
        "closed by the harness at the end only (a second driver would have taken a connection over)"
    assert len(per_key("mqtt.publishState")) == DEVICES, "every device (peripherals too) published"
    assert per_key("mqtt.commandDelivery"), "operators' commands reached the devices"
    summary = run.summary()
    assert summary["passed"] is True
    integrity = summary["integrity"]
    assert integrity["checked"] and integrity["lost_writes"] == 0
    assert integrity["devices_checked"] == integrity["devices_total"] == DEVICES
    processes = json.loads((run.run_dir / "run.json").read_text())["generator"]["processes"]
    assert sum(p["process"].startswith("worker") for p in processes) == 2


def test_one_process_chunks_never_split_a_gateway_from_its_peripherals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of whole gateways (here 10 devices a user: 3 gateways of 3), as many users as chunks."""
    import harness.scenario.model as model
    from harness.session import plan_units

    monkeypatch.setattr(model, "DEVICES_PER_MQTT_USER", 10)
    scenario = parse_scenario({**SCENARIO, "fleet": {"classes": [
        {"name": "gw", "count": 7, "kind": "gateway", "peripherals": 2, "transport": "mqtt", "report_interval": "2s",
         "attributes": ATTRS}]}}, "s.yaml")
    units = plan_units(scenario, fake_fleet(scenario))
    assert [len(u.devices) for u in units] == [9, 9, 3]
    for u in units:
        gateways = {d.gateway_id or d.id for d in u.devices}
        assert all(any(d.id == g for d in u.devices) for g in gateways), "each gateway with its peripherals"
    assert user_counts(scenario)["mqtt"] == len(units), "one user per chunk: every chunk is driven"
