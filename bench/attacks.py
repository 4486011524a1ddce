"""Benchmark: the emulator under connection attacks, and what its connection guards cost.

Attacks (``python bench/attacks.py [--server guarded|stock] [--only NAME]``), each against a
fresh emulator pinned to CPU 0 with the probe; the attacker (a process at nice 19) on CPU 1, so
that the kernel's loopback work for 380 MB of attack traffic (done on the sender's CPU, whatever
its niceness) does not show up as the probe's latency:

- ``idle``: 2,000 sockets opened and left silent,
- ``slowloris``: 1,000 sockets sending a request's headers one short line a second,
- ``half-body``: 40 sockets each declaring a 10,000,000-byte body and sending 9.5 MB of it,
- ``header``: one socket sending a 64 MB header line (four times in a row),
- ``none``: no attack, the probe alone (the baseline: a shared machine's own noise).

Meanwhile a probe (a separate process, one keep-alive connection) sends a state report
every 20 ms, rotating over 50 devices, alone for 3 s (this moment's baseline) then during
the attack. ``--nice -10`` runs the emulator and the probe above other work on a shared
machine (needs root); the attacker always runs at nice 19. Per attack: the probe's
p50/p99/max latency and failures, the emulator's RSS before, at its peak and at the end
(sampled every 20 ms from /proc) and its CPU seconds, and how many attack sockets the
emulator closed, with which answer and how soon. ``--server stock`` serves the same app on
stock uvicorn (uvloop + httptools, no guards): the "before" figures.

Loop lag (``--loop-lag [--only burst] [--backlog N]``): the longest stall of the server's own
event loop while an attacker process opens 2,000 idle or 1,000 slowloris sockets and the guarded
server (timeouts 1.5 s) closes them, or starts 5,000 connections at once (``burst``: uvloop
accepts every pending connection of the backlog in one loop turn).

Cost (``--ratio``): the send-state ingest rate with wrk (64 connections, pinned to CPU 1)
of the emulator on stock uvicorn and on the guarded protocol, against the bare ASGI app of
bench/emulator.py on stock uvicorn, runs alternating (bare, stock, guarded, ...), medians;
also the server CPU time per request (from /proc, far less sensitive to a busy machine).
Both emulators take the same limits file (per-device limit raised) and 200 devices.
``--protocol-cost``: CPU per request of the protocol layer alone, stock vs guarded, in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from emulator import BARE_APP, cpu_seconds, measured, pinned, script, start, wrk  # noqa: E402 - bench/emulator.py

EMAIL, PASSWORD = "admin@emulator.local", "emulator-password"
STOCK = '''
import gc, sys, uvicorn
from harness.emulator.cli import bind, config_from_args, build_parser
from harness.emulator.app import create_app
from harness.emulator.faults_admin import front
config = config_from_args(build_parser().parse_args(sys.argv[1:]))
sock = bind("127.0.0.1", 0)
app = create_app(config)
print("Losant API emulator listening on http://127.0.0.1:%d (stock uvicorn) " % sock.getsockname()[1], flush=True)
server = uvicorn.Server(uvicorn.Config(front(app), loop="uvloop", http="httptools", access_log=False, lifespan="on",
                                       log_level="error", server_header=False, date_header=False))
gc.collect(); gc.freeze(); gc.disable()
server.run(sockets=[sock])
'''
PROBE_BODY = b'{"data":{"temp":21.5}}'
BEFORE_S = 3.0  # the probe runs alone this long before each attack


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def niced(nice: int) -> list[str]:
    return ["nice", "-n", str(nice)] if nice else []


def serve(kind: str, extra: list[str], nice: int = 0) -> tuple[subprocess.Popen[str], str]:
    code = ["-m", "harness.emulator", "--port", "0", "--quiet", "--no-mqtt"] if kind == "guarded" else ["-c", STOCK]
    return start(niced(nice) + pinned(0) + [sys.executable, *code, *extra])


def provision(url: str, devices: int) -> list[str]:
    """``path token`` per device (device tokens), as bench/emulator.py's targets."""
    import httpx  # noqa: PLC0415

    with httpx.Client(base_url=url, timeout=30) as c:
        tok = c.post("/auth/user", json={"email": EMAIL, "password": PASSWORD}).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        app = c.post("/applications", json={"name": "attacks"}, headers=h).json()["id"]
        key = c.post(f"/applications/{app}/keys", json={}, headers=h).json()
        lines = []
        for i in range(devices):
            dev = c.post(f"/applications/{app}/devices", headers=h,
                         json={"name": f"p{i}", "attributes": [{"name": "temp", "dataType": "number"}]}).json()["id"]
            dtok = c.post("/auth/device", json={"deviceId": dev, "key": key["key"], "secret": key["secret"]}).json()["token"]
            lines.append(f"/applications/{app}/devices/{dev}/state {dtok}")
    return lines


# --- the probe: its own process, so the attacker's Python work cannot delay its clock --------------

def stats(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    if not lat:
        return {}
    return {"n": len(lat), "p50_ms": round(lat[len(lat) // 2], 2), "p99_ms": round(lat[int(len(lat) * 0.99)], 2),
            "max_ms": round(lat[-1], 1)}


def probe(url: str, targets_file: str, seconds: float, period: float, before: float) -> dict[str, Any]:
    """Latencies of the first ``before`` seconds (no attack yet: this moment's baseline) and of the rest."""
    import http.client  # noqa: PLC0415

    host, port = url.removeprefix("http://").rsplit(":", 1)
    targets = [line.split(" ") for line in Path(targets_file).read_text().split("\n") if line]
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    quiet: list[float] = []
    attacked: list[float] = []
    worst = (0.0, 0.0)  # latency, seconds since the attack began
    failures, i = 0, 0
    t_start = time.monotonic()
    t_end = t_start + seconds
    next_at = t_start
    while time.monotonic() < t_end:
        path, token = targets[i % len(targets)]
        i += 1
        sent = time.monotonic()
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, PROBE_BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures += 1
        except OSError:
            failures += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
        ms = (time.perf_counter() - t0) * 1000
        if sent - t_start < before:
            quiet.append(ms)
        else:
            attacked.append(ms)
            if ms > worst[0]:
                worst = (ms, sent - t_start - before)
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    return {"failures": failures, "before_attack": stats(quiet), "during_attack": {**stats(attacked), "max_at_s": round(worst[1], 2)}}


def start_probe(url: str, targets_file: str, seconds: float, nice: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(niced(nice) + pinned(0) + [sys.executable, __file__, "--probe", url, "--targets", targets_file,
                                                       "--seconds", str(seconds + BEFORE_S)], stdout=subprocess.PIPE, text=True)


# --- the attacks: each returns when done; closures are recorded as seconds since the attack began ---

class Sockets:
    """Many non-blocking attack sockets; records when the emulator closes each one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sel = selectors.DefaultSelector()
        self.closed: dict[int, float] = {}
        self.open_failures = 0
        self.t0 = time.monotonic()
        self.socks: list[socket.socket] = []

    def open(self, n: int, first: bytes = b"") -> None:
        for _ in range(n):
            try:
                s = socket.create_connection((self.host, self.port), timeout=5)
            except OSError:
                self.open_failures += 1
                continue
            if first:
                s.sendall(first)
            s.setblocking(False)
            self.socks.append(s)
            self.sel.register(s, selectors.EVENT_READ)

    def poll(self, until: float) -> None:
        while time.monotonic() < until and len(self.closed) < len(self.socks):
            for key, _ in self.sel.select(timeout=0.05):
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed[s.fileno()] = time.monotonic() - self.t0
                    self.sel.unregister(s)

    def send_all(self, data: bytes) -> None:
        for s in self.socks:
            if s.fileno() in self.closed or s.fileno() < 0:
                continue
            try:
                s.send(data)
            except OSError:
                pass

    def close(self) -> None:
        for s in self.socks:
            s.close()

    def summary(self) -> dict[str, Any]:
        times = sorted(self.closed.values())
        return {"sockets": len(self.socks), "refused_at_connect": self.open_failures, "closed": len(times),
                "closed_first_s": round(times[0], 2) if times else None, "closed_last_s": round(times[-1], 2) if times else None}


def attack_idle(host: str, port: int, seconds: float) -> dict[str, Any]:
    socks = Sockets(host, port)
    socks.open(2000)
    socks.poll(socks.t0 + seconds)
    socks.close()
    return socks.summary()


def attack_slowloris(host: str, port: int, seconds: float) -> dict[str, Any]:
    socks = Sockets(host, port)
    socks.open(1000, b"POST /auth/user HTTP/1.1\r\nHost: emulator\r\n")
    end = socks.t0 + seconds
    n = 0
    while time.monotonic() < end and len(socks.closed) < len(socks.socks):
        socks.send_all(b"X-Slow-%d: x\r\n" % n)
        n += 1
        socks.poll(min(end, time.monotonic() + 1.0))
    socks.close()
    return socks.summary()


def _half_body(host: str, port: int, t0: float, out: list[tuple[float, bytes]]) -> None:
    s = socket.create_connection((host, port), timeout=60)
    head = (b"POST /auth/user HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n")
    answer = b""
    try:
        s.sendall(head + b'{"email": "' + b"a" * 9_500_000)
        answer = s.recv(4096)  # blocks until the emulator answers or closes
    except OSError:
        try:
            answer = s.recv(4096)
        except OSError:
            pass
    out.append((time.monotonic() - t0, answer[:12]))
    s.close()


def attack_half_body(host: str, port: int, seconds: float) -> dict[str, Any]:
    t0, out = time.monotonic(), []  # type: ignore[var-annotated]
    threads = [threading.Thread(target=_half_body, args=(host, port, t0, out), daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, t0 + seconds - time.monotonic()))
    times = sorted(t for t, _ in out)
    statuses: dict[str, int] = {}
    for _, a in out:
        key = a.decode("latin-1", "replace").strip() or "closed"
        statuses[key] = statuses.get(key, 0) + 1
    return {"sockets": 40, "closed": len(out), "answers": statuses,
            "closed_first_s": round(times[0], 2) if times else None, "closed_last_s": round(times[-1], 2) if times else None}


def attack_header(host: str, port: int, seconds: float) -> dict[str, Any]:
    payload = b"GET /me HTTP/1.1\r\nHost: emulator\r\nX-Huge: " + b"a" * (64 * 1024 * 1024) + b"\r\n\r\n"
    times, answers = [], []
    end = time.monotonic() + seconds
    for _ in range(4):
        if time.monotonic() > end:
            break
        t0 = time.monotonic()
        s = socket.create_connection((host, port), timeout=30)
        answer = b""
        try:
            s.sendall(payload)
            answer = s.recv(4096)
        except OSError:
            try:
                answer = s.recv(4096)
            except OSError:
                pass
        times.append(time.monotonic() - t0)
        answers.append(answer[:12].decode("latin-1", "replace").strip() or "reset")
        s.close()
    return {"requests": len(times), "answers": answers, "answered_in_s_max": round(max(times), 3) if times else None}


def attack_burst(host: str, port: int, seconds: float) -> dict[str, Any]:
    """5,000 connections started at once (non-blocking connects, no waiting between them), held silent."""
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    for _ in range(5000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
    started = time.monotonic() - t0
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    connected, failed = 0, 0
    end = t0 + seconds
    while connected + failed < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            sel.unregister(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                failed += 1
            else:
                connected += 1
    all_in = time.monotonic() - t0
    time.sleep(max(0.0, end - time.monotonic()))
    for s in socks:
        s.close()
    return {"sockets": len(socks), "connects_started_in_s": round(started, 3), "connected": connected, "failed": failed,
            "all_connected_after_s": round(all_in, 2)}


def attack_none(host: str, port: int, seconds: float) -> dict[str, Any]:
    """The baseline: the probe alone, for the machine's own noise."""
    time.sleep(seconds)
    return {}


ATTACKS = {"none": (attack_none, 8.0), "idle": (attack_idle, 12.0), "slowloris": (attack_slowloris, 15.0),
           "half-body": (attack_half_body, 40.0), "header": (attack_header, 10.0), "burst": (attack_burst, 10.0)}


def run_attack(name: str, kind: str, extra: list[str], tmp: Path, nice: int = 0) -> dict[str, Any]:
    seconds = ATTACKS[name][1]
    proc, url = serve(kind, extra, nice)
    try:
        targets = tmp / "probe.txt"
        targets.write_text("\n".join(provision(url, 50)) + "\n")
        host, port = url.removeprefix("http://").rsplit(":", 1)
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_mb(proc.pid))
                stop.wait(0.02)

        base, cpu0 = rss_mb(proc.pid), cpu_seconds(proc.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        probe_proc = start_probe(url, str(targets), seconds + 1.0, nice)
        time.sleep(BEFORE_S)  # the probe alone first: this moment's baseline on a shared machine
        # the attacker shares CPU 1 with the probe: at nice 19, so that its own CPU use (40 threads
        # pushing 380 MB through loopback) does not show up as the probe's latency
        attacker = subprocess.Popen(pinned(1) + [sys.executable, __file__, "--attacker", name, "--probe-url", url,
                                                 "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True,
                                    preexec_fn=lambda: os.nice(19))
        try:
            out_attack, _ = attacker.communicate(timeout=seconds + 60)
        finally:
            attacker.kill()
        result = json.loads(out_attack.strip().splitlines()[-1])
        out, _ = probe_proc.communicate(timeout=seconds + 30)
        cpu = cpu_seconds(proc.pid) - cpu0
        stop.set()
        sampler.join()
        alive = proc.poll() is None
        return {"attack": name, "server": kind, **result, "probe": json.loads(out.strip().splitlines()[-1]),
                "rss_before_mb": round(base, 1), "rss_peak_mb": round(max(samples), 1),
                "rss_end_mb": round(samples[-1], 1), "emulator_cpu_s": round(cpu, 2), "emulator_alive": alive}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # stock uvicorn waits for the requests the attack left open
            proc.kill()
            proc.wait(10)


def ratio(runs: int, duration: int, tmp: Path) -> dict[str, Any]:
    limits = tmp / "limits.yaml"
    limits.write_text("limits:\n  device.sendState: {count: 1000000, window: 1.0}\n")
    bare, bare_url = start(pinned(0) + [sys.executable, "-c", BARE_APP])
    stock, stock_url = serve("stock", ["--limits", str(limits)])
    guarded, guarded_url = serve("guarded", ["--limits", str(limits)])
    try:
        scripts = {"bare": script(tmp, "bare", ["/state x"])}
        for name, url in (("stock", stock_url), ("guarded", guarded_url)):
            scripts[name] = script(tmp, name, provision(url, 200))
        urls = {"bare": bare_url, "stock": stock_url, "guarded": guarded_url}
        for name in urls:
            wrk(urls[name], scripts[name], 2, 64)  # warm-up
        procs = {"bare": bare, "stock": stock, "guarded": guarded}
        rates: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        bad = 0.0
        for _ in range(runs):
            for name in urls:
                r = measured(procs[name], urls[name], scripts[name], duration, 64)
                rates[name].append(r["rps"])
                cpu[name].append(r["cpu_us"])
                bad += r["non2xx"] + r["errors"]
    finally:
        for proc in (bare, stock, guarded):
            proc.terminate()
            proc.wait(10)
    med = {name: statistics.median(v) for name, v in rates.items()}
    return {"runs": {k: [round(x) for x in v] for k, v in rates.items()}, "median_rps": {k: round(v) for k, v in med.items()},
            "ratio_stock": round(med["stock"] / med["bare"], 3), "ratio_guarded": round(med["guarded"] / med["bare"], 3),
            "ratio_guarded_per_pair": round(statistics.median(g / b for g, b in zip(rates["guarded"], rates["bare"])), 3),
            "ratio_stock_per_pair": round(statistics.median(s / b for s, b in zip(rates["stock"], rates["bare"])), 3),
            "cpu_us_per_request": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
            "cpu_ratio_stock": round(statistics.median(cpu["bare"]) / statistics.median(cpu["stock"]), 3),
            "cpu_ratio_guarded": round(statistics.median(cpu["bare"]) / statistics.median(cpu["guarded"]), 3),
            "non2xx_or_errors": int(bad)}


class _Transport:
    """Just enough of an asyncio transport for a protocol to answer into."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def protocol_cost(blocks: int, per_block: int) -> dict[str, Any]:
    """CPU per request of the protocol layer alone: stock HttpToolsProtocol vs GuardedProtocol, one
    keep-alive connection each, the same pipelined-free request and a trivial app, in one process on
    uvloop, blocks alternating; robust to a busy machine (both pay the same)."""
    import asyncio  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415
    import uvloop  # noqa: PLC0415
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    from uvicorn.server import ServerState  # noqa: PLC0415

    from harness.emulator.config import EmulatorConfig  # noqa: PLC0415
    from harness.emulator.guard import ConnectionGuard, GuardedProtocol  # noqa: PLC0415

    request = (b"POST /applications/a/devices/d/state HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789\r\nContent-Length: 22\r\n\r\n" + PROBE_BODY)
    start_msg = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")]}
    body_msg = {"type": "http.response.body", "body": b'{"success":true}'}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(start_msg)
        await send(body_msg)

    async def run() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(app, loop="none", http="httptools", ws="none", lifespan="off", access_log=False, log_level="error")
        config.load()
        guard = ConnectionGuard(EmulatorConfig())
        made = {"stock": HttpToolsProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop),
                "guarded": GuardedProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop, guard=guard)}
        for proto in made.values():
            proto.connection_made(_Transport())  # type: ignore[arg-type]
        out: dict[str, list[float]] = {"stock": [], "guarded": []}
        for _ in range(blocks):
            for name, proto in made.items():
                t0 = time.process_time()
                for _ in range(per_block):
                    proto.data_received(request)
                    await asyncio.sleep(0)  # the ASGI task answers
                    await asyncio.sleep(0)
                out[name].append((time.process_time() - t0) / per_block * 1e6)
        return out

    times = uvloop.run(run())
    stock, guarded = statistics.median(times["stock"]), statistics.median(times["guarded"])
    return {"us_per_request": {"stock": round(stock, 2), "guarded": round(guarded, 2)},
            "guard_cost_us": round(guarded - stock, 2), "blocks": blocks, "per_block": per_block}


def loop_lag(kind: str, attack: str, backlog: int = 0) -> dict[str, Any]:
    """The longest event-loop stall while an attacker process opens (and the guarded server
    closes) its sockets: a 2 ms sleeper in the server's own uvloop loop; a trivial app, timeouts
    1.5 s so that the closing happens within the attack."""
    import asyncio  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415
    import uvloop  # noqa: PLC0415

    from harness.emulator.cli import bind, uvicorn_config  # noqa: PLC0415
    from harness.emulator.config import EmulatorConfig  # noqa: PLC0415

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = bind("127.0.0.1", 0)
    if kind == "guarded":
        config = uvicorn_config(app, True, EmulatorConfig(idle_timeout_s=1.5, header_timeout_s=1.5))
        config.lifespan = "off"
    else:
        config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", log_level="error")
    if backlog:
        config.backlog = backlog
    server = uvicorn.Server(config)
    lags: list[float] = []
    attacked: dict[str, Any] = {}

    async def run() -> None:
        async def monitor() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.002)
                lags.append((time.perf_counter() - t0 - 0.002) * 1000)

        async def attacker() -> None:
            await asyncio.sleep(0.5)
            proc = await asyncio.create_subprocess_exec(
                *pinned(1), sys.executable, __file__, "--attacker", attack, "--probe-url",
                f"http://127.0.0.1:{sock.getsockname()[1]}", "--seconds", "4", stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            attacked.update(json.loads(out.decode().strip().splitlines()[-1]))
            server.should_exit = True

        asyncio.get_running_loop().create_task(monitor())
        asyncio.get_running_loop().create_task(attacker())
        await server.serve(sockets=[sock])

    if pinned(0):
        os.sched_setaffinity(0, {0})
    uvloop.run(run())
    lags.sort()
    return {"server": kind, "attack": attack, "backlog": config.backlog, **attacked,
            "max_lag_ms": round(lags[-1], 1), "p99.9_lag_ms": round(lags[int(len(lags) * 0.999)], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=("guarded", "stock"), default="guarded")
    p.add_argument("--only", choices=tuple(ATTACKS), action="append", help="run only this attack (repeatable)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="run the emulator and the probe at this niceness (negative needs root: shields them from "
                        "other load on a shared machine; the attacker always runs at 19)")
    p.add_argument("--ratio", action="store_true", help="measure the ingest ratio instead (needs wrk)")
    p.add_argument("--protocol-cost", action="store_true",
                   help="measure the CPU per request of the protocol layer, stock vs guarded, in-process")
    p.add_argument("--loop-lag", action="store_true",
                   help="measure the server's longest event-loop stall under the idle and slowloris attacks instead")
    p.add_argument("--backlog", type=int, default=0, help="--loop-lag: the listen backlog (default: uvicorn's, 2048)")
    p.add_argument("--runs", type=int, default=5, help="--ratio: alternating runs (default: %(default)s)")
    p.add_argument("--duration", type=int, default=8, help="--ratio: seconds per wrk run (default: %(default)s)")
    p.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--attacker", choices=tuple(ATTACKS), help=argparse.SUPPRESS)
    p.add_argument("--probe-url", help=argparse.SUPPRESS)
    p.add_argument("--targets", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.targets, args.seconds, 0.02, BEFORE_S)))
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 2,000 attack sockets
    if args.attacker:
        host, port = args.probe_url.removeprefix("http://").rsplit(":", 1)
        print(json.dumps(ATTACKS[args.attacker][0](host, int(port), args.seconds)), flush=True)
        return 0
    if pinned(1):
        os.sched_setaffinity(0, {1})
    if args.loop_lag:
        for attack in args.only or ("idle", "slowloris", "burst"):
            print(json.dumps(loop_lag(args.server, attack, args.backlog)), flush=True)
        return 0
    if args.protocol_cost:
        print(json.dumps(protocol_cost(blocks=21, per_block=5000)), flush=True)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="attacks-"))
    try:
        if args.ratio:
            if not shutil.which("wrk"):
                raise SystemExit("wrk not found (Debian: apt-get install -y wrk)")
            print(json.dumps(ratio(args.runs, args.duration, tmp)), flush=True)
            return 0
        for name in args.only or list(ATTACKS):
            print(json.dumps(run_attack(name, args.server, [], tmp, args.nice)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
