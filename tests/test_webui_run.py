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
            wanted = {"device.sendState", "device.get"}
            names: set[str] = set()
            deadline = time.time() + 60
            while time.time() < deadline:  # until both kinds of traffic ran (polling a condition)
                stats = get(base + "/stats/requests")
                names = {s["name"] for s in stats["stats"]
                         if s["name"] in wanted and s["num_requests"] - s["num_failures"] >= 6}
                if names == wanted:
                    break
                time.sleep(0.2)
            assert names == wanted, names
            post(base + "/stop", {})
            deadline = time.time() + 60
            while time.time() < deadline and not list(reports.glob(f"*-{name}/summary.json")):
                time.sleep(0.2)
            (summary_path,) = list(reports.glob(f"*-{name}/summary.json"))
            summary = json.loads(summary_path.read_text())
            assert summary["scenario"]["name"] == name
            assert summary["operations"]["device.sendState"]["count"] > 5
            assert (summary_path.parent / "index.html").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out[-3000:]


def test_the_form_follows_the_scenario_and_the_end_of_a_run_is_shown(tmp_path: Path) -> None:
    """Run time prefilled from the scenario, another user count refused with a message, Stop before the run
    time judged incomplete, and the verdict with a link to the report (served by the web UI) in the Throttles tab."""
    path = write_scenario(tmp_path, {**SMALL, "name": "webui-form", "duration": "45s"})
    port = free_port()
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", "locustfile.py", "--scenario", str(path),
                             "--web-host", "127.0.0.1", "--web-port", str(port), "--reports-dir", str(reports)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        page, deadline = "", time.time() + 90
        while time.time() < deadline and not page:
            try:
                page = urllib.request.urlopen(base + "/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)  # polling a condition: the web UI answers
        args = json.loads(page.split("window.templateArgs = ", 1)[1].split("\n", 1)[0].rstrip().rstrip(";"))
        assert args["run_time"] == 45 and args["num_users"] == 6, "the form starts from the scenario"
        assert "%(default)s" not in page
        refused = post(base + "/swarm", {"user_count": 50, "spawn_rate": 50, "run_time": "45s"})
        assert refused["success"] is False and "runs 6 users" in refused["message"] and "enter 6" in refused["message"]
        assert post(base + "/swarm", {"user_count": 6, "spawn_rate": 50, "run_time": "45s"})["success"]
        deadline = time.time() + 60
        while time.time() < deadline and not any(
                s["name"] == "device.sendState" and s["num_requests"] >= 6 for s in get(base + "/stats/requests")["stats"]):
            time.sleep(0.2)  # polling a condition: states are being sent
        post(base + "/stop", {})  # long before the 45 s run time
        last: list[dict] = []
        deadline = time.time() + 90
        while time.time() < deadline and not last:
            extended = get(base + "/stats/requests").get("extended_stats") or []
            last = [r for t in extended for r in t["data"] if r["what"].startswith("last run")]
            time.sleep(0.2)  # polling a condition: the run was judged
        assert last and "INCOMPLETE (stopped from the web UI before its run time)" in last[0]["what"], last
        (summary_path,) = list(reports.glob("*-webui-form/summary.json"))
        summary = json.loads(summary_path.read_text())
        assert summary["complete"] is False
        assert json.loads((summary_path.parent / "run.json").read_text())["duration"] == 45
        assert last[0]["limit"] == f"/reports/{summary_path.parent.name}/index.html"
        with urllib.request.urlopen(base + last[0]["limit"], timeout=30) as r:
            assert r.status == 200 and b"INCOMPLETE" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out[-3000:]
