"""The MQTT probe end to end: devices push ``mqtt.publishIn`` past its count in rounds against a
loopback broker, and the judge's probe verdict follows what the broker did.

Windows and bans are shortened with limits files (5 messages per 2 s per topic, a 1.5 s ban),
so a run lasts seconds. The conforming run uses the embedded emulator (one table for the broker
and the judge); the wrong brokers are emulators started here, reached as a live target, whose
table differs from the one the harness judges by (``--limits``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from runs import Run, run_cli, write_scenario

from harness.emulator.process import EmulatorProcess

EMAIL, PASSWORD = "mqtt-probe@example.com", "mqtt-probe-password-1"
ENV = {"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD}
SHORT = {"limits": {"mqtt.publishIn": {"count": 5, "window": 2.0}}, "mqtt": {"ban_seconds": 1.5}}


def scenario(target: dict[str, Any], duration: str = "5s") -> dict[str, Any]:
    return {
        "name": "mqtt-probe-e2e",
        "target": target,
        "duration": duration,
        "ramp_up": 100,
        "fleet": {"classes": [{"name": "p", "count": 2, "transport": "mqtt", "report_interval": "1m",
                               "attributes": {"v": {"type": "number", "min": 0, "max": 10}}}]},
        "pacing": {"throttle": "probe", "probe": {"limits": ["mqtt.publishIn"]}},
        "criteria": {"max_error_rate": None, "max_throttled_rate": None, "lost_writes": 0,
                     "conformance_findings": 0},
    }


def table(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_embedded_broker_conforms_to_the_probe(tmp_path: Path) -> None:
    table(tmp_path, "limits.yaml", SHORT)
    path = write_scenario(tmp_path, scenario({"kind": "emulator", "limits": "limits.yaml"}))
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    summary = run.summary()
    probe = summary["mqtt"]["probe"]
    assert probe["verdict"] == "conforms", probe
    # each device: a round at the start, its 6th message dropped and the device disconnected; one reconnect
    # refused during the 1.5 s ban, one accepted after it; the next round 3 s after the first
    assert probe["disconnected_at_the_limit"] >= 2 and probe["onset_exact"] == probe["disconnected_at_the_limit"]
    assert probe["onset"] == {"min": 5, "max": 5}
    assert probe["ban"]["refused_during"] >= 2 and probe["ban"]["reconnected_after"] >= 2
    assert probe["not_disconnected"] == probe["disconnected_early"] == probe["findings"] == 0
    assert summary["conformance"]["findings_total"] == 0
    assert "probe mqtt.publishIn (5 per 2 s per device and topic): conforms" in run.output
    assert 'name="probe mqtt.publishIn"' in (run.run_dir / "junit.xml").read_text()
    assert 'id="mqtt-probe"' in (run.run_dir / "index.html").read_text(encoding="utf-8")


def wrong_broker(tmp_path: Path, enforced: dict[str, Any]) -> Run:
    documented = table(tmp_path, "documented.yaml", SHORT)
    with EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(table(tmp_path, "enforced.yaml", enforced))) as emu:
        data = scenario({"kind": "live", "url": emu.url, "mqtt_url": emu.mqtt_url, "auth": "user"})
        data["integrity"] = {"sample": "all"}
        path = write_scenario(tmp_path, data)
        run = run_cli(["run", str(path), "--headless", "--yes", "--allow-exceeding-live-limits",
                       "--limits", str(documented)], tmp_path / "reports", env=ENV)
    assert "Traceback" not in run.output, run.output[-3000:]
    return run


@pytest.mark.parametrize(("enforced", "kind", "field"), [
    # the broker's per-topic count is 8, not 5: the 6th message is acknowledged, nobody disconnected
    ({"limits": {"mqtt.publishIn": {"count": 8, "window": 2.0}}, "mqtt": {"ban_seconds": 1.5}},
     "mqtt_missed_disconnect", "not_disconnected"),
    # the broker bans for 0.2 s, not 1.5 s: the reconnect during the ban is accepted
    ({"limits": {"mqtt.publishIn": {"count": 5, "window": 2.0}}, "mqtt": {"ban_seconds": 0.2}},
     "mqtt_missed_refusal", "accepted_during"),
    # the broker bans for 6 s, not 1.5 s: the reconnect after the longest ban the policy allows is refused
    ({"limits": {"mqtt.publishIn": {"count": 5, "window": 2.0}}, "mqtt": {"ban_seconds": 6}},
     "mqtt_false_refusal", "refused_after"),
], ids=["count-too-high", "ban-too-short", "ban-too-long"])
def test_a_wrong_broker_draws_the_probe_finding_and_fails_the_run(tmp_path: Path, enforced: dict[str, Any],
                                                                  kind: str, field: str) -> None:
    run = wrong_broker(tmp_path, enforced)
    assert run.code == 1, run.output[-3000:]
    summary = run.summary()
    probe = summary["mqtt"]["probe"]
    assert probe["verdict"] == "findings", probe
    assert (probe.get(field) or probe["ban"].get(field) or 0) >= 2, probe  # every round of both devices
    conformance = summary["conformance"]
    assert conformance["findings_by_kind"].get(kind, 0) >= 2, conformance["findings_by_kind"]
    assert conformance["findings_total"] == summary["mqtt"]["findings_total"] == probe["findings"]
    assert summary["passed"] is False
    junit = (run.run_dir / "junit.xml").read_text()
    assert 'name="probe mqtt.publishIn"' in junit and "<failure" in junit
    assert "probe mqtt.publishIn (5 per 2 s per device and topic): findings" in run.output
