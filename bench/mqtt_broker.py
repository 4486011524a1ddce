"""MQTT broker benchmark: the emulator's broker against a bare amqtt broker, side by side, one core each.

Three measurements (figures in docs/BENCHMARKS.md, section MQTT broker):

1. ``ingest``: QoS 1 publishes acknowledged per second. The broker runs pinned to core 0
   (``taskset``), this load generator on core 1. The same generator drives a bare amqtt
   0.12.1 broker (anonymous, no subscribers, uvloop) and the emulator's broker (access-key
   auth, limits counted, each state validated, stored and committed before its PUBACK),
   in turns, in the same run; the ratio emulator / bare is the figure. The emulator runs
   with a limits file that raises the MQTT counts so the load is not throttled (the
   counters are still charged on every message).
2. ``fleet``: N devices connected (default 10,000), each publishing one QoS 1 state every
   ``--period`` s (default 10: 1,000 messages/s) on spread phases, ``--settle`` s right after
   the connects and ``--fleet-seconds`` s after them reported apart; PUBLISH-to-PUBACK
   percentiles (the PUBACK is sent only after the commit, so they bound publish-to-stored
   from above) and the broker's own arrival-to-commit percentiles (``/_emulator/mqtt``).
3. ``memory``: broker RSS with N idle connections minus before, per connection, for both brokers.

The generator is raw asyncio on uvloop with amqtt's packet classes (a paho-mqtt client per
connection would make the generator, not the broker, the limit). ``python bench/mqtt_broker.py
--help``; ``--quick`` is a small smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvloop
from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from amqtt.mqtt.publish import PublishPacket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD  # noqa: E402
from harness.emulator.mqtt.codec import frame_length  # noqa: E402

BARE = """
import asyncio, sys, uvloop
from amqtt.broker import Broker
async def main():
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:" + sys.argv[1], "max_connections": 0}},
                     "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}})
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""
UNTHROTTLED = """limits:
  mqtt.publishIn: {count: 1000000000}
  mqtt.connectionMessages: {count: 1000000000}
  mqtt.newConnections: {count: 1000000000}
"""


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the brokers -----------------------------------------------------------------------
class Target:
    """A broker subprocess: where it listens, its pid, and the devices it admits."""

    def __init__(self, name: str, proc: subprocess.Popen[str], port: int, devices: list[tuple[str, str, str]],
                 url: str = "") -> None:
        self.name, self.proc, self.port, self.devices, self.url = name, proc, port, devices, url

    def counters(self, reset: bool = False) -> dict[str, Any]:
        """The emulator broker's counters (``/_emulator/mqtt``, served with ``--admin``)."""
        return dict(httpx.get(f"{self.url}/_emulator/mqtt", params={"reset": "true"} if reset else {}, timeout=60).json())

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def cpu(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_bare(n: int) -> Target:
    port = free_port()
    # its stderr (a line per connection the generator closes) is not the figure
    proc = subprocess.Popen(pinned(0) + [sys.executable, "-c", BARE, str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return Target("bare amqtt", proc, port, [(f"bare-{i}", "", "") for i in range(n)])


def start_emulator(n: int, limits: Path) -> Target:
    proc = subprocess.Popen(pinned(0) + [sys.executable, "-m", "harness.emulator", "--port", "0", "--mqtt-port", "0", "--quiet", "--admin",
                                         "--limits", str(limits)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = re.search(r"listening on (http://\S+) ", line)
    mqtt = re.search(r"MQTT broker on mqtt://[^:]+:(\d+)", line)
    assert url and mqtt, line
    http = httpx.Client(base_url=url.group(1), timeout=60)
    token = http.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"
    app = http.post("/applications", json={"name": "bench"}).json()["id"]
    key = http.post(f"/applications/{app}/keys", json={}).json()
    attrs = [{"name": "temp", "dataType": "number"}]

    def make(i: int) -> str:
        return str(http.post(f"/applications/{app}/devices", json={"name": f"d{i}", "attributes": attrs}).json()["id"])

    with ThreadPoolExecutor(8) as pool:  # requests in flight: the round trips overlap
        ids = list(pool.map(make, range(n)))
    http.close()
    return Target("emulator", proc, int(mqtt.group(1)), [(i, key["key"], key["secret"]) for i in ids], url.group(1))


# ---- the load generator -----------------------------------------------------------------------
def connect_frame(client_id: str, user: str, password: str) -> bytes:
    vh = ConnectVariableHeader(keep_alive=300, proto_name="MQTT", proto_level=4)
    vh.clean_session_flag = True
    payload = ConnectPayload(client_id=client_id)
    if user:
        vh.username_flag = vh.password_flag = True
        payload.username, payload.password = user, password
    return ConnectPacket(variable_header=vh, payload=payload).to_bytes()


class Client(asyncio.Protocol):
    """One device: CONNECT, then QoS 1 publishes; PUBACK times recorded by packet id."""

    def __init__(self, run: Run, ident: tuple[str, str, str]) -> None:
        self.run, self.ident = run, ident
        self.topic = f"losant/{ident[0]}/state"
        self.buf = bytearray()
        self.sent: dict[int, float] = {}
        self.next_id = 0
        self.connected = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(connect_frame(*self.ident))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            head = frame_length(buf)
            if head is None or len(buf) < head[0] + head[1]:
                return
            frame = bytes(buf[:head[0] + head[1]])
            del buf[:head[0] + head[1]]
            kind = frame[0] >> 4
            if kind == 2:  # CONNACK
                if not self.connected.done():
                    self.connected.set_result(frame[3])
            elif kind == 4:  # PUBACK
                sent = self.sent.pop(int.from_bytes(frame[2:4], "big"), None)
                if sent is not None:
                    self.run.acked(time.perf_counter() - sent, self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_result(-1)
        self.run.lost += 1

    def publish(self, value: int) -> None:
        self.next_id = self.next_id % 65535 + 1
        body = b'{"data":{"temp":%d}}' % value
        if self.transport is None or self.transport.is_closing():
            return
        self.sent[self.next_id] = time.perf_counter()
        self.transport.write(PublishPacket.build(self.topic, body, self.next_id, False, 1, False).to_bytes())


class Run:
    def __init__(self, window: int = 0) -> None:
        self.window = window
        self.count = 0
        self.lost = 0
        self.latencies: list[float] = []
        self.measuring = False

    def acked(self, latency: float, client: Client) -> None:
        if self.measuring:
            self.count += 1
            self.latencies.append(latency)
        if self.window:
            client.publish(self.count)


async def open_clients(target: Target, run: Run, n: int, parallel: int = 200) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    sem = asyncio.Semaphore(parallel)

    failed: list[str] = []

    async def one(ident: tuple[str, str, str]) -> None:
        async with sem:
            try:
                _, proto = await loop.create_connection(lambda: Client(run, ident), "127.0.0.1", target.port)
                code = await asyncio.wait_for(proto.connected, 60)
            except (OSError, asyncio.TimeoutError) as exc:
                failed.append(type(exc).__name__)
                return
            if code != 0:
                failed.append(f"CONNACK {code}")
                return
            clients.append(proto)

    await asyncio.gather(*(one(ident) for ident in target.devices[:n]))
    if failed:
        print(f"  {target.name}: {len(failed)} of {n} connections failed ({', '.join(sorted(set(failed)))}); "
              f"figures use the {len(clients)} connected", flush=True)
    run.lost = 0
    return clients


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def ingest(target: Target, conns: int, window: int, seconds: float) -> dict[str, Any]:
    run = Run(window)
    clients = await open_clients(target, run, conns)
    for c in clients:
        for _ in range(window):
            c.publish(0)
    await asyncio.sleep(min(3.0, seconds / 3))  # warm-up
    cpu0, gen0 = target.cpu(), time.process_time()
    run.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    run.measuring = False
    elapsed = time.perf_counter() - t0
    cpu = target.cpu() - cpu0
    gen = time.process_time() - gen0
    run.window = 0
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    return {"acked_per_s": run.count / elapsed, "broker_cpu_share": cpu / elapsed, "lost": run.lost,
            "acked_per_broker_cpu_s": run.count / cpu if cpu else float("nan"), "generator_cpu_share": gen / elapsed,
            "p50_ms": pct(run.latencies, 0.5) * 1e3, "p99_ms": pct(run.latencies, 0.99) * 1e3}


async def fleet(target: Target, n: int, period: float, settle: float, seconds: float) -> dict[str, Any]:
    """Connect ``n`` devices, then publish for ``settle`` s (the phase right after the connects, reported
    apart: the emulator's first full garbage collection and freeze of the new connections fall in it) and
    ``seconds`` s more (the steady state)."""
    run = Run()
    rss0 = target.rss()
    t_open = time.perf_counter()
    clients = await open_clients(target, run, n)
    open_s = time.perf_counter() - t_open
    n = len(clients)
    await asyncio.sleep(2.0)
    per_conn = (target.rss() - rss0) / n
    run.measuring = True
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    end = start + settle + seconds
    sent = 0

    def tick(client: Client, at: float) -> None:
        nonlocal sent
        if at >= end:
            return
        client.publish(sent)
        sent += 1
        loop.call_at(at + period, tick, client, at + period)

    for i, c in enumerate(clients):
        at = start + period * i / n
        loop.call_at(at, tick, c, at)
    await loop.run_in_executor(None, target.counters, True)
    phases: dict[str, dict[str, Any]] = {}
    for name, length in (("after_connect", settle), ("steady", seconds)):
        first, sent0, cpu0 = len(run.latencies), sent, target.cpu()
        await asyncio.sleep(length + (0.5 if name == "after_connect" else 0.0))
        cpu = target.cpu() - cpu0
        if name == "steady":
            await asyncio.sleep(2.0)  # the last acknowledgements
        lat = run.latencies[first:]
        counters = await loop.run_in_executor(None, target.counters, True)
        phases[name] = {"seconds": length, "sent": sent - sent0, "acked": len(lat), "broker_cpu_share": cpu / length,
                        "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
                        "max_ms": max(lat, default=float("nan")) * 1e3, "stored_ms": counters["stored_ms"]}
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    return {"devices": n, "connect_s": open_s, "rss_per_connection_kb": per_conn / 1024, "sent": sent, "acked": run.count,
            "rate_per_s": sent / (settle + seconds), "lost": run.lost, **phases}


async def memory(target: Target, n: int) -> float:
    run = Run()
    rss0 = target.rss()
    clients = await open_clients(target, run, n)
    await asyncio.sleep(2.0)
    per_conn = (target.rss() - rss0) / max(1, len(clients))
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    return per_conn / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=64, help="ingest: connections (default %(default)s)")
    p.add_argument("--window", type=int, default=16, help="ingest: QoS 1 publishes in flight per connection (default %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="ingest: measured seconds per turn (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="ingest: alternating turns per broker; medians reported (default %(default)s)")
    p.add_argument("--devices", type=int, default=10_000, help="fleet and memory: connected devices (default %(default)s)")
    p.add_argument("--period", type=float, default=10.0, help="fleet: seconds between one device's states (default %(default)s)")
    p.add_argument("--fleet-seconds", type=float, default=30.0, help="fleet: measured steady seconds (default %(default)s)")
    p.add_argument("--settle", type=float, default=70.0,
                   help="fleet: seconds of publishing right after the connects, reported apart (default %(default)s: past the "
                        "emulator's first full garbage collection, which runs once a minute)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: ingest, fleet, memory")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()
    if args.quick:
        args.conns, args.seconds, args.rounds, args.devices, args.fleet_seconds, args.settle = 8, 2.0, 1, 200, 5.0, 3.0
    skip = set(filter(None, args.skip.split(",")))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if pinned(1):
        os.sched_setaffinity(0, {1})
    limits = Path(tempfile.mkdtemp()) / "unthrottled.yaml"
    limits.write_text(UNTHROTTLED)
    need = max(args.conns, args.devices if not {"fleet", "memory"} <= skip else 0)
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, broker pinned to core 0, generator to core 1 (shared machine)"}
    bare, emu = start_bare(need), start_emulator(need, limits)
    try:
        loop = uvloop.new_event_loop()
        if "ingest" not in skip:
            rows: dict[str, list[dict[str, Any]]] = {"bare": [], "emulator": []}
            for _ in range(args.rounds):
                for name, target in (("bare", bare), ("emulator", emu)):
                    rows[name].append(loop.run_until_complete(ingest(target, args.conns, args.window, args.seconds)))
            med = {name: statistics.median(r["acked_per_s"] for r in rs) for name, rs in rows.items()}
            per_cpu = {name: statistics.median(r["acked_per_broker_cpu_s"] for r in rs) for name, rs in rows.items()}
            share = {name: statistics.median(r["broker_cpu_share"] for r in rs) for name, rs in rows.items()}
            out["ingest"] = {"turns": rows, "median_acked_per_s": med, "ratio_emulator_to_bare": med["emulator"] / med["bare"],
                             "median_acked_per_broker_cpu_s": per_cpu,
                             "ratio_per_cpu_emulator_to_bare": per_cpu["emulator"] / per_cpu["bare"]}
            print(f"ingest QoS 1 acked/s (median of {args.rounds}): bare amqtt {med['bare']:.0f} (broker CPU {share['bare']:.0%}), "
                  f"emulator {med['emulator']:.0f} (broker CPU {share['emulator']:.0%}), ratio {med['emulator'] / med['bare']:.2f}; "
                  f"per broker CPU-second: bare {per_cpu['bare']:.0f}, emulator {per_cpu['emulator']:.0f}, "
                  f"ratio {per_cpu['emulator'] / per_cpu['bare']:.2f}", flush=True)
        if "memory" not in skip:
            bare_kb = loop.run_until_complete(memory(bare, args.devices))
            out["memory_kb_per_connection"] = {"bare": bare_kb}
            print(f"memory per idle connection, bare amqtt: {bare_kb:.1f} KB ({args.devices} connections)", flush=True)
        if "fleet" not in skip:
            fl = loop.run_until_complete(fleet(emu, args.devices, args.period, args.settle, args.fleet_seconds))
            out["fleet"] = fl
            out.setdefault("memory_kb_per_connection", {})["emulator"] = fl["rss_per_connection_kb"]
            print(f"fleet: {fl['devices']} devices connected in {fl['connect_s']:.1f} s, {fl['rate_per_s']:.0f} states/s, "
                  f"acked {fl['acked']}/{fl['sent']}, lost connections {fl['lost']}, "
                  f"emulator memory {fl['rss_per_connection_kb']:.1f} KB/connection", flush=True)
            for name in ("after_connect", "steady"):
                ph = fl[name]
                print(f"  {name} ({ph['seconds']:.0f} s): PUBLISH->PUBACK p50 {ph['p50_ms']:.1f} p99 {ph['p99_ms']:.1f} "
                      f"max {ph['max_ms']:.1f} ms; arrival->commit in the broker p50 {ph['stored_ms']['p50']} "
                      f"p99 {ph['stored_ms']['p99']} max {ph['stored_ms']['max']} ms; broker CPU {ph['broker_cpu_share']:.0%}",
                      flush=True)
        loop.close()
    finally:
        bare.stop()
        emu.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
