"""Options that would make a run fail are refused before anything starts: one line naming the
option, exit 2, no emulator started, nothing provisioned, no run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from runs import ROOT, Run, run_cli, write_scenario

SCENARIO = {
    "name": "early",
    "duration": "2s",
    "fleet": {"classes": [{"name": "s", "count": 2, "report_interval": "1s",
                           "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
}


def refused(run: Run, option: str) -> None:
    assert run.code == 2, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    assert option in run.output, run.output[-3000:]
    assert "provisioning" not in run.output and "embedded emulator" not in run.output, "nothing may be provisioned"
    assert not run.reports.exists() or not any(run.reports.iterdir()), "no run folder"


def test_missing_baseline_is_refused_before_the_run(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    run = run_cli(["run", str(path), "--headless", "--baseline", str(tmp_path / "nope")], tmp_path / "reports",
                  timeout=60)
    refused(run, "--baseline")


def test_users_zero_is_refused(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    refused(run_cli(["run", str(path), "--headless", "--users", "0"], tmp_path / "reports", timeout=60), "--users 0")


@pytest.mark.parametrize("command", ["losant-load run", "locust -f locustfile.py"])
def test_web_port_in_use_is_refused_before_provisioning(tmp_path: Path, command: str) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == "losant-load run":
            args = ["run", str(path), "--web-port", str(port)]
        else:  # Locust's own entry point goes through the same plugin
            args = ["-c", "import sys, locust.main; sys.argv = ['locust', '-f', 'locustfile.py', '--scenario', "
                    f"{str(path)!r}, '--web-host', '127.0.0.1', '--web-port', '{port}', '--reports-dir', "
                    f"{str(tmp_path / 'reports')!r}]; locust.main.main()"]
        run = run_cli(args, tmp_path / "reports", timeout=90) if command == "losant-load run" else _python(args, tmp_path)
    refused(run, f"--web-port {port}")
    assert sum("--web-port" in line for line in run.output.splitlines()) == 1, "one line says it"


def _python(args: list[str], tmp_path: Path) -> Run:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL, env=dict(os.environ))
    return Run(proc.returncode, proc.stdout + proc.stderr, tmp_path / "reports")


def test_analyze_with_other_criteria_keeps_the_original_verdict_and_rewrites_the_report(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, SCENARIO)
    run = run_cli(["run", str(path), "--headless"], tmp_path / "reports")
    assert run.code == 0, run.output[-3000:]
    criteria = tmp_path / "strict.yaml"
    criteria.write_text("criteria:\n  min_throughput: 100000\n")
    assert "badge fail" not in (run.run_dir / "index.html").read_text()
    again = run_cli(["analyze", str(run.run_dir), "--criteria", str(criteria)], tmp_path / "reports", timeout=120)
    assert again.code == 1, again.output[-3000:]
    assert "summary.original.json" in again.output
    original = json.loads((run.run_dir / "summary.original.json").read_text())
    assert original["passed"] is True and "rejudged" not in original
    summary = run.summary()
    assert summary["passed"] is False
    assert summary["rejudged"] == {"criteria": str(criteria), "original": "summary.original.json", "original_passed": True}
    assert "badge fail" in (run.run_dir / "index.html").read_text(), "the report says what summary.json says"
    assert 'failures="0"' not in (run.run_dir / "junit.xml").read_text()


def test_web_port_check_refuses_a_listening_port_and_accepts_a_free_one() -> None:
    from harness.errors import ConfigError
    from harness.preflight import check_web_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--web-port {port}: cannot listen on 127.0.0.1:{port}"):
            check_web_port("127.0.0.1", port)
    check_web_port("127.0.0.1", port)  # closed again: free
    with pytest.raises(ConfigError, match="--web-port 70000: expected a port number from 1 to 65535"):
        check_web_port("127.0.0.1", 70000)
