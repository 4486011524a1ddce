"""Benchmark: the emulator's send-state hot path against a bare raw-ASGI app on the same server.

Both run on uvicorn (uvloop + httptools, one worker, access log off), pinned to CPU 0
with ``taskset`` when available; ``wrk`` runs pinned to CPU 1.

(a) bare: parses the JSON body and answers ``{"success": true}``.
Runs alternate (bare, emulator, bare, ...) so that noise from other load hits both alike.
(b) emulator: ``POST /applications/A/devices/D/state`` over many devices, each with its
    own device token (provisioned through the API first); a Lua script rotates the
    devices round-robin so each stays under its 30 per 15 s limit (the device count is
    chosen from the measured bare rate: devices >= rate / 1.5).
Prints req/s (median of ``--runs``) for both, the ratio (target >= 0.5), the server CPU
time per request (utime + stime of the server process from /proc over each measured run,
divided by its requests: far less sensitive to other load on a shared machine than req/s)
and its ratio, the count of non-2xx answers and of wrk socket errors (both must be 0), and
the latency median at half the emulator's max rate. wrk2 is not
in Debian, so the half-rate run is wrk with a per-connection think time (Lua
``delay()``): closed loop, rate = connections / (delay + latency); the achieved rate
is printed next to the median.

Usage: ``python bench/emulator.py [--devices N] [--duration S] [--connections C]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"data":{"temp":21.5}}'

BARE_APP = '''
import orjson, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        m = await receive()
        body += m.get("body", b"")
        more = m.get("more_body", False)
    orjson.loads(body or b"null")
    out = orjson.dumps({"success": True})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 0)); s.listen(2048)
print("bare listening on http://127.0.0.1:%d " % s.getsockname()[1], flush=True)
cfg = uvicorn.Config(app, loop="uvloop", http="httptools", access_log=False, log_level="error", lifespan="off")
uvicorn.Server(cfg).run(sockets=[s])
'''

LUA = '''
local lines = {}
local i = 0
local think = %(think)d
init = function(args)
  for line in io.lines("%(targets)s") do lines[#lines + 1] = line end
  i = math.random(#lines)
end
request = function()
  i = i %% #lines + 1
  local path, token = lines[i]:match("([^ ]+) ([^ ]+)")
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, '%(body)s')
end
%(delay)s
'''


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+) ", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def measured(proc: subprocess.Popen[str], url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    """One wrk run plus the server's CPU microseconds per request (robust to a busy machine)."""
    before = cpu_seconds(proc.pid)
    result = wrk(url, script, duration, connections)
    result["cpu_us"] = (cpu_seconds(proc.pid) - before) / max(result["rps"] * duration, 1.0) * 1e6
    return result


def wrk(url: str, script: str, duration: int, connections: int, latency: bool = False) -> dict[str, float]:
    cmd = pinned(1) + ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script, url]
    if latency:
        cmd.insert(-1, "--latency")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result = {"rps": rps, "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
              "errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0}
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out)
    if p50:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
        result["p50_ms"] = float(p50.group(1)) * scale
    return result


def cpu_runs(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['cpu_us']:.1f}" for r in runs)


def provision(url: str, devices: int) -> list[str]:
    import httpx  # noqa: PLC0415

    with httpx.Client(base_url=url, timeout=30) as c:
        tok = c.post("/auth/user", json={"email": "admin@emulator.local", "password": "emulator-password"}).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        app = c.post("/applications", json={"name": "bench"}, headers=h).json()["id"]
        key = c.post(f"/applications/{app}/keys", json={}, headers=h).json()
        lines = []
        for i in range(devices):
            dev = c.post(f"/applications/{app}/devices", headers=h,
                         json={"name": f"b{i}", "attributes": [{"name": "temp", "dataType": "number"}]}).json()["id"]
            dtok = c.post("/auth/device", json={"deviceId": dev, "key": key["key"], "secret": key["secret"]}).json()["token"]
            lines.append(f"/applications/{app}/devices/{dev}/state {dtok}")
    return lines


def script(tmp: Path, name: str, targets: list[str], think_ms: int = 0) -> str:
    tfile = tmp / f"{name}.txt"
    tfile.write_text("\n".join(targets) + "\n")
    delay = f"delay = function() return {think_ms} end" if think_ms else ""
    path = tmp / f"{name}.lua"
    path.write_text(LUA % {"targets": tfile, "body": BODY, "think": think_ms, "delay": delay})
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=0, help="devices to rotate (default: from the bare rate)")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (Debian: apt-get install -y wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="emubench-"))

    bare, bare_url = start(pinned(0) + [sys.executable, "-c", BARE_APP])
    emu, emu_url = start(pinned(0) + [sys.executable, "-m", "harness.emulator", "--port", "0", "--quiet", "--no-mqtt"])
    try:
        bare_script = script(tmp, "bare", ["/state x"])
        wrk(bare_url, bare_script, 2, args.connections)  # warm-up, and a first rate to size the fleet
        first = wrk(bare_url, bare_script, 3, args.connections)["rps"]
        devices = args.devices or max(2000, int(first / 1.5))
        t0 = time.monotonic()
        targets = provision(emu_url, devices)
        provision_s = time.monotonic() - t0
        emu_script = script(tmp, "emu", targets)
        wrk(emu_url, emu_script, 2, args.connections)  # warm-up (charges at most a few calls per device)
        time.sleep(15)  # let every device's window empty
        # alternate bare and emulator runs so machine noise hits both alike
        bare_all, runs = [], []
        for _ in range(args.runs):
            bare_all.append(measured(bare, bare_url, bare_script, args.duration, args.connections))
            runs.append(measured(emu, emu_url, emu_script, args.duration, args.connections))
        bare_runs = [r["rps"] for r in bare_all]
        emu_rps = statistics.median(r["rps"] for r in runs)
        non2xx = sum(r["non2xx"] for r in runs)
        errors = sum(r.get("errors", 0.0) for r in runs + bare_all)
        half = emu_rps / 2
        think = 5  # ms per request per connection
        conns = max(1, round(half * think / 1000))
        half_script = script(tmp, "half", targets, think_ms=think)
        probe = wrk(emu_url, half_script, 3, conns, latency=True)  # calibrate: latency adds to the think time
        conns = max(1, round(conns * half / max(probe["rps"], 1.0)))
        half_runs = [wrk(emu_url, half_script, args.duration, conns, latency=True) for _ in range(args.runs)]
    finally:
        for proc in (bare, emu):
            proc.terminate()
            proc.wait(10)
    bare_rps = statistics.median(bare_runs)
    pair_ratio = statistics.median(r["rps"] / b for r, b in zip(runs, bare_runs))
    bare_cpu = statistics.median(r["cpu_us"] for r in bare_all)
    emu_cpu = statistics.median(r["cpu_us"] for r in runs)
    half_p50 = statistics.median(r.get("p50_ms", float("nan")) for r in half_runs)
    half_rate = statistics.median(r["rps"] for r in half_runs)
    print(f"bare raw ASGI      : {bare_rps:9.0f} req/s  (runs: {', '.join(f'{x:.0f}' for x in bare_runs)})")
    print(f"emulator sendState : {emu_rps:9.0f} req/s  (runs: {', '.join(str(round(r['rps'])) for r in runs)}; "
          f"{devices} devices; non-2xx {int(non2xx)}; provisioning {provision_s:.1f} s)")
    print(f"ratio              : {emu_rps / bare_rps:9.2f}  (target >= 0.50; median of per-pair ratios {pair_ratio:.2f})")
    print(f"server CPU/request : bare {bare_cpu:.1f} us, emulator {emu_cpu:.1f} us (ratio {bare_cpu / emu_cpu:.2f}; "
          f"less sensitive to other load than req/s; runs: bare {cpu_runs(bare_all)}, emulator {cpu_runs(runs)})")
    print(f"wrk socket errors  : {int(errors)} (connect/read/write/timeout, all measured runs; must be 0)")
    print(f"latency p50 at half: {half_p50:9.3f} ms  (achieved {half_rate:.0f} req/s of {half:.0f} target; "
          f"{conns} connections x {think} ms think time, closed loop)")
    print(f"pinning            : server {'CPU 0' if pinned(0) else 'unpinned'}, wrk {'CPU 1' if pinned(1) else 'unpinned'}, "
          f"{args.duration} s per run, medians of {args.runs}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
