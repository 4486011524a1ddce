"""Benchmark: N MQTT devices from one generator process, against a bare paho-mqtt publishing loop.

One emulator with its broker (the new-connection limit raised so the fleet connects at once)
is pinned to CPU 1; each generator is pinned to CPU 0 and drives N devices publishing one
QoS 1 state a minute each (phases spread over the minute):

  H  the harness: `losant-load`'s Locust entry with an MQTT class (one paho client and one
     greenlet per device, the ledger in respect mode, the timeline, the recorder, the accepted
     log, 1 in 50 states checked over REST)
  P  bare paho-mqtt: the same paho clients driven by the same gevent readiness loop, a timer
     per device publishing, counting PUBACKs; no ledger, no timeline, no recorder

Figures, over the steady window (from 5 s after the last device connected to 2 s before the
end): the harness's lateness p99 (sent - planned of mqtt.publishState), generator CPU per
device (CPU seconds per device-minute) and memory per device (RSS growth from before the first
CONNECT to the steady window, divided by N), and acknowledged messages per generator
CPU-second for H and P (the ratio H/P, as bench/generator.py's for HTTP).

With ``--connect``: no steady window; per round every device connects at once from P (paho as
shipped), H and P' (paho connecting unbound, as the harness's client), and the time from the first
CONNECT to the last CONNACK and the CONNECT-to-CONNACK p50/p99 are printed (``--profile`` runs H
under py-spy, raw stacks in the run's folder).

Usage: python bench/mqtt_generator.py [--devices 2000] [--steady 70] [--rounds 3] [--connect [--profile]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EMAIL, PASSWORD = "bench@example.com", "bench-password-1"
FAST = {"limits": {"mqtt.newConnections": {"count": 1_000_000, "window": 1.0}}}
INTERVAL = 60.0


def pin(cpu: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})
    return apply


def _proc_figures(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def watch(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[tuple[float, float, float]], str]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pin(0))
    points: list[tuple[float, float, float]] = []
    while proc.poll() is None:
        try:
            points.append((time.time(), *_proc_figures(proc.pid)))
        except (OSError, IndexError):
            pass
        time.sleep(0.5)
    out, err = proc.communicate()
    return proc, points, out + err


def at(points: list[tuple[float, float, float]], t: float) -> tuple[float, float]:
    best = min(points, key=lambda p: abs(p[0] - t))
    return best[1], best[2]


def run_harness(url: str, mqtt_url: str, limits: Path, devices: int, steady: float, folder: Path,
                connect_only: bool = False, profile: bool = False) -> dict[str, float]:
    from harness.record import read_samples

    seconds = int(steady + 20 + devices / 200)  # connects, then the steady window
    folder.mkdir(parents=True, exist_ok=True)
    scen = folder / "mqtt-bench.yaml"
    scen.write_text(yaml.safe_dump({
        "name": "mqtt-generator-bench", "run_tag": "mqttbench",
        "target": {"kind": "live", "url": url, "auth": "user", "mqtt_url": mqtt_url},
        "duration": f"{seconds}s", "ramp_up": 1000,
        "fleet": {"classes": [{"name": "m", "count": devices, "transport": "mqtt", "report_interval": "60s",
                               "jitter": 0.1, "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
        "pacing": {"throttle": "respect"},
        "integrity": {"sample": 10},
        "criteria": {"max_error_rate": None, "max_throttled_rate": None, "lost_writes": None,
                     "conformance_findings": None},
    }))
    reports = folder / "reports"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "harness" / "locust_entry.py"), "--headless",
           "--scenario", str(scen), "--yes", "--allow-exceeding-live-limits", "--reports-dir", str(reports),
           "--limits", str(limits), "-t", f"{seconds}s", "--only-summary", "--loglevel", "ERROR"]
    if profile:
        cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "-r", "50", "-f", "raw",
               "-o", str(folder / "profile.txt"), "--", *cmd]
    proc, points, output = watch(cmd, dict(os.environ, LOSANT_EMAIL=EMAIL, LOSANT_PASSWORD=PASSWORD))
    runs = sorted(p for p in reports.iterdir() if p.is_dir()) if reports.exists() else []
    if not runs:
        raise SystemExit(f"harness run failed ({proc.returncode}):\n{output[-3000:]}")
    s = read_samples(runs[-1])
    connect = s.op == s.op_names.index("mqtt.connect")
    if connect_only:
        ok = connect & (s.status == 200)
        done = s.sent[ok] + s.latency[ok]
        return {"devices": devices, "connected": int(ok.sum()), "failures": int((connect & ~ok).sum()),
                "connect_s": float(done.max() - s.sent[connect].min()),
                "p50_ms": float(np.quantile(s.latency[ok], 0.5) * 1e3),
                "p99_ms": float(np.quantile(s.latency[ok], 0.99) * 1e3)}
    publish = (s.op == s.op_names.index("mqtt.publishState")) & (s.status == 200)
    first, connected = s.sent[connect].min(), (s.sent[connect] + s.latency[connect]).max()
    t0, t1 = connected + 5, s.sent[publish].max() - 2
    window = publish & (s.sent >= t0) & (s.sent <= t1)
    (cpu0, _), (cpu1, rss1) = at(points, t0), at(points, t1)
    _, rss_before = at(points, first - 0.5)
    acked = int(window.sum())
    lateness = (s.sent - s.planned)[window]
    return {"devices": devices, "connected_s": round(connected - first, 1), "window_s": round(t1 - t0, 1),
            "acked": acked, "cpu_s": round(cpu1 - cpu0, 2), "msgs_per_cpu_s": acked / max(cpu1 - cpu0, 1e-9),
            "lateness_p50_ms": float(np.quantile(lateness, 0.5) * 1e3), "lateness_p99_ms": float(np.quantile(lateness, 0.99) * 1e3),
            "publish_p99_ms": float(np.quantile(s.latency[window], 0.99) * 1e3),
            "cpu_ms_per_device_minute": (cpu1 - cpu0) / devices / ((t1 - t0) / 60) * 1e3,
            "rss_kb_per_device": (rss1 - rss_before) / devices / 1024, "connect_failures": int((s.status[connect] != 200).sum())}


def provision_bare(url: str, devices: int, folder: Path) -> Path:
    from harness.fleet import Login, Secret, plan_devices
    from harness.provision import provision
    from harness.scenario import parse_scenario

    specs = plan_devices(parse_scenario({"name": "mqttbare", "fleet": {"classes": [
        {"name": "m", "count": devices, "report_interval": "60s", "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]}}))
    fleet = provision(url, Login(email=EMAIL, password=Secret(PASSWORD)), "mqttbare", "bench", specs)
    path = folder / "bare.json"
    path.write_text(json.dumps({"key": fleet.access_key, "secret": str(fleet.access_secret),
                                "ids": [d.id for d in fleet.devices]}))
    return path


def run_bare(mqtt_url: str, creds: Path, steady: float) -> dict[str, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-child", str(creds), "--mqtt-url", mqtt_url,
           "--steady", str(steady)]
    proc, points, output = watch(cmd, dict(os.environ))
    lines = [ln for ln in output.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"bare run failed ({proc.returncode}):\n{output[-3000:]}")
    figures = json.loads(lines[-1])
    (cpu0, _), (cpu1, _) = at(points, figures["t0"]), at(points, figures["t1"])
    rss1, rss_before = figures["rss_last"], figures["rss_first"]
    n = figures["devices"]
    return {"devices": n, "connected_s": round(figures["connected"] - figures["first"], 1),
            "window_s": round(figures["t1"] - figures["t0"], 1), "acked": figures["acked"],
            "cpu_s": round(cpu1 - cpu0, 2), "msgs_per_cpu_s": figures["acked"] / max(cpu1 - cpu0, 1e-9),
            "cpu_ms_per_device_minute": (cpu1 - cpu0) / n / ((figures["t1"] - figures["t0"]) / 60) * 1e3,
            "rss_kb_per_device": (rss1 - rss_before) / n / 1024}


def bare_child(creds: Path, mqtt_url: str, steady: float) -> None:
    """P: paho clients on gevent, each publishing once a minute; prints the window's figures."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import paho.mqtt.client as paho
    from gevent.lock import BoundedSemaphore
    from gevent.socket import wait_read

    from harness.users.mqtt_link import BrokerAddress

    data = json.loads(creds.read_text())
    address = BrokerAddress.parse(mqtt_url)
    acked = [0.0, 0.0, 0]  # window start, window end, PUBACKs inside

    def on_publish(client, userdata, mid):  # type: ignore[no-untyped-def]
        if acked[0] <= time.time() <= acked[1]:
            acked[2] += 1

    class Timeout(Exception):
        pass

    connecting = BoundedSemaphore(200)
    done = [0]

    def device(i: int, device_id: str, start: float) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION1, client_id=device_id, clean_session=True,
                             protocol=paho.MQTTv311, reconnect_on_failure=False)
        client.username_pw_set(data["key"], data["secret"])
        client.on_publish = on_publish
        with connecting:
            client.connect(address.host, address.port, 60)
            sock = client.socket()
            while not client.is_connected():
                wait_read(sock.fileno())
                if client.loop_read():
                    return
        done[0] += 1
        topic = f"losant/{device_id}/state"
        nxt = start + INTERVAL * i / len(data["ids"])
        while True:
            try:
                wait_read(sock.fileno(), timeout=max(0.0, min(30.0, nxt - time.time())), timeout_exc=Timeout)
                if client.loop_read(max_packets=64):
                    return
            except Timeout:
                pass
            if time.time() >= nxt:
                client.publish(topic, json.dumps({"time": int(nxt * 1000), "data": {"v": 0.5}}), qos=1)
                nxt += INTERVAL
            client.loop_misc()

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    rss_first = rss()
    first = time.time()
    n = len(data["ids"])
    start = first + n / 200 + 5
    greenlets = [gevent.spawn(device, i, device_id, start) for i, device_id in enumerate(data["ids"])]
    while done[0] < n and time.time() < first + 600:
        gevent.sleep(0.1)
    connected = time.time()
    acked[0], acked[1] = max(start, connected + 5), max(start, connected + 5) + steady
    gevent.sleep(acked[1] - time.time())
    rss_last = rss()
    gevent.sleep(2)
    print(json.dumps({"devices": len(data["ids"]), "first": first, "connected": connected, "t0": acked[0],
                      "t1": acked[1], "acked": acked[2], "rss_first": rss_first, "rss_last": rss_last}), flush=True)
    gevent.killall(greenlets, block=False)


def connect_child(creds: Path, mqtt_url: str, subscribe: bool, unbound: bool) -> None:
    """P for ``--connect``: every device's CONNECT at once (at most ``MAX_CONNECTING`` waiting for a
    CONNACK, as the harness), subscribed to its command topic like a harness device when ``subscribe``,
    connecting unbound like the harness's client when ``unbound`` (paho as shipped binds to port 0
    first); prints the time from the first CONNECT to the last CONNACK and the latency quantiles."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import paho.mqtt.client as paho
    from gevent.lock import BoundedSemaphore
    from gevent.socket import wait_read

    from harness.users.mqtt import MAX_CONNECTING
    from harness.users.mqtt_link import BrokerAddress, _Client

    data = json.loads(creds.read_text())
    address = BrokerAddress.parse(mqtt_url)
    connecting = BoundedSemaphore(MAX_CONNECTING)
    make = _Client if unbound else paho.Client
    latencies: list[float] = []
    last = [0.0]
    failures = [0]

    def device(device_id: str) -> None:
        client = make(paho.CallbackAPIVersion.VERSION1, client_id=device_id, clean_session=True,
                      protocol=paho.MQTTv311, reconnect_on_failure=False)
        client.username_pw_set(data["key"], data["secret"])
        with connecting:
            t0 = time.perf_counter()
            client.connect(address.host, address.port, 60)
            sock = client.socket()
            while not client.is_connected():
                wait_read(sock.fileno())
                if client.loop_read():
                    failures[0] += 1
                    return
            latencies.append(time.perf_counter() - t0)
            last[0] = time.time()
        if subscribe:
            client.subscribe(f"losant/{device_id}/command", 1)
        while True:
            wait_read(sock.fileno())
            if client.loop_read(max_packets=64):
                return

    first = time.time()
    greenlets = [gevent.spawn(device, device_id) for device_id in data["ids"]]
    n = len(data["ids"])
    while len(latencies) + failures[0] < n and time.time() < first + 300:
        gevent.sleep(0.05)
    gevent.sleep(1.0)  # the last SUBSCRIBEs answered before the connections close
    print(json.dumps({"devices": n, "connected": len(latencies), "failures": failures[0],
                      "connect_s": last[0] - first, "p50_ms": float(np.quantile(latencies, 0.5) * 1e3),
                      "p99_ms": float(np.quantile(latencies, 0.99) * 1e3)}), flush=True)
    gevent.killall(greenlets, block=False)


def run_bare_connect(mqtt_url: str, creds: Path, subscribe: bool, unbound: bool, emulator: int) -> dict[str, float]:
    """P's figures, and the emulator's CPU seconds over P's whole life (connects, SUBSCRIBEs, closes):
    near ``connect_s`` means the broker's core was busy throughout (the broker limits, not P)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--connect-child", str(creds), "--mqtt-url", mqtt_url]
    if subscribe:
        cmd.append("--subscribe")
    if unbound:
        cmd.append("--unbound")
    emulator_cpu = _proc_figures(emulator)[0]
    proc, _, output = watch(cmd, dict(os.environ))
    emulator_cpu = _proc_figures(emulator)[0] - emulator_cpu
    lines = [ln for ln in output.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"bare connect run failed ({proc.returncode}):\n{output[-3000:]}")
    return {**json.loads(lines[-1]), "emulator_cpu_s": round(emulator_cpu, 2)}


def connect_rounds(emu: Any, creds: Path, limits: Path, args: argparse.Namespace, folder: Path) -> None:
    """Per round, each connecting N devices at once: P (paho as shipped), H, then P' (paho connecting
    unbound, as the harness's client); both P subscribe to the command topic as H's devices do. Each
    starts with the previous one's ports in TIME_WAIT, as a run after a run does; medians."""
    rows: dict[str, list[dict[str, float]]] = {"harness": [], "bare paho": [], "bare paho unbound": []}
    for n in range(args.rounds):
        bare = run_bare_connect(emu.mqtt_url, creds, subscribe=True, unbound=False, emulator=emu.pid)
        print(f"round {n + 1} bare paho:", json.dumps(bare), flush=True)
        harness = run_harness(emu.url, emu.mqtt_url, limits, args.devices, 0.0, folder / f"c{n}", connect_only=True,
                              profile=args.profile)
        print(f"round {n + 1} harness:  ", json.dumps(harness), flush=True)
        unbound = run_bare_connect(emu.mqtt_url, creds, subscribe=True, unbound=True, emulator=emu.pid)
        print(f"round {n + 1} bare paho unbound:", json.dumps(unbound), flush=True)
        rows["bare paho"].append(bare)
        rows["harness"].append(harness)
        rows["bare paho unbound"].append(unbound)
    for name, rows_ in rows.items():
        print(f"medians of {args.rounds}, {name}: all {args.devices} connected in "
              f"{np.median([r['connect_s'] for r in rows_]):.1f} s, connect latency p50 "
              f"{np.median([r['p50_ms'] for r in rows_]):.0f} ms, p99 {np.median([r['p99_ms'] for r in rows_]):.0f} ms, "
              f"failed attempts {[r['failures'] for r in rows_]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--steady", type=float, default=70.0, help="seconds of steady window (>= 60: every device publishes)")
    ap.add_argument("--rounds", type=int, default=1, help="bare/harness pairs, alternating; medians are reported")
    ap.add_argument("--connect", action="store_true",
                    help="connect N devices at once, H and P (P subscribed like H) per round; no steady window")
    ap.add_argument("--profile", action="store_true", help="--connect: the harness under py-spy (raw stacks)")
    ap.add_argument("--bare-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--connect-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--subscribe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--unbound", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mqtt-url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_child:
        bare_child(args.bare_child, args.mqtt_url, args.steady)
        return
    if args.connect_child:
        connect_child(args.connect_child, args.mqtt_url, args.subscribe, args.unbound)
        return
    from harness.emulator.process import EmulatorProcess

    folder = Path(tempfile.mkdtemp(prefix="mqttbench-"))
    limits = folder / "fast.yaml"
    limits.write_text(yaml.safe_dump(FAST))
    emu = EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(limits))
    emu.start()
    try:
        if (os.cpu_count() or 1) > 1 and emu.pid:
            os.sched_setaffinity(emu.pid, {1})
        creds = provision_bare(emu.url, args.devices, folder)
        if args.connect:
            connect_rounds(emu, creds, limits, args, folder)
            return
        ratios, bares, harnesses = [], [], []
        for n in range(args.rounds):
            bare = run_bare(emu.mqtt_url, creds, args.steady)
            print(f"round {n + 1} bare paho:", json.dumps(bare), flush=True)
            harness = run_harness(emu.url, emu.mqtt_url, limits, args.devices, args.steady, folder / f"h{n}")
            print(f"round {n + 1} harness:  ", json.dumps(harness), flush=True)
            ratios.append(harness["msgs_per_cpu_s"] / bare["msgs_per_cpu_s"])
            bares.append(bare)
            harnesses.append(harness)

        def med(rows: list[dict[str, float]], key: str) -> float:
            return float(np.median([r[key] for r in rows]))

        print(f"medians of {args.rounds}: msgs per generator CPU-second harness {med(harnesses, 'msgs_per_cpu_s'):.0f}, "
              f"bare paho {med(bares, 'msgs_per_cpu_s'):.0f}, ratio {np.median(ratios):.2f} (rounds: "
              + ", ".join(f"{r:.2f}" for r in ratios) + f"); harness lateness p99 {med(harnesses, 'lateness_p99_ms'):.1f} ms, "
              f"CPU {med(harnesses, 'cpu_ms_per_device_minute'):.2f} ms per device-minute (bare "
              f"{med(bares, 'cpu_ms_per_device_minute'):.2f}), RSS {med(harnesses, 'rss_kb_per_device'):.1f} KB per device "
              f"(bare {med(bares, 'rss_kb_per_device'):.1f})", flush=True)
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
