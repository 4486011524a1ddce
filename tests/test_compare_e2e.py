"""Run comparison end to end: real runs against the emulator, as a user would make them.

Only verdicts far from the line are asserted here (a target 100 ms slower against one
that answers in about 2 ms), so a busy machine cannot flip them; the false-alarm and
detection rates near the line are measured by bench/compare_calibration.py.
"""

from __future__ import annotations

from pathlib import Path

from runs import run_cli, write_scenario

from harness.emulator.process import EmulatorProcess

EMAIL, PASSWORD = "cmp@example.com", "compare-password-1"
ENV = {"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD}


def scenario(tmp_path: Path, url: str, file: str) -> Path:
    return write_scenario(tmp_path, {
        "name": "compare-e2e", "duration": "10s", "ramp_up": 100,
        "target": {"kind": "live", "url": url, "auth": "user"},
        "fleet": {"classes": [{"name": "s", "count": 20, "report_interval": "500ms",
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
    }, file)


def test_a_slower_target_fails_the_run_everywhere_and_compare_exits_1(tmp_path: Path) -> None:
    with EmulatorProcess(email=EMAIL, password=PASSWORD) as emu:
        base = run_cli(["run", str(scenario(tmp_path, emu.url, "base.yaml")), "--headless", "--yes"],
                       tmp_path / "base", env=ENV)
    assert base.code == 0, base.output[-3000:]
    with EmulatorProcess(email=EMAIL, password=PASSWORD, test_delay_ms=100) as emu:  # another port: same target
        slow = run_cli(["run", str(scenario(tmp_path, emu.url, "slow.yaml")), "--headless", "--yes",
                        "--baseline", str(base.run_dir)], tmp_path / "slow", env=ENV)
    # one verdict everywhere: exit code, terminal, summary.json, the report's badge
    assert slow.code == 1, slow.output[-3000:]
    assert "FAILED: regression" in slow.output and "device.sendState" in slow.output
    summary = slow.summary()
    assert summary["passed"] is False and "regression" in summary["failed_because"]
    assert summary["regression"]["verdict"] == "regression" and summary["regression"]["regressions_total"] >= 1
    assert 'FAIL: REGRESSION' in (slow.run_dir / "index.html").read_text()

    regressed = run_cli(["compare", str(base.run_dir), str(slow.run_dir)], tmp_path / "x")
    assert regressed.code == 1, regressed.output[-3000:]
    assert "REGRESSION device.sendState" in regressed.output and "verdict: REGRESSION" in regressed.output
    same = run_cli(["compare", str(base.run_dir), str(base.run_dir)], tmp_path / "y")
    assert same.code == 0 and "verdict: no regression" in same.output, same.output[-3000:]


def test_a_missing_baseline_is_refused_before_the_run(tmp_path: Path) -> None:
    path = scenario(tmp_path, "http://127.0.0.1:9", "s.yaml")
    run = run_cli(["run", str(path), "--headless", "--yes", "--baseline", str(tmp_path / "nope")],
                  tmp_path / "reports", env=ENV, timeout=60)
    assert run.code == 2 and "no such run folder" in run.output, run.output[-2000:]
    assert not any((tmp_path / "reports").iterdir())  # nothing ran
