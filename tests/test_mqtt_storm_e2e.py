"""A reconnect storm end to end: an MQTT fleet on the embedded emulator's broker (loopback) is
dropped at a stated time (``events: drop_mqtt``) and reconnects within the new-connection limit.

The limit is shortened with a limits file both the emulator and the harness read (10 new
connections per 2 s), so 30 devices need at least 4 s to reconnect and the run lasts 14 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from runs import run_cli, write_scenario

from harness.record import read_samples

LIMITS = {"limits": {"mqtt.newConnections": {"count": 10, "window": 2.0}}}
DEVICES = 30


def test_reconnect_storm_recovery_is_shaped_by_the_connection_limit(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(yaml.safe_dump(LIMITS))
    path = write_scenario(tmp_path, {
        "name": "storm-e2e",
        "target": {"kind": "emulator", "limits": "limits.yaml"},
        "duration": "14s",
        "ramp_up": 100,
        "fleet": {"classes": [{"name": "m", "count": DEVICES, "transport": "mqtt", "report_interval": "1s",
                               "attributes": {"v": {"type": "number", "min": 0, "max": 10}}}]},
        "events": [{"at": "7s", "action": "drop_mqtt"}],
        "pacing": {"throttle": "respect"},
        "criteria": {"lost_writes": 0, "conformance_findings": 0},
    })
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    summary = run.summary()
    block = summary["mqtt"]
    (storm,) = block["storms"]
    assert storm["dropped"] == DEVICES and storm["recovered"], storm
    assert storm["least_by_limit_s"] == 4.0
    assert storm["recovery_s"] >= storm["least_by_limit_s"]  # the limit, not the clients, set the pace
    assert block["connected"]["peak"] == DEVICES and block["connects"]["reconnects"] == DEVICES
    assert max(block["series"]["new_connections_last_window"]) <= 10
    assert block["disconnects"]["by_reason"] == {"closed by the client": DEVICES, "dropped on purpose (storm)": DEVICES}
    assert block["findings_total"] == 0 and summary["conformance"]["findings_total"] == 0

    s = read_samples(run.run_dir)
    drop = s.op == s.op_names.index("mqtt.drop")
    assert drop.sum() == 1 and s.status[drop][0] == 200
    # the drop went at its stated time (planned = start + 7 s), every reconnect after it
    connect = (s.op == s.op_names.index("mqtt.connect")) & (s.status == 200)
    after = np.sort(s.sent[connect])[DEVICES:]
    assert len(after) == DEVICES and after.min() >= s.sent[drop][0]
    html = (run.run_dir / "index.html").read_text(encoding="utf-8")
    assert '<section id="mqtt">' in html and f"{storm['recovery_s']:,.1f} s" in html
    assert "mass disconnect: 30 dropped, all back after" in run.output
