"""Truth checks against deliberately wrong or slow targets: the measurements must see what is there.

Each test starts its own emulator (loopback) with a test-only switch and points the
harness at it as a live target, so the harness cannot know what was changed.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from runs import run_cli, write_scenario

from harness.emulator.process import EmulatorProcess

EMAIL, PASSWORD = "truth@example.com", "truth-password-1"
ENV = {"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD}


def live(url: str, name: str, throttle: str, duration: str = "4s", interval: str = "50ms", **extra) -> dict:
    data = {
        "name": name,
        "target": {"kind": "live", "url": url, "auth": "user"},
        "duration": duration,
        "ramp_up": 100,
        "fleet": {"classes": [{"name": "d", "count": 4, "report_interval": interval, "jitter": 0,
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "pacing": {"throttle": throttle},
    }
    data.update(extra)
    return data


def limits_file(folder: Path, name: str, count: int) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"limits": {"device.sendState": {"count": count, "window": 2.0}}}))
    return path


def run_live(tmp_path: Path, data: dict, *extra: str):
    path = write_scenario(tmp_path, data)
    return run_cli(["run", str(path), "--headless", "--yes", "--allow-exceeding-live-limits", *extra],
                   tmp_path / "reports", env=ENV)


def test_corrected_percentiles_reveal_a_slow_server_that_response_times_hide(tmp_path: Path) -> None:
    # Each device plans a state every 50 ms but the server takes 100 ms to answer: the sender
    # falls ever further behind. Response time stays ~100 ms; corrected latency grows with the backlog.
    with EmulatorProcess(email=EMAIL, password=PASSWORD, test_delay_ms=100) as emu:
        run = run_live(tmp_path, live(emu.url, "slow", "off", duration="3s"))
    assert run.code in (0, 1), run.output[-3000:]
    op = run.summary()["operations"]["device.sendState"]
    response_p99 = op["response_time_ms"]["p99"]
    corrected_p99 = op["corrected_latency_ms"]["p99"]
    assert 90 <= response_p99 < 400
    assert corrected_p99 > 5 * response_p99, (response_p99, corrected_p99)


def probe_findings(tmp_path: Path, target_count: int) -> dict:
    documented = limits_file(tmp_path, "documented.yaml", 30)
    enforced = limits_file(tmp_path, "enforced.yaml", target_count)
    data = live("", "probe", "probe", duration="4s", interval="20ms",
                criteria={"max_throttled_rate": None, "lost_writes": None, "conformance_findings": 0})
    data["pacing"] = {"throttle": "probe", "probe": {"limits": ["device.sendState"], "factor": 1.5}}
    with EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(enforced)) as emu:
        data["target"]["url"] = emu.url
        run = run_live(tmp_path, data, "--limits", str(documented))
    assert run.code in (0, 1), run.output[-3000:]
    return run.summary()["conformance"]


def test_a_stricter_target_yields_false_throttle_findings(tmp_path: Path) -> None:
    conformance = probe_findings(tmp_path, 25)
    assert conformance["findings_by_kind"].get("false_throttle", 0) > 0, conformance["findings_by_kind"]
    assert conformance["findings_by_kind"].get("missed_throttle", 0) == 0


def test_a_looser_target_yields_missed_throttle_findings(tmp_path: Path) -> None:
    conformance = probe_findings(tmp_path, 35)
    assert conformance["findings_by_kind"].get("missed_throttle", 0) > 0, conformance["findings_by_kind"]
    assert conformance["findings_by_kind"].get("false_throttle", 0) == 0


def test_a_conforming_target_yields_no_findings(tmp_path: Path) -> None:
    conformance = probe_findings(tmp_path, 30)
    assert conformance["findings_total"] == 0, conformance["findings"][:3]


def test_lost_writes_are_detected_and_fail_the_run(tmp_path: Path) -> None:
    data = live("", "lossy", "respect", duration="3s", interval="200ms", criteria={"lost_writes": 0})
    with EmulatorProcess(email=EMAIL, password=PASSWORD, test_drop_fraction=0.1) as emu:
        data["target"]["url"] = emu.url
        run = run_live(tmp_path, data)
    assert run.code == 1, run.output[-3000:]
    integrity = run.summary()["integrity"]
    assert integrity["checked"] is True
    accepted, lost = integrity["accepted_checked"], integrity["lost_writes"]
    assert integrity["coverage"] == "all" and accepted == integrity["accepted_total"]  # a loopback target: all read
    assert accepted > 20
    assert 0.05 * accepted <= lost <= 0.2 * accepted, (accepted, lost)
    assert integrity["read_back"] == accepted - lost
    assert f"{lost} lost" in integrity["statement"]
    assert all({"device", "time"} <= set(item) for item in integrity["lost"])
    assert "lost writes" in run.output
