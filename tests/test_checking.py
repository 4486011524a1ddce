"""One validation toolkit: every input file lists all its problems at once, each with file and field.

For each kind of file the tool reads (scenario, criteria, limits, faults) a file with three
different problems must report all three, one per line, each naming the file and the field,
with "did you mean" where a name is close to a known one; the emulator's command line shows
them and exits 2 without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenario.criteria import load_criteria
from harness.checking import Checker, InputError, did_you_mean, range_text
from harness.emulator.faults import load_plan
from harness.errors import ConfigError
from harness.limits import load_limits
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    assert isinstance(exc.value, InputError)
    assert str(exc.value).splitlines() == exc.value.problems  # the message is the list, one per line
    return exc.value.problems


def _fields(lines: list[str], source: Path) -> list[str]:
    """The field path of each line ``<file>: <field>: <message>``, after checking the file is named."""
    assert all(line.startswith(f"{source}: ") for line in lines), lines
    return [line[len(f"{source}: "):].split(": ", 1)[0] for line in lines]


# ---- the checker itself --------------------------------------------------------------
def test_checker_collects_and_raises_once_with_every_line() -> None:
    c = Checker("f.yaml")
    top = c.mapping("", {"nmae": 1, "count": 0, "mode": "fas"}, ("name", "count", "mode"))
    assert c.number("count", top["count"], 1, lo=1, integer=True) == 1  # the fallback, parsing goes on
    assert c.choice("mode", top["mode"], ("fast", "slow"), "slow") == "slow"
    section = c.under("section")
    section.bad("x", [1], "a mapping")
    with pytest.raises(InputError) as err:
        c.check()
    assert err.value.problems == [
        "f.yaml: nmae: unknown field (did you mean 'name'?); allowed: name, count, mode",
        "f.yaml: count: 0 is not allowed; expected a whole number >= 1",
        "f.yaml: mode: 'fas' is not allowed (did you mean 'fast'?); expected one of fast | slow",
        "f.yaml: section.x: [1] is not allowed; expected a mapping",
    ]
    assert isinstance(err.value, ConfigError)  # what the CLIs turn into exit code 2


def test_numbers_refuse_booleans_and_non_finite_values() -> None:
    c = Checker("f.yaml")
    for value in (True, float("nan"), float("inf"), "3", 1.5):
        assert c.number("n", value, None, lo=0, integer=True) is None
    assert len(c.problems) == 5
    assert c.number("n", 3.0, None, integer=True) == 3 and c.number("n", None, 7) == 7
    assert range_text("a number", 0, 1) == "a number from 0 to 1"
    assert range_text("a number", 0, None, lo_open=True) == "a number > 0"
    assert did_you_mean("zzz", ["sliding"]) == ""


def test_a_section_checker_from_its_where() -> None:
    c = Checker.at("run/scenario.yaml: criteria")
    c.add("latency", "is wrong")
    assert c.problems == ["run/scenario.yaml: criteria.latency: is wrong"]


# ---- one test per kind of file: three problems, all reported ----------------------------
def test_scenario_file_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: s\nduraton: 5m\nramp_up: -1\n"
                 "fleet: {classes: [{name: c, count: 0, report_interval: 1s}]}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(f)
    lines = _problems(err)
    assert _fields(lines, f) == ["duraton", "ramp_up", "fleet.classes[0].count"]
    assert "(did you mean 'duration'?)" in lines[0]
    assert "-1 is not allowed; expected a number > 0" in lines[1]
    assert "0 is not allowed; expected a whole number >= 1" in lines[2]


def test_criteria_file_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "criteria.yaml"
    f.write_text("criteria:\n  max_eror_rate: 0.1\n  latency: {'*': {p99: -5}}\n  latency_basis: responce\n")
    with pytest.raises(ConfigError) as err:
        load_criteria(f)
    lines = _problems(err)
    assert _fields(lines, f) == ["criteria.max_eror_rate", "criteria.latency.*.p99", "criteria.latency_basis"]
    assert "(did you mean 'max_error_rate'?)" in lines[0]
    assert "(did you mean 'response'?); expected one of corrected | response" in lines[2]
    f.write_text("max_error_rate: 0.01\n")  # the section's fields at the top level will do
    assert load_criteria(f).max_error_rate == 0.01


def test_limits_file_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "limits.yaml"
    f.write_text("window_model: slidng\nlimits:\n  device.sendState: {count: 0}\n  events.pots: {count: 3}\n"
                 "mqtt: {ban_secs: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_limits(f)
    lines = _problems(err)  # parse_limits once stopped at the first of these
    assert _fields(lines, f) == ["window_model", "limits.device.sendState.count", "limits.events.pots",
                                 "mqtt.ban_secs"]
    assert "'slidng' is not allowed (did you mean 'sliding'?); expected one of sliding | fixed | token_bucket" \
        in lines[0]
    assert "unknown limit (did you mean 'events.post'?)" in lines[2]
    assert "unknown field (did you mean 'ban_seconds'?)" in lines[3]


def test_faults_file_reports_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "faults.yaml"
    f.write_text("seed: x\npause: 3\noperations:\n  device.sendStat: {reset_rate: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_plan(f, frozenset({"device.sendState", "device.get"}))
    lines = _problems(err)
    assert _fields(lines, f) == ["pause", "operations.device.sendStat", "operations.device.sendStat.reset_rate",
                                 "seed"]
    assert "unknown field (did you mean 'pause_s'?)" in lines[0]
    assert "unknown operation (did you mean 'device.sendState'?)" in lines[1]
    assert "2 is not allowed; expected a number from 0 to 1" in lines[2]


def test_file_level_problems_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    for load in (load_scenario, load_criteria, load_limits, load_plan):
        with pytest.raises(InputError) as err:
            load(bad)
        assert len(err.value.problems) == 1 and err.value.problems[0].startswith(f"{bad}: not valid YAML (line ")
        with pytest.raises(InputError, match="cannot read"):
            load(tmp_path / "missing.yaml")


# ---- the emulator's command line --------------------------------------------------------
@pytest.mark.parametrize("option,text,fields", [
    ("--faults", "seed: x\noperations:\n  device.sendStat: {reset_rate: 2}\n",
     ["operations.device.sendStat", "operations.device.sendStat.reset_rate", "seed"]),
    ("--limits", "window_model: slidng\njob_seconds: 0\nlimits: {device.sendState: {count: zero}}\n",
     ["window_model", "job_seconds", "limits.device.sendState.count"]),
])
def test_emulator_cli_lists_every_problem_and_exits_2(tmp_path: Path, option: str, text: str,
                                                       fields: list[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    r = subprocess.run([sys.executable, "-m", "harness.emulator", option, str(f), "--port", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().removeprefix("losant-load emulator: ").splitlines()
    assert _fields(lines, f) == fields
    assert any("did you mean" in line for line in lines)


def test_analyze_lists_every_problem_of_a_criteria_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "scenario.yaml").write_text("name: r\n")  # the criteria file is read before anything else
    bad = tmp_path / "criteria.yaml"
    bad.write_text("criteria: {lost_writes: -1, min_throughput: fast, latency: {'*': {p999: 5}}}\n")
    assert main(["analyze", str(run_dir), "--criteria", str(bad)]) == 2
    lines = capsys.readouterr().err.strip().removeprefix("losant-load: ").splitlines()
    assert _fields(lines, bad) == ["criteria.latency.*.p999", "criteria.lost_writes", "criteria.min_throughput"]
    assert "unknown percentile (did you mean 'p99.9'?)" in lines[0]
