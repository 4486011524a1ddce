"""Run comparison against real runs: a slower target is a regression, an unchanged one is not."""

from __future__ import annotations

from pathlib import Path

from runs import run_cli, write_scenario

from harness.emulator.process import EmulatorProcess

EMAIL, PASSWORD = "cmp@example.com", "compare-password-1"
ENV = {"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD}


def one_run(tmp_path: Path, name: str, delay_ms: int) -> Path:
    with EmulatorProcess(email=EMAIL, password=PASSWORD, test_delay_ms=delay_ms or None) as emu:
        path = write_scenario(tmp_path, {
            "name": name, "duration": "5s", "ramp_up": 100,
            "target": {"kind": "live", "url": emu.url, "auth": "user"},
            "fleet": {"classes": [{"name": "s", "count": 20, "report_interval": "600ms",
                                   "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        }, f"{name}.yaml")
        run = run_cli(["run", str(path), "--headless", "--yes"], tmp_path / name, env=ENV)
    assert run.code == 0, run.output[-3000:]
    return run.run_dir


def test_a_slower_target_is_a_regression_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    # Two identical runs on a shared CI machine differ by far more than sampling noise:
    # the 20 auth calls of the ramp-up once moved +85% at p99 between them. The
    # bootstrap cannot see machine noise, so the threshold here is 200% and the slow
    # target adds 100 ms (a 20x change), which keeps both verdicts far from the line.
    baseline = one_run(tmp_path, "baseline", 0)
    same = one_run(tmp_path, "same", 0)
    slower = one_run(tmp_path, "slower", 100)
    unchanged = run_cli(["compare", str(baseline), str(same), "--threshold", "2"], tmp_path / "x")
    assert unchanged.code == 0, unchanged.output[-3000:]
    regressed = run_cli(["compare", str(baseline), str(slower), "--threshold", "2"], tmp_path / "y")
    assert regressed.code == 1, regressed.output[-3000:]
    assert "device.sendState" in regressed.output and "regression" in regressed.output.lower()
