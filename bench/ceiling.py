"""Benchmark: the emulator's ceiling under a fleet: the most devices it serves with p99 < 50 ms.

The emulator (file database by default, ``--scratch`` for its default scratch file) is
pinned to CPU 1; the fleet is bench/ceiling_generator.py pinned to CPU 0: one keep-alive
connection per device, opened at ``--ramp`` per second, each device reporting once per
``--interval`` on an open-loop timeline (jittered x U(0.5, 1.5)), measured for
``--seconds`` once every device has reported. Each fleet size runs ``--repeats`` times
(a new generator, new connections, the same emulator); its figures are the medians.

Per run it records, over the measured window only: req/s, latency p50/p99 from the send
and p99 from the planned time, non-2xx answers, and the evidence about who is the
bottleneck: the generator's own lateness (send - plan) and CPU share of its core, the
emulator's CPU share of its core and the share of the window its event-loop thread spent
runnable but waiting for a CPU (``/proc/PID/schedstat``: other processes on its core; on a
machine shared with other work that is what a latency figure is made of, not the emulator), and
the share of the window the hypervisor took its virtual CPU away (``/proc/stat`` steal: the
machine is a VM, and a stolen stretch looks like the emulator's own work to the probe below).
The emulator runs under bench/emulator_probe.py, which tells the stalls apart: the times the
loop was late by 20 ms or more, how many of them were the emulator's own work (its loop
thread ran for most of the lag), the garbage collections' CPU time, and the file database's
WAL resets with the longest time a commit waited for one.

Steps: ``--fleets 2000,5000,...`` as given, or doubling from ``--start`` (the last step
``--max``) until the median p99 reaches 50 ms, then two bisection steps. The ceiling is the largest fleet whose median
p99 is under 50 ms with no error. ``--nice N`` runs emulator and generator at that
priority (negative needs root): on a shared machine it keeps other work's time slices out
of the figures.

Usage: python bench/ceiling.py [--interval 1.0] [--seconds 10] [--repeats 3] [--start 2000]
[--max 16000] [--fleets 5000,10000,15000] [--scratch] [--nice -10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.process import EmulatorProcess  # noqa: E402

EMAIL, PASSWORD = "ceiling@example.com", "ceiling-password-1"
EMULATOR_CPU, GENERATOR_CPU = 1, 0


def provision(url: str, n: int, folder: Path) -> Path:
    from harness.fleet import Secret, plan_devices
    from harness.provision import Login
    from harness.provision import provision as make
    from harness.scenario import parse_scenario

    sc = parse_scenario({"name": "ceiling", "run_tag": "ceiling", "fleet": {"classes": [
        {"name": "d", "count": n, "report_interval": "1s", "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]}},
        "ceiling.yaml")
    fleet = make(url, Login(email=EMAIL, password=Secret(PASSWORD)), "ceiling", "bench", plan_devices(sc))
    lines = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for d in fleet.devices:
            tok = c.post("/auth/device", json={"deviceId": d.id, "key": fleet.access_key,
                                               "secret": str(fleet.access_secret)}).json()["token"]
            lines.append(f"/applications/{fleet.application_id}/devices/{d.id}/state {tok}")
    path = folder / "devices.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_s(pid: int) -> float:
    """Time the process's main thread (the event loop) spent runnable but not running."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _stolen_s(cpu: int) -> float:
    """Time the hypervisor ran something else on this virtual CPU (/proc/stat "steal"): the emulator's
    thread counts as running meanwhile, so a stall made of it looks like the emulator's own work."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                return int(line.split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return float("nan")


def _pin(cpu: int, nice: int) -> Callable[[], None]:
    def apply() -> None:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})
        if nice:
            os.nice(nice)
    return apply


class ProbedEmulator(EmulatorProcess):
    """The emulator started through bench/emulator_probe.py (its stall probe), otherwise the same."""

    def __init__(self, probe_file: Path, **options: Any) -> None:
        super().__init__(**options)
        self.probe_file = probe_file

    def argv(self) -> list[str]:
        argv = super().argv()  # [python, -m, harness.emulator, options...]
        return [argv[0], str(ROOT / "bench" / "emulator_probe.py"), *argv[3:]]

    def start(self) -> ProbedEmulator:
        os.environ["EMULATOR_PROBE_FILE"] = str(self.probe_file)
        super().start()
        return self

    def stalls(self, since: float, until: float) -> dict[str, Any]:
        """The probe's events between two wall times: garbage collections and loop lag, split by whose time it was."""
        want = Path(f"{self.probe_file}.want")
        want.touch()
        deadline = time.monotonic() + 10
        while want.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            data = json.loads(self.probe_file.read_text())
        except (OSError, ValueError):
            return {}
        events = [e for e in data["events"] if since <= e[0] <= until]
        commits = [e[2] for e in events if e[1] == "batches"]
        gcs = [e for e in events if e[1].startswith("gc")]
        lags = [e for e in events if e[1] == "lag"]
        own = [e for e in lags if e[3] >= 0.5 * e[2]]  # the loop thread ran for most of the lag: its own work
        return {"gc_count": len(gcs), "gc_cpu_max_ms": max((e[3] for e in gcs), default=0.0),
                "gc_cpu_total_ms": sum(e[3] for e in gcs), "gc_wall_max_ms": max((e[2] for e in gcs), default=0.0),
                "lag_over_20ms": sum(e[2] >= 20 for e in lags), "lag_max_ms": max((e[2] for e in lags), default=0.0),
                "own_stalls_over_20ms": sum(e[2] >= 20 for e in own), "own_stall_max_ms": max((e[2] for e in own), default=0.0),
                "commits": (commits[-1] - commits[0]) if len(commits) > 1 else float("nan"),
                "wal_resets": sum(e[3] for e in events if e[1] == "wal"),
                "wal_hold_max_ms": max((e[2] for e in events if e[1] == "wal"), default=0.0)}


def generate(url: str, devices: Path, n: int, args: argparse.Namespace, emu: ProbedEmulator) -> dict[str, Any]:
    """One generator run; the emulator's CPU and run-queue wait are sampled at its window marks."""
    cmd = [sys.executable, str(ROOT / "bench" / "ceiling_generator.py"), url, str(devices), str(n),
           "--interval", str(args.interval), "--seconds", str(args.seconds), "--ramp", str(args.ramp)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=_pin(GENERATOR_CPU, args.nice))
    assert proc.stdout is not None
    assert emu.proc is not None
    emulator_pid = emu.proc.pid
    marks: dict[str, tuple[float, float, float]] = {}
    result: dict[str, Any] = {}
    for line in proc.stdout:
        line = line.strip()
        if line in ("WINDOW", "END"):
            marks[line] = (_proc_cpu_s(emulator_pid), _runqueue_wait_s(emulator_pid), time.time(), _stolen_s(EMULATOR_CPU))
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait()
    if not result:
        raise SystemExit(f"the generator failed (exit {proc.returncode}) at {n} devices")
    if "WINDOW" in marks and "END" in marks:
        result["emu_cpu_share"] = (marks["END"][0] - marks["WINDOW"][0]) / args.seconds
        result["emu_runqueue_share"] = (marks["END"][1] - marks["WINDOW"][1]) / args.seconds
        result["emu_cpu_stolen_share"] = (marks["END"][3] - marks["WINDOW"][3]) / args.seconds
        result["emu_cpu_us_per_req"] = (marks["END"][0] - marks["WINDOW"][0]) / max(result["requests"], 1) * 1e6
        result.update(emu.stalls(marks["WINDOW"][2], marks["END"][2]))
        result["rows_per_commit"] = result["requests"] / result["commits"] if result.get("commits") else float("nan")
    return result


def step(url: str, devices: Path, n: int, args: argparse.Namespace, emu: ProbedEmulator) -> dict[str, Any]:
    runs = [generate(url, devices, n, args, emu) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]
           if isinstance(runs[0][k], (int, float)) and all(k in r for r in runs)}
    med["p99_runs"] = [round(r["p99"], 2) for r in runs]
    med["bad"] = sum(r["errors"] + r["connect_errors"] + r["lost"] for r in runs)
    print(f"{n:>6} devices x 1/{args.interval:g}s: {med['rps']:8,.0f} req/s  p50 {med['p50']:6.2f} ms  "
          f"p99 {med['p99']:7.2f} ms {med['p99_runs']}  from plan {med['p99_from_plan']:7.2f}  errors {med['bad']}  | "
          f"generator late p99 {med['gen_lateness_p99']:5.2f} ms, CPU {med['gen_cpu_share']:4.0%}  | "
          f"emulator CPU {med.get('emu_cpu_share', float('nan')):4.0%} ({med.get('emu_cpu_us_per_req', float('nan')):.0f} us/req), "
          f"waiting for CPU {med.get('emu_runqueue_share', float('nan')):4.0%}, its CPU stolen by the host "
          f"{med.get('emu_cpu_stolen_share', float('nan')):4.0%}", flush=True)
    if "gc_count" in med and "wal_resets" in med:
        worst = max(r.get("own_stall_max_ms", 0.0) for r in runs)
        print(f"{'':>8}loop late >= 20 ms: {med['lag_over_20ms']:.0f} times (max {med['lag_max_ms']:.0f} ms); of its own "
              f"work: {med['own_stalls_over_20ms']:.0f} (worst of the runs {worst:.0f} ms)  | GC: {med['gc_count']:.0f} "
              f"collections, max {med['gc_cpu_max_ms']:.1f} ms CPU  | WAL resets {med['wal_resets']:.0f}, "
              f"commit lock held for one up to {max(r.get('wal_hold_max_ms', 0.0) for r in runs):.0f} ms "
              f"(a batch waits 20 ms at most)  | {med.get('rows_per_commit', float('nan')):.1f} requests per group commit",
              flush=True)
    return {"devices": n, "median": med, "runs": runs}


def held(result: dict[str, Any]) -> bool:
    return bool(result["median"]["p99"] < 50 and result["median"]["bad"] == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between one device's reports")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured window of each run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per fleet size (medians)")
    ap.add_argument("--ramp", type=int, default=2000, help="connections opened per second")
    ap.add_argument("--start", type=int, default=2000)
    ap.add_argument("--max", type=int, default=16000,
                    help="largest fleet (a socket per device on each side: keep it under the open-file limits)")
    ap.add_argument("--fleets", default="", help="comma-separated fleet sizes to run instead of doubling")
    ap.add_argument("--scratch", action="store_true", help="the emulator's default scratch database instead of a file")
    ap.add_argument("--nice", type=int, default=0, help="priority of emulator and generator (negative needs root)")
    args = ap.parse_args()
    fleets = [int(x) for x in args.fleets.split(",") if x.strip()]
    top = max(fleets) if fleets else args.max
    folder = Path(tempfile.mkdtemp(prefix="ceiling-"))
    limits = folder / "limits.yaml"  # one report a second is over the platform's 30 per 15 s: raise it out of the way
    limits.write_text(yaml.safe_dump({"limits": {"device.sendState": {"count": 1_000_000, "window": 1.0}}}))
    results: list[dict[str, Any]] = []
    db = None if args.scratch else str(folder / "e.db")
    with ProbedEmulator(folder / "probe.json", email=EMAIL, password=PASSWORD, quiet=True, db=db, limits=str(limits)) as emu:
        assert emu.proc is not None
        pid = emu.proc.pid
        devices = provision(emu.url, top, folder)
        for tid in os.listdir(f"/proc/{pid}/task"):  # every thread (the WAL checkpointer too) on the emulator's core
            if (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(int(tid), {EMULATOR_CPU})
            if args.nice:
                os.setpriority(os.PRIO_PROCESS, int(tid), args.nice)
        print(f"emulator ({'scratch' if args.scratch else 'file'} database) on CPU {EMULATOR_CPU}, generator on CPU "
              f"{GENERATOR_CPU}, nice {args.nice}, {top:,} devices provisioned", flush=True)
        if fleets:
            for n in fleets:
                results.append(step(emu.url, devices, n, args, emu))
        else:
            n = args.start
            while True:
                results.append(step(emu.url, devices, n, args, emu))
                if not held(results[-1]) or n >= args.max:
                    break
                n = min(2 * n, args.max)
            if not held(results[-1]):
                lo, hi = (results[-2]["devices"] if len(results) > 1 else 0), results[-1]["devices"]
                for _ in range(2):
                    if hi - lo < 2:
                        break
                    mid = (lo + hi) // 2
                    results.append(step(emu.url, devices, mid, args, emu))
                    lo, hi = (mid, hi) if held(results[-1]) else (lo, mid)
    ok = [r["devices"] for r in results if held(r)]
    print(f"\nceiling: {max(ok) if ok else 0:,} devices reporting every {args.interval:g} s with median p99 < 50 ms "
          f"(largest step tried: {max(r['devices'] for r in results):,})")
    print(json.dumps({"interval": args.interval, "seconds": args.seconds, "scratch": args.scratch, "nice": args.nice,
                      "steps": [{"devices": r["devices"], "median": r["median"]} for r in results]}))


if __name__ == "__main__":
    main()
