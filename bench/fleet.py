"""Benchmark: a large multiplexed fleet on one generator core against the emulator on the other.

Provisions N devices (default 100,000) through the API, then runs the harness in fleet
mode (one Locust user per 2,000 devices over one shared connection pool), every device
reporting once per --interval, for --seconds. The emulator is pinned to CPU 1 and the
generator to CPU 0. Prints:

- scheduler lateness (actual - planned send) p50/p99/max over the whole run and over the
  steady state (after the first interval, when every device has connected once: the
  first interval also carries one /auth/device per device),
- generator memory (peak RSS) and memory per simulated device (difference between this
  run and one with --base devices, divided by the difference in devices),
- generator CPU seconds per 1,000 devices per minute of simulated time,
- emulator RSS at the start and end of the load (bounded memory),
- requests, errors, and the corrected latency p99.

Usage: python bench/fleet.py [--devices 100000] [--base 10000] [--interval 60] [--seconds 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.process import EmulatorProcess  # noqa: E402

EMAIL, PASSWORD = "fleet@example.com", "fleet-password-1"


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def scenario(folder: Path, url: str, devices: int, interval: int, seconds: int, tag: str) -> Path:
    data = {
        "name": f"fleet-{devices}", "run_tag": tag,
        "target": {"kind": "live", "url": url, "auth": "user"},
        "duration": f"{seconds}s", "ramp_up": 1000,
        "fleet": {"mode": "multiplexed", "connections": 64, "classes": [{
            "name": "meters", "count": devices, "report_interval": f"{interval}s", "jitter": 0.1,
            "attributes": {"kwh": {"type": "random_walk", "start": 100, "step": 0.5, "min": 0, "max": 1000}}}]},
        "pacing": {"throttle": "respect"},
        "criteria": {"max_error_rate": 0.01},
    }
    path = folder / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def provision_fleet(url: str, path: Path) -> float:
    from harness.fleet import Secret, plan_devices
    from harness.provision import Login, provision, release_access
    from harness.scenario import load_scenario

    t0 = time.time()
    sc = load_scenario(path)
    fleet = provision(url, Login(email=EMAIL, password=Secret(PASSWORD)), sc.run_tag, "prep", plan_devices(sc))
    release_access(fleet)
    return time.time() - t0


def run(url: str, path: Path, folder: Path, emulator_pid: int) -> dict:
    reports = Path(tempfile.mkdtemp(dir=folder))
    env = dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path), "--headless", "--yes",
                             "--reports-dir", str(reports)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}) if (os.cpu_count() or 1) > 1 else None)
    peak = {"gen": 0.0, "emu": []}

    def watch() -> None:
        while proc.poll() is None:
            peak["gen"] = max(peak["gen"], rss_mb(proc.pid))
            peak["emu"].append(rss_mb(emulator_pid))
            time.sleep(1.0)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out, _ = proc.communicate()
    t.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_dir = next(p for p in reports.iterdir() if p.is_dir())
    from harness.record import read_samples

    s = read_samples(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"samples": s, "summary": summary, "peak_rss_mb": peak["gen"], "emu_rss": peak["emu"],
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), "code": proc.returncode,
            "tail": out[-1500:]}


def lateness(s, since: float) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    mask = s.planned >= since
    late = (s.sent - s.planned)[mask] * 1000
    if not len(late):
        return (float("nan"),) * 3
    return (float(np.quantile(late, 0.5, method="inverted_cdf")), float(np.quantile(late, 0.99, method="inverted_cdf")),
            float(late.max()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--base", type=int, default=10_000, help="smaller fleet for the memory-per-device slope")
    ap.add_argument("--interval", type=int, default=60, help="seconds between a device's reports")
    ap.add_argument("--seconds", type=int, default=150, help="length of each run")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleetbench-"))
    # a file database: the emulator keeps states on disk, so its memory stays bounded
    with EmulatorProcess(email=EMAIL, password=PASSWORD, quiet=True, db=str(folder / "emulator.db")) as emu:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(emu.proc.pid, {1})
        results = {}
        for n in (args.base, args.devices):
            path = scenario(folder, emu.url, n, args.interval, args.seconds, f"fb{n}")
            prov = provision_fleet(emu.url, path)
            print(f"provisioned {n:,} devices in {prov:.0f} s", flush=True)
            results[n] = r = run(emu.url, path, folder, emu.proc.pid)
            s = r["samples"]
            t0 = float(s.planned.min())
            whole, steady = lateness(s, t0), lateness(s, t0 + args.interval)
            state = s.op == s.op_names.index("device.sendState")
            print(f"\n{n:,} devices, every {args.interval} s, {args.seconds} s (exit {r['code']}):")
            print(f"  requests {len(s.op):,} (states {int(state.sum()):,}), errors {int((s.error > 0).sum()):,}")
            print(f"  lateness ms whole run   p50 {whole[0]:.2f}  p99 {whole[1]:.2f}  max {whole[2]:.1f}")
            print(f"  lateness ms steady      p50 {steady[0]:.2f}  p99 {steady[1]:.2f}  max {steady[2]:.1f}   (target p99 < 50)")
            print(f"  corrected latency p99   {r['summary']['overall']['corrected_latency_ms']['p99']:.1f} ms")
            print(f"  generator peak RSS {r['peak_rss_mb']:.0f} MB, CPU {r['cpu_s']:.0f} s "
                  f"= {r['cpu_s'] / (n / 1000) / (args.seconds / 60):.2f} CPU-s per 1,000 devices per minute")
            integ = r["summary"].get("integrity") or {}
            print(f"  integrity: {integ.get('statement', '?')}; read back in "
                  f"{(integ.get('reads') or {}).get('seconds', float('nan')):.1f} s")
            emu_rss = r["emu_rss"]
            if emu_rss:
                print(f"  emulator RSS start {emu_rss[0]:.0f} MB, max {max(emu_rss):.0f} MB, end {emu_rss[-1]:.0f} MB")
        big, small = results[args.devices], results[args.base]
        per = (big["peak_rss_mb"] - small["peak_rss_mb"]) * 1024 / (args.devices - args.base)
        print(f"\ngenerator memory per simulated device: {per:.2f} KB "
              f"(peak RSS difference between {args.devices:,} and {args.base:,} devices)")


if __name__ == "__main__":
    main()
