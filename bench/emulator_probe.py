"""The emulator's CLI with a stall probe, for bench/ceiling.py: who made the loop late, and by how much.

Same arguments as ``python -m harness.emulator``; additionally writes ``$EMULATOR_PROBE_FILE``
(JSON) when ``$EMULATOR_PROBE_FILE.want`` appears (then removes it), with the latest events:

- ``lag``: the event loop was late by >= 5 ms for a 5 ms sleep; with the main thread's
  CPU time over that interval. Lag with as much CPU is the emulator's own work (a stall
  of its making); lag without it is time the thread was not running (another process
  on its core, or blocked);
- ``gc``: each garbage collection, wall and CPU ms, its generation;
- ``wal``: a WAL reset of the file database (sampled every 0.1 s) and how long commits
  waited for it;
- ``batches``: the store's count of group commits so far (sampled every 0.1 s).

Its own cost: a 5 ms timer on the loop (~200 wake-ups a second) and a callback per
collection. Never used by the emulator itself; only bench/ceiling.py starts it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness.emulator.app as app_module  # noqa: E402
from harness.emulator.cli import main  # noqa: E402

TICK_S = 0.005
KEEP = 20_000  # events kept (the newest)


class Probe:
    def __init__(self, out: str) -> None:
        self.out = out
        self.events: list[tuple[float, str, float, float]] = []  # (wall time, kind, ms, cpu ms)
        self.app: Any = None
        self._gc_start = (0.0, 0.0)
        self._main = threading.get_ident()

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._main:
            return
        if phase == "start":
            self._gc_start = (time.perf_counter(), time.thread_time())
        else:
            wall = (time.perf_counter() - self._gc_start[0]) * 1000
            cpu = (time.thread_time() - self._gc_start[1]) * 1000
            self.events.append((time.time(), f"gc{info['generation']}", wall, cpu))

    async def heartbeat(self) -> None:
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            await asyncio.sleep(TICK_S)
            lag = (time.perf_counter() - t0 - TICK_S) * 1000
            if lag >= 5:
                self.events.append((time.time(), "lag", lag, (time.thread_time() - c0) * 1000))

    def dump(self) -> None:
        """Note each WAL reset (sampled every 0.1 s); write the events when asked (``<file>.want``
        appears): one write per measured run, off the loop."""
        want = self.out + ".want"
        resets = 0
        while True:
            time.sleep(0.1)
            del self.events[:-KEEP]
            checkpointer = getattr(getattr(self.app, "store", None), "_checkpointer", None)
            now_resets = getattr(checkpointer, "resets", 0)
            batches = getattr(getattr(self.app, "store", None), "batches", None)
            if batches is not None:  # group commits so far: requests per commit over a window
                self.events.append((time.time(), "batches", float(batches), 0.0))
            if now_resets != resets:  # a reset since the last look: how long commits waited for it
                self.events.append((time.time(), "wal", getattr(checkpointer, "held_s", 0.0) * 1000, now_resets - resets))
                resets = now_resets
            if not os.path.exists(want):
                continue
            data = {"events": self.events[-KEEP:]}
            tmp = self.out + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.out)
            os.unlink(want)


def run() -> int:
    probe = Probe(os.environ["EMULATOR_PROBE_FILE"])
    gc.callbacks.append(probe.on_gc)
    original = app_module.Emulator._lifespan

    async def lifespan(self: Any, receive: Any, send: Any) -> None:
        probe.app = self
        asyncio.get_running_loop().create_task(probe.heartbeat())
        threading.Thread(target=probe.dump, name="probe", daemon=True).start()
        await original(self, receive, send)

    app_module.Emulator._lifespan = lifespan  # type: ignore[method-assign]
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
