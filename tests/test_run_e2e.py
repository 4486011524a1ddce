"""End to end through the CLI, against the embedded emulator: what a user of `losant-load run` gets.

Windows are scaled down with a limits file (30 calls per 2 s instead of per 15 s) so two
full windows fit in a few seconds; the emulator and the harness read the same file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
from runs import run_cli, write_scenario

from harness.record import read_samples

FAST_LIMITS = {"limits": {"device.sendState": {"count": 30, "window": 2.0}}}


def fleet_scenario(name: str, throttle: str, **extra) -> dict:
    data = {
        "name": name,
        "target": {"kind": "emulator", "limits": "limits.yaml"},
        "duration": "5s",
        "ramp_up": 100,
        "fleet": {"classes": [{
            "name": "fast", "count": 8, "report_interval": "50ms", "jitter": 0,
            "attributes": {"v": {"type": "number", "min": 0, "max": 10}},
        }]},
        "pacing": {"throttle": throttle},
    }
    data.update(extra)
    return data


def sends_by_device(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    s = read_samples(run_dir)
    op = s.op_names.index("device.sendState")
    out: dict[str, list] = defaultdict(list)
    mask = s.op == op
    for key, sent, status in zip(s.key[mask], s.sent[mask], s.status[mask]):
        out[s.key_names[key]].append((sent, status))
    return {k: (np.array([a for a, _ in v]), np.array([b for _, b in v])) for k, v in out.items()}


def test_respect_at_full_rate_draws_no_429_over_two_windows(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "limits.yaml").write_text(yaml.safe_dump(FAST_LIMITS))
    path = write_scenario(tmp_path, fleet_scenario("respect-full", "respect"))
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    per_device = sends_by_device(run.run_dir)
    assert len(per_device) == 8
    for device, (sent, status) in per_device.items():
        assert (status == 429).sum() == 0, f"{device} was throttled"
        assert (status == 200).all()
        assert sent.max() - sent.min() >= 4.0, "the device did not run for two full windows"
        # No 2 s window (sliding, the strictest reading) holds more than 30 sends ...
        order = np.sort(sent)
        in_window = np.searchsorted(order, order + 2.0, side="left") - np.arange(len(order))
        assert in_window.max() <= 30
        # ... and the device really ran at the documented rate (30 per 2 s plus one answer's latency).
        steady = order[(order > order[0] + 1) & (order < order[-1] - 1)]
        assert len(steady) / (steady[-1] - steady[0]) > 0.9 * 30 / 2.0


def test_probe_draws_the_first_429_exactly_after_the_documented_count(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "limits.yaml").write_text(yaml.safe_dump(FAST_LIMITS))
    data = fleet_scenario("probe-fast", "probe", duration="4s")
    data["pacing"] = {"throttle": "probe", "probe": {"limits": ["device.sendState"], "factor": 1.5}}
    data["criteria"] = {"max_throttled_rate": None, "lost_writes": None, "conformance_findings": 0}
    path = write_scenario(tmp_path, data)
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    for device, (sent, status) in sends_by_device(run.run_dir).items():
        order = np.argsort(sent)
        statuses = status[order]
        first_429 = int(np.argmax(statuses == 429))
        assert statuses[first_429] == 429, f"{device} was never throttled"
        assert first_429 == 30, f"{device}: first 429 at call {first_429 + 1}, expected call 31"
    conformance = run.summary()["conformance"]
    (state,) = [lim for lim in conformance["limits"] if lim["limit"] == "device.sendState"]
    assert state["probe"]["onset_count"]["min"] == state["probe"]["onset_count"]["max"] == 30
    assert conformance["findings_total"] == 0


def test_exit_code_one_when_a_criterion_fails(tmp_path: Path) -> None:
    data = fleet_scenario("fails", "respect", duration="3s")
    data["target"] = {"kind": "emulator"}
    data["criteria"] = {"min_throughput": 1_000_000}
    path = write_scenario(tmp_path, data)
    junit = tmp_path / "ci" / "results.xml"
    junit.parent.mkdir()
    run = run_cli(["run", str(path), "--headless", "--junit", str(junit)], tmp_path / "reports")
    assert run.code == 1, run.output[-3000:]
    assert "FAIL" in run.output and "throughput" in run.output
    verdicts = run.summary()["verdicts"]
    assert any(v["name"].startswith("throughput") and not v["passed"] for v in verdicts)
    # CI's view says what the terminal, summary.json and the exit code say: the throughput case fails
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (run.run_dir / "junit.xml").read_text() == junit.read_text()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == [v["name"] for v in verdicts if v["passed"] is False]
    assert sum(1 for c in suite.iter("testcase") if (c.get("classname") or "").endswith(".criteria")) == len(verdicts)
    # integrity covers every accepted state of every device that had one (the emulator's reads are free)
    integrity = run.summary()["integrity"]
    sends = sends_by_device(run.run_dir)
    accepted_devices = sum(1 for _, status in sends.values() if (status == 200).any())
    assert integrity["coverage"] == "all", integrity["statement"]
    assert integrity["devices_checked"] == integrity["devices_total"] == accepted_devices == 8
    assert integrity["accepted_checked"] == integrity["accepted_total"] == \
        sum(int((status == 200).sum()) for _, status in sends.values())
    assert integrity["statement"].startswith("every accepted state of all 8 devices read back")


def test_exit_code_two_for_a_malformed_scenario_before_anything_starts(tmp_path: Path) -> None:
    data = fleet_scenario("bad", "respect")
    data["fleet"]["classes"][0]["report_intervall"] = "1s"
    path = write_scenario(tmp_path, data)
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 2
    assert str(path) in run.output and "report_intervall" in run.output and "report_interval" in run.output
    assert "Traceback" not in run.output
    assert not any((tmp_path / "reports").iterdir()), "nothing may start for a malformed scenario"


def test_users_zero_is_refused_before_anything_starts(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, fleet_scenario("zero", "respect"))
    run = run_cli(["run", str(path), "--headless", "--users", "0"], tmp_path / "reports")
    assert run.code == 2
    assert "--users 0" in run.output and "Traceback" not in run.output
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
