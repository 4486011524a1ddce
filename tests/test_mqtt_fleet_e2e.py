"""An MQTT fleet end to end through the CLI, against the embedded emulator's broker (loopback).

The broker's windows are shortened with a limits file the emulator and the harness both read
(8 new connections per 1 s, 5 publishes per 2 s per device topic, 1 s bans), so the fleet's
ramp-up is paced over several windows and every device asks for twice what respect mode may
send, all in a few seconds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from runs import run_cli, write_scenario

from harness.record import read_samples

LIMITS = {"limits": {"mqtt.newConnections": {"count": 8, "window": 1.0},
                     "mqtt.publishIn": {"count": 5, "window": 2.0}},
          "mqtt": {"ban_seconds": 1.0}}
DEVICES = 24


def most_in_window(times: np.ndarray, window: float) -> int:
    order = np.sort(times)
    return int((np.searchsorted(order, order + window, side="right") - np.arange(len(order))).max()) if len(order) else 0


def test_mqtt_fleet_respects_the_broker_and_every_state_is_read_back(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(yaml.safe_dump(LIMITS))
    path = write_scenario(tmp_path, {
        "name": "mqtt-e2e",
        "target": {"kind": "emulator", "limits": "limits.yaml"},
        "duration": "7s",
        "ramp_up": 100,
        "fleet": {"classes": [{
            "name": "m", "count": DEVICES, "transport": "mqtt", "report_interval": "200ms", "jitter": 0,
            "tags": {"site": "e2e"}, "attributes": {"v": {"type": "number", "min": 0, "max": 10}},
        }]},
        "operators": {"count": 1, "think_time": {"min": "100ms", "max": "300ms"},
                      "actions": {"send_command": 2, "send_command_tag": {"weight": 1, "tags": {"site": "e2e"}}}},
        "pacing": {"throttle": "respect"},
        "criteria": {"lost_writes": 0, "max_error_rate": 0.0},
    })
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    assert f"{DEVICES} MQTT connections within mqtt.newConnections (8 per 1 s per application): the fleet is " \
           "fully connected after about 2 s" in run.output

    s = read_samples(run.run_dir)
    names = s.key_names

    def rows(op: str) -> np.ndarray:
        return s.op == s.op_names.index(op)

    # connects: every device once, accepted, at most 8 CONNECTs in any closed 1 s interval
    connect = rows("mqtt.connect")
    assert (s.status[connect] == 200).all() and connect.sum() == DEVICES
    assert most_in_window(s.sent[connect], 1.0) <= 8
    assert s.sent[connect].max() - s.sent[connect].min() >= 2.0  # the ramp-up took the planned windows

    # no disconnect but the harness's own at the end (reason 2): none for rate
    disconnect = rows("mqtt.disconnect")
    assert sorted(set(s.status[disconnect].tolist())) == [2] and disconnect.sum() == DEVICES

    # publishes: all acknowledged, within 5 per 2 s per device topic (the devices asked for 10)
    publish = rows("mqtt.publishState")
    assert (s.status[publish] == 200).all()
    per_topic: dict[str, list[float]] = defaultdict(list)
    for key, sent in zip(s.key[publish], s.sent[publish]):
        per_topic[names[key]].append(sent)
    assert len(per_topic) == DEVICES and all(k.endswith(f"losant/{k.split(':')[0]}/state") for k in per_topic)
    assert max(most_in_window(np.array(v), 2.0) for v in per_topic.values()) <= 5
    assert publish.sum() >= DEVICES * 5  # each device sent through at least two windows' worth

    summary = run.summary()
    integrity = summary["integrity"]
    assert integrity["lost_writes"] == 0 and integrity["read_back"] == integrity["accepted_total"] == publish.sum()

    # commands pushed over MQTT, with their delivery latency in summary.json and the report
    delivered = rows("mqtt.commandDelivery")
    assert (s.status[delivered] == 200).sum() >= 1
    assert (s.latency[delivered & (s.status == 200)] < 5.0).all()
    assert "mqtt.commandDelivery" in summary["operations"]
    assert "mqtt.commandDelivery" in (run.run_dir / "index.html").read_text()

    # Locust's own statistics (its web UI, locust_stats.csv) see the MQTT messages too, counted exactly
    locust_rows = {line.split(",")[0]: line.split(",") for line in (run.run_dir / "locust_stats.csv").read_text().splitlines()}
    assert int(locust_rows["mqtt.publishState"][1]) == int(publish.sum())


def test_devices_over_the_limit_are_disconnected_and_reconnect_with_back_off(tmp_path: Path) -> None:
    """Pacing off: each device publishes 5/s against 5 per 2 s, so the broker disconnects and bans it
    (1 s); the harness records the loss (reason 1), retries with back-off (refused while banned)
    and reconnects; what was acknowledged before the loss is still read back."""
    (tmp_path / "limits.yaml").write_text(yaml.safe_dump(LIMITS))
    path = write_scenario(tmp_path, {
        "name": "mqtt-reconnect",
        "target": {"kind": "emulator", "limits": "limits.yaml"},
        "duration": "6s",
        "ramp_up": 100,
        "fleet": {"classes": [{"name": "m", "count": 4, "transport": "mqtt", "report_interval": "200ms", "jitter": 0,
                               "attributes": {"v": {"type": "number", "min": 0, "max": 10}}}]},
        "pacing": {"throttle": "off"},
        "criteria": {"lost_writes": 0},
    })
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.run_dir.is_dir(), run.output[-3000:]
    s = read_samples(run.run_dir)
    names = s.key_names
    connect = s.op == s.op_names.index("mqtt.connect")
    disconnect = s.op == s.op_names.index("mqtt.disconnect")
    by_device: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    for mask, kind in ((connect, "connect"), (disconnect, "disconnect")):
        for key, sent, latency, status in zip(s.key[mask], s.sent[mask], s.latency[mask], s.status[mask]):
            by_device[names[key]].append((sent + (latency if kind == "connect" else 0.0), kind, int(status)))
    assert len(by_device) == 4
    refused = 0
    for device, events in by_device.items():
        events.sort()
        losses = [t for t, kind, status in events if kind == "disconnect" and status == 1]
        assert losses, f"{device} was never disconnected for rate: {events}"
        # after each loss for rate the next attempt waits the back-off's least delay (0.5 s)
        for t_loss in losses:
            later = [t for t, kind, _ in events if kind == "connect" and t > t_loss]
            if later:
                assert later[0] - t_loss >= 0.5 - 0.05
        refused += sum(1 for _, kind, status in events if kind == "connect" and status == 1003)
        accepted = [t for t, kind, status in events if kind == "connect" and status == 200]
        assert len(accepted) >= 2, f"{device} did not reconnect: {events}"
    assert refused >= 1  # a retry inside the 1 s ban is refused with CONNACK 3
    assert run.summary()["integrity"]["lost_writes"] == 0
