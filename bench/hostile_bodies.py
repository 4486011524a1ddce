"""Benchmark: JSON bodies whose cost is not their size, and the event-loop stalls they cause.

10 MiB of ``[[],[],...]`` (3.4 million containers) held the emulator's loop 0.3-2 s: orjson
building them, then the depth walk, then freeing them. This serves the real emulator (the
CLI's guarded uvicorn, uvloop, the CLI's collector settings) in this process, pinned to CPU 0,
with a 2 ms sleeper task in its own loop that records every stall; a probe process (bench/
attacks.py's, CPU 0, a state report every 20 ms on one keep-alive connection) measures what
a client sees; an attacker process (CPU 1, nice 19) sends, after 3 s of the probe alone and
for ``--seconds``, each hostile shape in turn, one after the other on one connection, to the
send-state fast path, the event endpoint and the public ``POST /auth/user``:

- ``[[],[],...]``, ``{"data":{"a":[{},{},...]}}``, ``[1,1,...]``: 10 MiB each,
- a million distinct keys, ``["a","a",...]``, strings of escapes: 10 MiB each,
- near the bound (legitimate, served): 32,000 undeclared attributes in one state (dropped), a
  10 MiB string (dropped), 130,000 brackets, commas and colons inside one string of a command payload.

Printed (JSON): the answers by shape and status, the longest loop stall that began during a
request of each shape (the attacker's request times and the server's stall times are on
the same monotonic clock), the longest loop stall and its p99.9 during
the attack and before it, the probe's p50/p99/max, the emulator's RSS before and at its peak.
Target (issue 12): no stall over 100 ms, probe p99 under 50 ms.

Usage: ``python bench/hostile_bodies.py [--seconds 20]``. To measure the code before the change,
run a copy of this script placed in an older tree (it serves the tree it sits in).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from attacks import BEFORE_S, provision, rss_mb, start_probe  # noqa: E402 - bench/attacks.py
from emulator import pinned  # noqa: E402 - bench/emulator.py

MiB = 2**20
EMAIL, PASSWORD = "admin@emulator.local", "emulator-password"


def _array(unit: bytes, size: int) -> bytes:
    return b"[" + b",".join([unit] * (size // (len(unit) + 1))) + b"]"


def shapes() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """name -> (body, the paths it goes to: ``state``, ``event``, ``auth``, ``command``)."""
    hostile = ("state", "event", "auth")
    return {
        "[[],[],...] 10 MiB": (_array(b"[]", 10 * MiB - 64), hostile),
        "data.a [{},{},...] 10 MiB": (b'{"data":{"a":' + _array(b"{}", 10 * MiB - 64) + b"}}", hostile),
        "[1,1,...] 10 MiB": (_array(b"1", 10 * MiB - 64), hostile),
        "800,000 keys 10 MiB": (b'{"data":{' + b",".join(b'"k%07d":1' % i for i in range(800_000)) + b"}}", hostile),
        '["a","a",...] 10 MiB': (_array(b'"a"', 10 * MiB - 64), hostile),
        "escaped strings 10 MiB": (_array(b'"\\"\\\\"', 10 * MiB - 64), hostile),
        "32,000 undeclared attributes": (json.dumps({"data": {f"k{i:06d}": i for i in range(32_000)}}).encode(), ("state",)),
        "a 10 MiB string": (json.dumps({"data": {"msg": "x" * (10 * MiB - 100)}}).encode(), ("state",)),
        "130,000 brackets in a string": (json.dumps({"name": "c", "payload": '[{"a": 1}, ' * 16_000}).encode(), ("command",)),
    }


def attacker(url: str, seconds: float, only: str | None = None) -> dict[str, Any]:
    """Build the bodies, log in, make an application and a device, say ``ready``, wait for ``go`` on
    stdin, then send every shape in turn, again and again, for ``seconds``."""
    bodies = {k: v for k, v in shapes().items() if only is None or only in k}
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def call(method: str, path: str, body: bytes, token: str | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    token = json.loads(call("POST", "/auth/user", json.dumps({"email": EMAIL, "password": PASSWORD}).encode(), None)[1])["token"]
    app = json.loads(call("POST", "/applications", b'{"name":"hostile"}', token)[1])["id"]
    device = json.loads(call("POST", f"/applications/{app}/devices", json.dumps(
        {"name": "h", "attributes": [{"name": "temp", "dataType": "number"}]}).encode(), token)[1])["id"]
    paths = {"state": f"/applications/{app}/devices/{device}/state", "event": f"/applications/{app}/events",
             "auth": "/auth/user", "command": f"/applications/{app}/devices/{device}/command"}
    answers: dict[str, dict[str, int]] = {}
    slowest: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []  # (shape -> path, sent, answered): perf_counter is CLOCK_MONOTONIC, as the server's
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, (body, targets) in bodies.items():
            for target in targets:
                if time.monotonic() > end:
                    break
                t0 = time.perf_counter()
                status, _ = call("POST", paths[target], body, None if target == "auth" else token)
                t1 = time.perf_counter()
                ms = (t1 - t0) * 1000
                key = f"{name} -> {target}"
                spans.append((key, t0, t1))
                answers.setdefault(key, {})
                answers[key][str(status)] = answers[key].get(str(status), 0) + 1
                slowest[key] = round(max(slowest.get(key, 0.0), ms), 1)
    return {"answers": answers, "slowest_answer_ms": slowest, "spans": spans}


def serve_and_measure(seconds: float, only: str | None = None) -> dict[str, Any]:
    import uvloop  # noqa: PLC0415

    from harness.emulator.app import create_app  # noqa: PLC0415
    from harness.emulator.cli import bind, uvicorn_config  # noqa: PLC0415
    from harness.emulator.config import EmulatorConfig  # noqa: PLC0415
    from harness.emulator.faults_admin import front  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    config = EmulatorConfig(scratch_db=True)
    app = create_app(config)
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn_config(front(app), True, config))
    lags: list[tuple[float, float]] = []  # (when, stall ms)
    rss: list[float] = []
    out: dict[str, Any] = {}

    async def monitor() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            lags.append((now, (now - t0 - 0.002) * 1000))
            if len(lags) % 10 == 0:
                rss.append(rss_mb(os.getpid()))

    async def orchestrate() -> None:
        loop = asyncio.get_running_loop()
        while not server.started:
            await asyncio.sleep(0.01)
        targets = Path(tempfile.mkdtemp(prefix="hostile-")) / "probe.txt"
        lines = await loop.run_in_executor(None, provision, url, 50)  # 1 report/s each: under the device limit
        targets.write_text("\n".join(lines) + "\n")
        proc = await asyncio.create_subprocess_exec(
            *pinned(1), sys.executable, __file__, "--attacker", url, "--seconds", str(seconds), *(["--only", only] if only else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=lambda: os.nice(19))
        assert proc.stdin is not None and proc.stdout is not None
        await proc.stdout.readline()  # ready: its bodies are built
        base_rss = rss_mb(os.getpid())
        probe = await loop.run_in_executor(None, lambda: start_probe(url, str(targets), seconds))
        await asyncio.sleep(BEFORE_S)  # the probe alone first
        t_attack = time.perf_counter()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        raw = await proc.stdout.read()
        await proc.wait()
        t_done = time.perf_counter()
        probe_out, _ = await loop.run_in_executor(None, probe.communicate)
        before = [ms for t, ms in lags if t < t_attack]
        during = [ms for t, ms in lags if t_attack <= t <= t_done]
        worst = max((ms, t) for t, ms in lags if t_attack <= t <= t_done) if during else (0.0, t_attack)
        attack = json.loads(raw.decode().strip().splitlines()[-1])
        by_shape: dict[str, float] = {}
        for key, sent, answered in attack.pop("spans"):  # a stall ends at its sample's time: it began within the request
            inside = [ms for t, ms in lags if sent <= t - ms / 1000 <= answered]
            by_shape[key] = round(max([by_shape.get(key, 0.0), *inside]), 1)
        attack["longest_stall_ms"] = by_shape
        out.update({"attack": attack,
                    "loop_stall_ms": {"before_attack_max": round(max(before), 1) if before else None,
                                      "during_attack_max": round(worst[0], 1), "max_at_s": round(worst[1] - t_attack, 2),
                                      "during_attack_p99.9": round(sorted(during)[int(len(during) * 0.999)], 1) if during else None,
                                      "stalls_over_50_ms": sum(1 for ms in during if ms > 50),
                                      "stalls_over_100_ms": sum(1 for ms in during if ms > 100)},
                    "attack_seconds": round(t_done - t_attack, 1),
                    "probe": json.loads(probe_out.strip().splitlines()[-1]),
                    "rss_before_mb": round(base_rss, 1), "rss_peak_mb": round(max(rss), 1),
                    "unexpected_errors": app.unexpected_errors})
        server.should_exit = True

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.create_task(monitor())
        loop.create_task(orchestrate())
        await server.serve(sockets=[sock])

    if pinned(0):
        os.sched_setaffinity(0, {0})
    gc.collect()  # as the CLI: the app collects the youngest generation on a timer instead
    gc.freeze()
    gc.disable()
    uvloop.run(run())
    app.store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="how long the shapes are sent, in turn (default: %(default)s)")
    p.add_argument("--only", metavar="TEXT", help="send only the shapes whose name holds TEXT")
    p.add_argument("--attacker", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.attacker:
        print(json.dumps(attacker(args.attacker, args.seconds, args.only)), flush=True)
        return 0
    print(json.dumps(serve_and_measure(args.seconds, args.only)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
