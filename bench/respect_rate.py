"""Benchmark: how close respect mode runs to the documented rate, and that it draws no 429.

Starts the emulator (documented limits: 30 state calls per device per 15 s, sliding window)
pinned to CPU 1, then runs the harness headless on CPU 0 in respect mode with devices asking
for twice their limit (a report every 250 ms, no jitter) for --seconds. From the samples,
per device, over the steady state (from one window after the first send to one window
before the last, so the start-up and the stop are left out):

- accepted state calls per 15 s, as a fraction of the documented 30 (mean over the steady
  span; target >= 0.98), median and min over devices, and the least any aligned 15 s window
  of any device held;
- the same rate measured finer, from the time 30 consecutive accepted calls take (the ledger
  admits a call W + EPSILON after the answer of the one whose place it takes, so a device runs
  at 30 per (15 s + one latency)): 15 s / mean(t[i+30] - t[i]), median and min over devices;
- 429 answers (target 0) and sends dropped by the ledger (the half the devices asked for
  beyond their limit).

With --runs N it repeats the whole thing and prints the median of the runs.

Usage: python bench/respect_rate.py [--devices 10] [--seconds 180] [--interval-ms 250] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.process import EmulatorProcess  # noqa: E402
from harness.record import read_samples  # noqa: E402

EMAIL, PASSWORD = "respect-bench@example.com", "respect-bench-password-1"
WINDOW, COUNT = 15.0, 30


def pin(cpu: int) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def one_run(url: str, folder: Path, devices: int, seconds: int, interval_ms: int, index: int) -> dict:
    scenario = folder / f"respect-{index}.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "respect-rate", "duration": f"{seconds}s", "ramp_up": 1000,
        "target": {"kind": "live", "url": url, "auth": "user"},
        "fleet": {"classes": [{"name": "fast", "count": devices, "report_interval": f"{interval_ms}ms", "jitter": 0,
                               "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "pacing": {"throttle": "respect"},
    }))
    reports = folder / f"reports-{index}"
    env = dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "--headless", "--yes",
                           "--reports-dir", str(reports)], cwd=ROOT, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: pin(0))
    run_dir = next(p for p in reports.iterdir() if p.is_dir())
    s = read_samples(run_dir)
    state = s.op == s.op_names.index("device.sendState")
    ok = state & (s.status == 200)
    first, last = float(s.sent[state].min()), float(s.sent[state].max())
    lo, hi = first + WINDOW, last - WINDOW
    windows = int((hi - lo) // WINDOW)
    hi = lo + windows * WINDOW
    fractions, fine, least = [], [], COUNT
    for key in np.unique(s.key[state]):
        sent = s.sent[ok & (s.key == key)]
        steady = sent[(sent >= lo) & (sent < hi)]
        fractions.append(len(steady) / windows / COUNT)
        fine.append(WINDOW / float(np.mean(steady[COUNT:] - steady[:-COUNT])))
        least = min(least, int(np.bincount(((steady - lo) // WINDOW).astype(int), minlength=windows).min()))
    info = json.loads((run_dir / "run.json").read_text())
    lat = s.latency[ok] * 1000
    return {"code": proc.returncode, "devices": len(fractions), "median": statistics.median(fractions),
            "min": min(fractions), "least_window": least, "windows": windows,
            "fine_median": statistics.median(fine), "fine_min": min(fine),
            "n429": int((s.status == 429).sum()), "errors": int(((s.status == 0) | (s.status >= 500)).sum()),
            "accepted": int(ok.sum()), "dropped": int(info.get("dropped_sends", 0)),
            "latency_p50_ms": float(np.median(lat)), "tail": (proc.stdout + proc.stderr)[-1500:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=180, help="length of each run (default 3 min)")
    ap.add_argument("--interval-ms", type=int, default=250, help="each device's report interval (limit: 500)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="respect-rate-"))
    results = []
    with EmulatorProcess(email=EMAIL, password=PASSWORD, quiet=True) as emu:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(emu.proc.pid, {1})
        for i in range(args.runs):
            r = one_run(emu.url, folder, args.devices, args.seconds, args.interval_ms, i)
            results.append(r)
            print(f"run {i + 1}: exit {r['code']}, {r['devices']} devices, {r['windows']} steady windows: "
                  f"accepted per device per 15 s = {r['median']:.4f} (median) / {r['min']:.4f} (min) of {COUNT}; "
                  f"from 30-call spans {r['fine_median']:.4f} / {r['fine_min']:.4f}; "
                  f"least in one window {r['least_window']}; 429s {r['n429']}; errors {r['errors']}; "
                  f"accepted {r['accepted']:,}; dropped {r['dropped']:,}; response p50 {r['latency_p50_ms']:.2f} ms",
                  flush=True)
            if r["code"] not in (0, 1):
                print(r["tail"])
    med = {k: statistics.median(r[k] for r in results)
           for k in ("median", "min", "fine_median", "fine_min", "n429", "least_window")}
    print(f"\nmedian of {len(results)} runs: {med['median']:.4f} (median over devices), {med['min']:.4f} (min) "
          f"of the documented {COUNT} per {WINDOW:g} s (target >= 0.98); from 30-call spans "
          f"{med['fine_median']:.4f} / {med['fine_min']:.4f}; 429s {med['n429']:g} (target 0); "
          f"max 429s in a run {max(r['n429'] for r in results)}")


if __name__ == "__main__":
    main()
