"""MQTT gateways end to end: a gateway holds the one connection, publishes its peripherals' states on
their topics and receives the commands operators send to its peripherals (it subscribes to their
command topics, as Losant lets a gateway do), against the embedded emulator's broker (loopback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from runs import run_cli, write_scenario

from harness.record import read_samples

GATEWAYS, PERIPHERALS = 2, 3


def test_a_gateway_receives_its_peripherals_commands(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, {
        "name": "mqtt-gateway-e2e",
        "target": {"kind": "emulator"},
        "duration": "5s",
        "ramp_up": 100,
        "fleet": {"classes": [{
            "name": "gw", "count": GATEWAYS, "kind": "gateway", "peripherals": PERIPHERALS, "transport": "mqtt",
            "report_interval": "1s", "tags": {"site": "gw"}, "attributes": {"v": {"type": "number", "min": 0, "max": 1}},
        }]},
        "operators": {"count": 1, "think_time": {"min": "100ms", "max": "200ms"},
                      "actions": {"send_command": 2, "send_command_tag": {"weight": 1, "tags": {"site": "gw"}}}},
        "pacing": {"throttle": "respect"},
        "criteria": {"lost_writes": 0, "max_error_rate": 0.0, "conformance_findings": 0},
    })
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    s = read_samples(run.run_dir)
    names = s.key_names
    connect = s.op == s.op_names.index("mqtt.connect")
    assert connect.sum() == GATEWAYS and (s.status[connect] == 200).all()  # peripherals never connect
    gateways = {names[k] for k in s.key[connect]}
    delivered = (s.op == s.op_names.index("mqtt.commandDelivery"))
    keys = [names[k] for k in s.key[delivered & (s.status == 200)]]
    # a peripheral's command arrives on its gateway's connection, keyed <gatewayId>:losant/<peripheralId>/command
    to_peripherals = [k for k in keys if ":" in k]
    assert to_peripherals, keys
    for k in to_peripherals:
        gateway, topic = k.split(":", 1)
        assert gateway in gateways and topic.startswith("losant/") and topic.endswith("/command")
        assert topic.split("/")[1] not in gateways
    assert not (delivered & (s.status != 200)).any()  # every command awaited was received
    latency = s.latency[delivered]
    assert np.isfinite(latency).all() and latency.max() < 2.0
    summary = run.summary()
    assert summary["mqtt"]["findings_total"] == 0
    assert summary["mqtt"]["commands"]["received"] == int(delivered.sum())
