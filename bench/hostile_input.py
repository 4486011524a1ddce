"""Benchmark: one hostile request at a time against a real emulator, and what it costs everyone else.

Issue 12 found single requests that froze the event loop: a ``filter`` glob backtracking for
24 s, 3,000 objects in ``requestedScopes`` of the public ``POST /auth/user`` (85 s in
jsonschema), a 20,000-digit ``start`` (38 s in a number regex), and eight inputs that answered
500. Each input here is sent ``--runs`` times to an ``EmulatorProcess`` on loopback while a probe
thread sends ``GET /applications`` back to back; printed per input: its answer status, its own
latency (median and max), the probe's p99 and worst latency while it ran (the stall others saw)
and the emulator's largest RSS meanwhile.
Target (docs/LIMITS.md "Input bounds"): every answer < 500, no stall over 100 ms, probe p99 under 50 ms.

Usage: ``python bench/hostile_input.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.emulator.process import EmulatorProcess  # noqa: E402


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _and(depth: int) -> str:
    return '{"$and":[' * depth + "{}" + "]}" * depth


def cases(a: str, d: str, user: dict[str, str], device: dict[str, str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    json_h = {**user, "content-type": "application/json"}
    state, devices = f"/applications/{a}/devices/{d}/state", f"/applications/{a}/devices"
    return [
        ("filter ****************x (device token)", "GET", devices, {"params": {"filter": "*" * 16 + "x"}, "headers": device}),
        ("filter *s*e*n*s*o*r*s*-*0*0*5*0*x", "GET", devices, {"params": {"filter": "*" + "*".join("sensors-0050") + "*x"}, "headers": device}),
        ("state 1,000 nested [", "POST", state, {"content": b"[" * 1000 + b"]" * 1000, "headers": json_h}),
        ("command payload 254 deep", "POST", f"/applications/{a}/devices/{d}/command",
         {"content": b'{"name":"c","payload":' + _nest(254) + b"}", "headers": json_h}),
        ("event data 254 deep", "POST", f"/applications/{a}/events",
         {"content": b'{"level":"info","subject":"s","data":' + _nest(254) + b"}", "headers": json_h}),
        ("device query $and 127 deep", "GET", devices, {"params": {"query": _and(127)}, "headers": user}),
        ("time series deviceQuery 500 deep", "POST", f"/applications/{a}/data/time-series-query",
         {"content": ('{"deviceQuery":' + _and(500) + "}").encode(), "headers": json_h}),
        ("tagFilter + [0] x 500", "GET", devices, {"params": {"tagFilter" + "[0]" * 500: "x"}, "headers": user}),
        ("page=1e300", "GET", devices, {"params": {"page": "1e300"}, "headers": user}),
        ("since=2**63", "GET", state, {"params": {"since": str(2**63)}, "headers": user}),
        ("auth/user 3,000 object scopes", "POST", "/auth/user",
         {"json": {"email": "a@b.c", "password": "12345678", "requestedScopes": [{"a": i} for i in range(3000)]}}),
        ("multi-command 5,000 bad deviceIds", "POST", f"/applications/{a}/devices/command",
         {"json": {"name": "c", "deviceIds": [0] * 5000}, "headers": user}),
        ("start = 20,000 digits + x", "GET", state, {"params": {"start": "1" * 20_000 + "x"}, "headers": user}),
        ("state time 'Mon Jan 1 2016' + 100,000 spaces", "POST", state,
         {"json": {"data": {"temp": 1}, "time": "Mon Jan 1 2016" + " " * 100_000 + "x"}, "headers": user}),
    ]


class Probe(threading.Thread):
    """Back-to-back cheap requests; ``latencies`` (seconds) since the last clear, and the emulator's
    largest RSS seen after each (``pid``'s /proc status)."""

    def __init__(self, url: str, headers: dict[str, str], pid: int) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers=headers, timeout=120)
        self.latencies: list[float] = []
        self.rss_peak_mb = 0.0
        self.pid = pid
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            self.client.get("/applications")
            self.latencies.append(time.perf_counter() - t)
            self.rss_peak_mb = max(self.rss_peak_mb, rss_mb(self.pid))

    def clear(self) -> None:
        self.latencies = []
        self.rss_peak_mb = 0.0

    def p99_ms(self) -> float:
        lat = sorted(self.latencies)
        return lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with EmulatorProcess() as emu:
        c = httpx.Client(base_url=emu.url, timeout=300)
        user = {"Authorization": "Bearer " + c.post("/auth/user", json={"email": emu.email, "password": emu.password}).json()["token"]}
        a = c.post("/applications", json={"name": "hostile"}, headers=user).json()["id"]
        ids = [c.post(f"/applications/{a}/devices", headers=user, json={
            "name": f"sensors-{n:04d}", "attributes": [{"name": "temp", "dataType": "number"}]}).json()["id"] for n in range(1, 51)]
        key = c.post(f"/applications/{a}/keys", json={}, headers=user).json()
        token = c.post("/auth/device", json={"deviceId": ids[0], "key": key["key"], "secret": key["secret"],
                                             "requestedScopes": ["devices.get"]}).json()["token"]
        assert emu.pid is not None
        probe = Probe(emu.url, user, emu.pid)
        probe.start()
        print(f"emulator RSS at the start: {rss_mb(emu.pid):.0f} MB")
        print(f"{'input':48s} {'status':>6s} {'median ms':>10s} {'max ms':>8s} {'probe p99 ms':>13s} {'probe worst ms':>15s} "
              f"{'RSS peak MB':>12s}")
        for name, method, path, kw in cases(a, ids[1], user, {"Authorization": f"Bearer {token}"}):
            times, statuses = [], set()
            probe.clear()
            for _ in range(args.runs):
                t = time.perf_counter()
                statuses.add(c.request(method, path, **kw).status_code)
                times.append(time.perf_counter() - t)
            worst = max(probe.latencies, default=float("nan")) * 1000
            print(f"{name:48s} {','.join(map(str, sorted(statuses))):>6s} {statistics.median(times) * 1000:10.1f} "
                  f"{max(times) * 1000:8.1f} {probe.p99_ms():13.1f} {worst:15.1f} {probe.rss_peak_mb:12.0f}")
        probe.stop.set()
        probe.join()


if __name__ == "__main__":
    main()
