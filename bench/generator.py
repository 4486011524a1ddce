"""Benchmark: how much of a generator core the harness gets, against bare Locust and wrk.

One emulator (limits raised so nothing throttles) is pinned to CPU 1; every generator
is pinned to CPU 0 and sends the same request (a device's Send State with its device
token) as fast as it can, one after the other, interleaved (A B C D, A B C D, ...):

  A  bare Locust: a FastHttpUser posting in a loop, no scheduler, no recorder
  A' A without the cookie jar, as the harness's users run (the Losant API sets no
     cookies): B/A' is the cost of the harness's own per-send Python alone
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
import time
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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _locust(cmd: list[str], env: dict[str, str], folder: Path, seconds: int) -> dict[str, float]:
    """Run one Locust process pinned to CPU 0 with a per-second stats history, sampling its CPU
    time each second, and measure the steady window (from 3 s in to 1 s before the end):
    requests/s and generator CPU microseconds per request. CPU per request is the robust
    figure on a shared machine: time stolen by other processes does not count in it."""
    prefix = Path(tempfile.mkdtemp(dir=folder)) / "s"
    proc = subprocess.Popen(cmd + ["--csv", str(prefix), "--csv-full-history"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=pin(0))
    cpu: list[tuple[float, float]] = []
    while proc.poll() is None:
        try:
            cpu.append((time.time(), _cpu_seconds(proc.pid)))
        except (OSError, IndexError):
            pass
        time.sleep(0.25)
    err = proc.stderr.read() if proc.stderr else ""
    history = prefix.with_name("s_stats_history.csv")
    rows = [r for r in csv.DictReader(open(history)) if r["Name"] == "Aggregated"] if history.exists() else []
    if len(rows) < 4:
        raise SystemExit(f"run failed ({proc.returncode}):\n{err[-2000:]}")
    points = [(float(r["Timestamp"]), float(r["Total Request Count"])) for r in rows]
    t_first = points[0][0]
    steady = [p for p in points if t_first + 3 <= p[0] <= points[-1][0] - 1]
    (t0, n0), (t1, n1) = steady[0], steady[-1]

    def cpu_at(t: float) -> float:
        return min(cpu, key=lambda c: abs(c[0] - t))[1]

    requests = n1 - n0
    return {"rps": requests / (t1 - t0), "cpu_us": (cpu_at(t1) - cpu_at(t0)) / requests * 1e6}


def run_bare(url: str, targets: Path, users: int, seconds: int, folder: Path,
             cookies: bool = True) -> dict[str, float]:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "bare_locustfile.py"), "--headless",
           "-u", str(users), "-r", "1000", "-t", f"{seconds}s", "--host", url, "--only-summary", "--loglevel", "ERROR"]
    env = dict(os.environ, BENCH_TARGETS=str(targets))
    if not cookies:
        env["BENCH_NO_COOKIES"] = "1"
    return _locust(cmd, env, folder, seconds)


def run_harness(url: str, scen: Path, seconds: int, folder: Path, record: bool) -> dict[str, float]:
    """The harness through Locust's own command line with the harness's locustfile, which is
    exactly what `losant-load run` hands over to (so the stats history can be switched on)."""
    reports = Path(tempfile.mkdtemp(dir=folder))
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "harness" / "locust_entry.py"), "--headless",
           "--scenario", str(scen), "--yes", "--allow-exceeding-live-limits", "--reports-dir", str(reports),
           "-t", f"{seconds}s", "--only-summary", "--loglevel", "ERROR"]
    if not record:
        cmd.append("--no-record")
    return _locust(cmd, dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD), folder, seconds)


def run_workers(url: str, scen: Path, seconds: int, folder: Path, workers: int) -> float:
    """The harness as a Locust master with N local worker processes (not pinned: they need the cores)."""
    reports = Path(tempfile.mkdtemp(dir=folder))
    prefix = Path(tempfile.mkdtemp(dir=folder)) / "s"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "harness" / "locust_entry.py"), "--headless",
           "--scenario", str(scen), "--yes", "--allow-exceeding-live-limits", "--reports-dir", str(reports),
           "-t", f"{seconds}s", "--only-summary", "--loglevel", "ERROR", "--processes", str(workers),
           "--csv", str(prefix), "--csv-full-history"]
    subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD),
                   capture_output=True, text=True)
    rows = [r for r in csv.DictReader(open(prefix.with_name("s_stats_history.csv"))) if r["Name"] == "Aggregated"]
    points = [(float(r["Timestamp"]), float(r["Total Request Count"])) for r in rows]
    steady = [p for p in points if points[0][0] + 3 <= p[0] <= points[-1][0] - 1]
    return (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])


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
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "cpu_us": float("nan")}  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50, help="concurrent users / connections (default: %(default)s)")
    ap.add_argument("--seconds", type=int, default=12, help="length of each run (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each generator; medians are reported")
    ap.add_argument("--no-scaling", action="store_true", help="skip the 1 vs 2 worker processes runs")
    ap.add_argument("--recorder-only", action="store_true",
                    help="only the recorder A/B: the harness with and without the recorder, alternating")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="genbench-"))
    limits = folder / "huge.yaml"
    limits.write_text(yaml.safe_dump(HUGE))
    with EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(limits), quiet=True) as emu:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(emu.proc.pid, {1})
        scen = scenario(folder, emu.url, args.users, args.seconds)
        targets = device_targets(emu.url, args.users, folder)
        if args.recorder_only:
            ab: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
            for r in range(args.rounds):
                ab["with"].append(run_harness(emu.url, scen, args.seconds, folder, record=True))
                ab["without"].append(run_harness(emu.url, scen, args.seconds, folder, record=False))
                print(f"round {r + 1}: with {ab['with'][-1]['rps']:,.0f}/s {ab['with'][-1]['cpu_us']:.1f}us  "
                      f"without {ab['without'][-1]['rps']:,.0f}/s {ab['without'][-1]['cpu_us']:.1f}us", flush=True)
            w = statistics.median(x["rps"] for x in ab["with"])
            wo = statistics.median(x["rps"] for x in ab["without"])
            cw = statistics.median(x["cpu_us"] for x in ab["with"])
            cwo = statistics.median(x["cpu_us"] for x in ab["without"])
            pairs = sorted(1 - a["rps"] / b["rps"] for a, b in zip(ab["with"], ab["without"]))
            print(f"\nrecorder overhead over {args.rounds} alternating pairs: req/s {w:,.0f} with, {wo:,.0f} without "
                  f"-> {1 - w / wo:+.3f} (median of pairs {statistics.median(pairs):+.3f}; target <= 0.05); "
                  f"CPU per request {cw:.1f} vs {cwo:.1f} us -> {cw / cwo - 1:+.3f}")
            return
        results: dict[str, list[dict[str, float]]] = {"bare": [], "bare_no_cookies": [], "harness": [],
                                                      "harness_no_record": [], "wrk": []}
        for r in range(args.rounds):
            results["bare"].append(run_bare(emu.url, targets, args.users, args.seconds, folder))
            results["bare_no_cookies"].append(run_bare(emu.url, targets, args.users, args.seconds, folder,
                                                       cookies=False))
            results["harness"].append(run_harness(emu.url, scen, args.seconds, folder, record=True))
            results["harness_no_record"].append(run_harness(emu.url, scen, args.seconds, folder, record=False))
            results["wrk"].append(run_wrk(emu.url, targets, args.users, args.seconds, folder))
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]['rps']:,.0f}/s {v[-1]['cpu_us']:.0f}us"
                                                 for k, v in results.items()), flush=True)
        scaling: dict[int, list[float]] = {1: [], 2: []}
        if not args.no_scaling:
            # the emulator stays on CPU 1; with 2 workers the generator side has to share it
            for _ in range(max(1, args.rounds - 1)):
                for n in (1, 2):
                    scaling[n].append(run_workers(emu.url, scen, args.seconds, folder, n))
            print("scaling: " + "  ".join(f"{n} worker(s) {statistics.median(v):,.0f} req/s" for n, v in scaling.items()
                                          if v), flush=True)
    rps = {k: statistics.median(x["rps"] for x in v) for k, v in results.items()}
    cpu = {k: statistics.median(x["cpu_us"] for x in v) for k, v in results.items()}
    print(f"\nmedians over {args.rounds} rounds (generator on CPU 0, emulator on CPU 1, {args.users} users, "
          f"steady window of each {args.seconds} s run):")
    for k in results:
        print(f"  {k:18} {rps[k]:10,.0f} req/s   {cpu[k]:8.1f} generator CPU us/request")
    print(f"  harness / bare Locust, req/s            {rps['harness'] / rps['bare']:.3f}   (target >= 0.90)")
    print(f"  bare / harness, CPU per request         {cpu['bare'] / cpu['harness']:.3f}   (the same ratio, noise-robust)")
    print(f"  harness / bare Locust without cookie jar {rps['harness'] / rps['bare_no_cookies']:.3f}   "
          f"(CPU {cpu['bare_no_cookies'] / cpu['harness']:.3f}; the harness's own per-send Python)")
    print(f"  recorder overhead, req/s 1 - B/C        {1 - rps['harness'] / rps['harness_no_record']:+.3f}   (target <= 0.05)")
    print(f"  recorder overhead, CPU B/C - 1          {cpu['harness'] / cpu['harness_no_record'] - 1:+.3f}")
    print(f"  bare Locust / wrk, req/s                {rps['bare'] / rps['wrk']:.3f}")
    if scaling[1]:
        one, two = statistics.median(scaling[1]), statistics.median(scaling[2])
        print(f"  master + 1 worker: {one:,.0f} req/s; master + 2 workers: {two:,.0f} req/s ({two / one:.2f}x; "
              f"2 cores in all, the emulator on one of them)")


if __name__ == "__main__":
    main()
