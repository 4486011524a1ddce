"""`locust -f locustfile.py` runs a scenario from the web UI: start, traffic, stop, a judged run folder."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from runs import ROOT, write_scenario

SMALL = {
    "name": "webui-small",
    "fleet": {"classes": [{"name": "s", "count": 5, "report_interval": "600ms",
                           "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
    "operators": {"count": 1, "think_time": {"min": "100ms", "max": "200ms"}, "actions": {"get_device": 1}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def post(url: str, form: dict) -> dict:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=60) as r:
        return json.loads(r.read() or b"{}")


def test_scenario_runs_from_the_web_ui_and_the_form_can_switch_it(tmp_path: Path) -> None:
    first = write_scenario(tmp_path, SMALL, "first.yaml")
    second = write_scenario(tmp_path, {**SMALL, "name": "webui-second"}, "second.yaml")
    port = free_port()
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", "locustfile.py", "--scenario", str(first),
                             "--web-host", "127.0.0.1", "--web-port", str(port), "--reports-dir", str(reports)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                page = urllib.request.urlopen(base + "/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert '"scenario"' in page, "the scenario option is in the web UI's form"
        for scenario, name in ((first, "webui-small"), (second, "webui-second")):
            assert post(base + "/swarm", {"user_count": 6, "spawn_rate": 50, "scenario": str(scenario)})["success"]
            time.sleep(4)
            stats = get(base + "/stats/requests")
            names = {s["name"] for s in stats["stats"]}
            assert {"device.sendState", "device.get"} <= names, names
            post(base + "/stop", {})
            deadline = time.time() + 30
            while time.time() < deadline and not list(reports.glob(f"*-{name}/summary.json")):
                time.sleep(0.3)
            (summary_path,) = list(reports.glob(f"*-{name}/summary.json"))
            summary = json.loads(summary_path.read_text())
            assert summary["scenario"]["name"] == name
            assert summary["operations"]["device.sendState"]["count"] > 5
            assert (summary_path.parent / "index.html").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out[-3000:]
