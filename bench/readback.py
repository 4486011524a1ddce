"""Benchmark: the integrity read-back of every accepted state of a large fleet.

Starts the emulator (file database), provisions N devices, writes K states to each (one
batch call per device), then reads every state back the way a run does
(``harness.readback.read_back``): bulk time-series queries first, device-by-device Get
State only where a bulk answer does not confirm a device. With ``--compare`` it also
reads every device one by one (the way the harness read its 25-device sample before),
for scale. Prints wall time, the harness's CPU and peak RSS, and the integrity statement.

Usage: python bench/readback.py [--devices 20000] [--states 5] [--compare]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.process import EmulatorProcess  # noqa: E402
from harness.fleet import Secret, plan_devices  # noqa: E402
from harness.provision import Api, Login, provision  # noqa: E402
from harness.readback import AcceptedLog, read_back  # noqa: E402
from harness.scenario import parse_scenario  # noqa: E402

EMAIL, PASSWORD = "readback@example.com", "readback-password-1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--states", type=int, default=5, help="states per device")
    ap.add_argument("--compare", action="store_true", help="also read every device one by one")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="readback-")
    with EmulatorProcess(email=EMAIL, password=PASSWORD, quiet=True, db=os.path.join(folder, "emulator.db")) as emu:
        sc = parse_scenario({"name": "readback", "fleet": {"classes": [{
            "name": "meters", "count": args.devices, "report_interval": "60s",
            "attributes": {"kwh": {"type": "random_walk", "start": 100, "step": 0.5, "min": 0, "max": 1000}}}]}})
        t0 = time.time()
        fleet = provision(emu.url, Login(email=EMAIL, password=Secret(PASSWORD)), "readback", "bench", plan_devices(sc))
        print(f"provisioned {args.devices:,} devices in {time.time() - t0:.0f} s", flush=True)
        now = int(time.time() * 1000) - 3_600_000
        log = AcceptedLog(now)
        api = Api(emu.url, token=str(fleet.user_token))

        def send(item: tuple[int, object]) -> tuple[str, list[int]]:
            i, device = item
            times = [now + 60_000 * k + i % 60_000 for k in range(args.states)]
            api.call("POST", f"/applications/{fleet.application_id}/devices/{device.id}/state", "writing states",
                     json=[{"time": t, "data": {"kwh": 1.5}} for t in times])
            return device.id, times

        t0 = time.time()
        with ThreadPoolExecutor(8) as ex:
            for device_id, times in ex.map(send, enumerate(fleet.devices)):
                log.add(device_id, times)
        api.close()
        print(f"wrote {log.total():,} states in {time.time() - t0:.0f} s", flush=True)
        for bulk in (True, False) if args.compare else (True,):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.time()
            block = read_back(emu.url, fleet, log, "auto", {"meters": "kwh"}, bulk=bulk)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
            print(f"\n{'bulk, then device by device where unconfirmed' if bulk else 'device by device'}: "
                  f"{time.time() - t0:.1f} s wall, harness CPU {cpu:.1f} s, harness peak RSS {r1.ru_maxrss / 1024:.0f} MB")
            print(f"  {block['statement']}")
            print(f"  {block['reads']}")


if __name__ == "__main__":
    main()
