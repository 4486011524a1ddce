"""Benchmark: how much of a generator core the harness gets, against bare Locust and wrk.

One emulator (limits raised so nothing throttles) is pinned to CPU 1; every generator
is pinned to CPU 0 and sends the same request (a device's Send State with its device
token) as fast as it can, one after the other, interleaved (A B C D, A B C D, ...):

  A  bare Locust: a FastHttpUser posting in a loop, no scheduler, no recorder
  B  the harness: `losant-load run` with its device users (timeline, ledger in `off`
     mode, state generator, sample recorder), pacing asking for more than it can send
  C  the harness with `--no-record` (B without the recorder): B/C is the recorder's cost
  D  wrk -t1 with a Lua script rotating the same device paths and tokens

Figures: req/s (medians of --rounds), B/A (target >= 0.90), recorder overhead 1 - B/C
(target <= 5%), A/D (how far a Python generator is from the machine's limit). The
emulator is the same for all, so the ratios are about the generators.

Usage: python bench/generator.py [--users 50] [--seconds 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.process import EmulatorProcess  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-password-1"
HUGE = {"limits": {"device.sendState": {"count": 1_000_000_000, "window": 1.0},
                   "device.setConnectionStatus": {"count": 1_000_000_000, "window": 1.0}}}


def pin(cpu: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})
    return apply


def scenario(folder: Path, url: str, users: int, seconds: int) -> Path:
    data = {
        "name": "generator-bench", "run_tag": "genbench",
        "target": {"kind": "live", "url": url, "auth": "user"},
        "duration": f"{seconds}s", "ramp_up": 1000,
        "fleet": {"classes": [{"name": "d", "count": users, "report_interval": "1ms", "jitter": 0,
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "pacing": {"throttle": "off"},
        "criteria": {"max_error_rate": None, "max_throttled_rate": None, "lost_writes": None,
                     "conformance_findings": None},
    }
    path = folder / "generator-bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def device_targets(url: str, users: int, folder: Path) -> Path:
    """Provision the same devices the harness will use (run tag genbench) and mint a token each."""
    from harness.fleet import Secret, plan_devices
    from harness.provision import Login, provision
    from harness.scenario import load_scenario

    specs = plan_devices(load_scenario(scenario(folder, url, users, 1)))
    fleet = provision(url, Login(email=EMAIL, password=Secret(PASSWORD)), "genbench", "bench", specs)
    targets = []
    with httpx.Client(base_url=url) as c:
        for d in fleet.devices:
            tok = c.post("/auth/device", json={"deviceId": d.id, "key": fleet.access_key,
                                               "secret": str(fleet.access_secret)}).json()["token"]
            targets.append([f"/applications/{fleet.application_id}/devices/{d.id}/state", tok])
    path = folder / "targets.json"
    path.write_text(json.dumps(targets))
    return path


def run_bare(url: str, targets: Path, users: int, seconds: int) -> float:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "bare_locustfile.py"), "--headless",
           "-u", str(users), "-r", "1000", "-t", f"{seconds}s", "--host", url, "--json", "--only-summary",
           "--loglevel", "ERROR"]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(0), cwd=ROOT,
                         env=dict(os.environ, BENCH_TARGETS=str(targets)), check=True).stdout
    stats = json.loads(out[out.index("["):])
    entry = next(e for e in stats if e["name"] == "device.sendState")
    return entry["num_requests"] / (entry["last_request_timestamp"] - entry["start_time"])


def run_harness(url: str, scen: Path, seconds: int, folder: Path, record: bool) -> float:
    reports = Path(tempfile.mkdtemp(dir=folder))
    cmd = [sys.executable, "-m", "harness.cli", "run", str(scen), "--headless", "--yes",
           "--allow-exceeding-live-limits", "--reports-dir", str(reports)]
    if not record:
        cmd.append("--no-record")
    env = dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD)
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(0), cwd=ROOT, env=env)
    run_dir = next(p for p in reports.iterdir() if p.is_dir())
    with open(run_dir / "locust_stats.csv") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    if "device.sendState" not in rows:
        raise SystemExit(f"harness run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return float(rows["device.sendState"]["rps"])


def run_wrk(url: str, targets: Path, users: int, seconds: int, folder: Path) -> float:
    lines = folder / "targets.txt"
    lines.write_text("".join(f"{p} {t}\n" for p, t in json.loads(targets.read_text())))
    script = folder / "rotate.lua"
    script.write_text(f'''
local lines = {{}}
local i = 0
init = function(args)
  for line in io.lines("{lines}") do lines[#lines + 1] = line end
  i = math.random(#lines)
end
request = function()
  i = i % #lines + 1
  local path, token = lines[i]:match("([^ ]+) ([^ ]+)")
  return wrk.format("POST", path, {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}},
                    '{{"time": 1800000000000, "data": {{"v": 0.5}}}}')
end
''')
    out = subprocess.run(["wrk", "-t1", f"-c{users}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, preexec_fn=pin(0), check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50, help="concurrent users / connections (default: %(default)s)")
    ap.add_argument("--seconds", type=int, default=12, help="length of each run (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each generator; medians are reported")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="genbench-"))
    limits = folder / "huge.yaml"
    limits.write_text(yaml.safe_dump(HUGE))
    with EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(limits), quiet=True) as emu:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(emu.proc.pid, {1})
        scen = scenario(folder, emu.url, args.users, args.seconds)
        targets = device_targets(emu.url, args.users, folder)
        results: dict[str, list[float]] = {"bare": [], "harness": [], "harness_no_record": [], "wrk": []}
        for r in range(args.rounds):
            results["bare"].append(run_bare(emu.url, targets, args.users, args.seconds))
            results["harness"].append(run_harness(emu.url, scen, args.seconds, folder, record=True))
            results["harness_no_record"].append(run_harness(emu.url, scen, args.seconds, folder, record=False))
            results["wrk"].append(run_wrk(emu.url, targets, args.users, args.seconds, folder))
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()), flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nmedians over {args.rounds} rounds, req/s (generator on CPU 0, emulator on CPU 1, {args.users} users):")
    for k, v in med.items():
        print(f"  {k:18} {v:10,.0f}")
    print(f"  harness / bare Locust           {med['harness'] / med['bare']:.3f}   (target >= 0.90)")
    print(f"  recorder overhead 1 - B/C       {1 - med['harness'] / med['harness_no_record']:+.3f}   (target <= 0.05)")
    print(f"  bare Locust / wrk               {med['bare'] / med['wrk']:.3f}")


if __name__ == "__main__":
    main()
