"""A lean fleet generator for bench/ceiling.py: one keep-alive connection per device, on uvloop.

Why not wrk (what bench/ceiling.py used before): wrk keeps its timers in an unsorted list
and scans it twice per loop iteration, so with one think-time timer per connection its
cost per request grows with the fleet (wrk -t1 used 35-60% of its core at 4,000
connections and ~3,000 req/s); and it opens every connection at once and counts the
first seconds (the emulator accepting thousands of connections) in its latencies. Here:

- connections open at ``--ramp`` per second; only after all are open and one more
  interval has passed does the measured window of ``--seconds`` start;
- each device reports on its own connection on an open-loop timeline: the next send is
  planned ``interval x U(0.5, 1.5)`` after the previous *planned* one (the jitter of the
  old wrk script, so the fleet never reports in lock-step); a send that finds its previous
  request still unanswered goes out when the answer arrives;
- per request it records the latency from the send and from the planned time (the
  second includes any wait behind a slow previous answer: no coordinated omission), and
  the generator's own lateness (send - plan, for sends not held back by their connection):
  the evidence that the generator itself kept up;
- each request is prebuilt bytes (path and device token), the answer is parsed by hand
  (status line and content-length): a few microseconds of Python per request;
- garbage collection is off once the connections are open (a full collection over 10,000
  devices paused the generator 20-25 ms, and answers arriving meanwhile were timed late).

Prints ``WINDOW`` and ``END`` as the measured window starts and ends, then one JSON object
(latency percentiles in ms, counts, the generator's lateness and CPU share).
Usage (normally run by bench/ceiling.py): python bench/ceiling_generator.py URL DEVICES_FILE N
[--interval 1] [--seconds 10] [--ramp 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import time
from array import array
from typing import Any
from urllib.parse import urlsplit

import numpy as np

BODY = b'{"data": {"v": 0.5}}'
CONNECT_TIMEOUT_S = 10.0


class Device(asyncio.Protocol):
    """One device on one keep-alive connection; ``stats`` is shared by all of them."""

    def __init__(self, request: bytes, interval: float, run: Run) -> None:
        self.request = request
        self.interval = interval
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.planned = 0.0
        self.sent = 0.0
        self.busy = False
        self.held = False  # the planned time came while busy: send as soon as the answer is in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.open += 1
        # the first report at a random phase of one interval: the fleet's phases are spread
        self.planned = time.perf_counter() + random.uniform(0.0, self.interval)
        self.run.loop.call_later(self.planned - time.perf_counter(), self.fire)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.open -= 1
        if not self.run.stopping:
            self.run.lost += 1

    def fire(self) -> None:
        if self.run.stopping or self.transport is None or self.transport.is_closing():
            return
        if self.busy:
            self.held = True
            return
        self.send(late_ok=False)

    def send(self, late_ok: bool) -> None:
        self.sent = now = time.perf_counter()
        run = self.run
        if not late_ok and self.planned >= run.window_start:
            run.lateness.append(now - self.planned)
        self.busy = True
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        head = buf[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else len(head)]) if at >= 0 else 0
        if len(buf) < end + 4 + length:
            self.buf = buf
            return
        self.buf = buf[end + 4 + length:]
        now = time.perf_counter()
        run = self.run
        if self.planned >= run.window_start and self.planned < run.window_end:
            run.from_send.append(now - self.sent)
            run.from_plan.append(now - self.planned)
            if buf[9:12] != b"200":
                run.errors += 1
        self.busy = False
        self.planned += self.interval * random.uniform(0.5, 1.5)
        if self.held or self.planned <= now:  # the next planned time has passed while waiting
            self.held = False
            self.send(late_ok=True)
        else:
            run.loop.call_later(self.planned - now, self.fire)


class Run:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open = 0
        self.lost = 0
        self.errors = 0
        self.connect_errors = 0
        self.stopping = False
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.from_send: array[float] = array("d")
        self.from_plan: array[float] = array("d")
        self.lateness: array[float] = array("d")


def pct_ms(values: array[float], q: float) -> float:
    if not len(values):
        return float("nan")
    return float(np.quantile(np.frombuffer(values, dtype=np.float64), q, method="inverted_cdf") * 1000)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    lines = [line.split() for line in open(args.devices, encoding="utf-8") if line.strip()]
    if args.n > len(lines):
        raise SystemExit(f"--n {args.n}: only {len(lines)} devices in {args.devices}")
    run = Run(loop)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    protocols: list[Device] = []
    step = max(1, args.ramp // 100)  # open connections in slices every 10 ms
    for i in range(0, args.n, step):
        batch = []
        for path, token in lines[i:i + step]:
            request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                       f"Authorization: Bearer {token}\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY
            dev = Device(request, args.interval, run)
            protocols.append(dev)
            # a saturated server's full accept queue makes the kernel retry SYNs for minutes: fail the step instead
            batch.append(asyncio.wait_for(loop.create_connection(lambda d=dev: d, host, port), timeout=CONNECT_TIMEOUT_S))
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, BaseException):
                run.connect_errors += 1
        await asyncio.sleep(max(0.0, started + (i + step) / args.ramp - time.perf_counter()))
    ramp_s = time.perf_counter() - started
    # No collections from here on: a full one walks every device's objects (20-25 ms at 10,000
    # devices, seen as the generator's lateness p99), and an answer that arrives meanwhile would
    # be timed late by the generator's pause, not the emulator's. A request leaves no cycles.
    gc.collect()
    gc.freeze()
    gc.disable()
    await asyncio.sleep(args.interval * 1.5)  # every device has reported at least once
    run.window_start = time.perf_counter()
    run.window_end = run.window_start + args.seconds
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    print("WINDOW", flush=True)  # bench/ceiling.py samples the emulator's CPU between the two marks
    await asyncio.sleep(args.seconds)
    cpu2 = resource.getrusage(resource.RUSAGE_SELF)
    print("END", flush=True)
    await asyncio.sleep(min(2.0, args.interval * 2))  # answers of the window's last sends
    run.stopping = True
    for dev in protocols:
        if dev.transport is not None:
            dev.transport.close()
    await asyncio.sleep(0.2)

    def cpu(a: Any, b: Any) -> float:
        return (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)

    sent_in_window = len(run.from_send)
    return {
        "devices": args.n, "interval": args.interval, "seconds": args.seconds,
        "connections_open": args.n - run.connect_errors, "connect_errors": run.connect_errors, "lost": run.lost,
        "ramp_s": round(ramp_s, 2), "requests": sent_in_window, "rps": sent_in_window / args.seconds, "errors": run.errors,
        "p50": pct_ms(run.from_send, 0.5), "p99": pct_ms(run.from_send, 0.99), "p999": pct_ms(run.from_send, 0.999),
        "max": pct_ms(run.from_send, 1.0),
        "p99_from_plan": pct_ms(run.from_plan, 0.99),
        "gen_lateness_p50": pct_ms(run.lateness, 0.5), "gen_lateness_p99": pct_ms(run.lateness, 0.99),
        "gen_cpu_share": cpu(cpu1, cpu2) / args.seconds, "gen_cpu_ramp_s": cpu(cpu0, cpu1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("devices", help="file of 'PATH TOKEN' lines, one per device")
    ap.add_argument("n", type=int, help="devices (= connections) to run")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ramp", type=int, default=2000, help="connections opened per second")
    args = ap.parse_args()
    try:  # a socket per device
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    except (ValueError, OSError):
        pass
    try:
        import uvloop

        result = uvloop.run(main_async(args))
    except ImportError:
        result = asyncio.run(main_async(args))
    print(json.dumps(result), flush=True)
    os._exit(0)  # skip tearing down thousands of transports


if __name__ == "__main__":
    sys.exit(main())
