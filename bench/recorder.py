"""What one ``Recorder.record`` call costs, next to ``list.append``.

    .venv/bin/python bench/recorder.py [--calls 2000000]

Prints nanoseconds per call (best of 5 runs) for:
- ``list.append(x)``: the floor for any Python-level per-request work;
- ``list.append((8-tuple))``: the naive recorder (keeps a Python object per sample);
- ``Recorder.record(...)``: ours (one ``struct.pack_into`` into a preallocated buffer);
and the ratio of ours to ``list.append``. Then the pauses the hot path can see:
sealing a full chunk in memory and spilling a 1,000,000-row chunk to disk (under
gevent these block the event loop once per chunk), and drain + ingest per row.
The end-to-end run benchmark lives elsewhere; this is the micro part only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.record import Recorder  # noqa: E402

ARGS = "(op, key, planned, sent, latency, status, nbytes, error)"  # variables, as a caller passes them
VALUES = {"op": 0, "key": 17, "planned": 1.79e9, "sent": 1.79e9 + 0.001, "latency": 0.0123, "status": 200,
          "nbytes": 123, "error": 0}


def per_call(stmt: str, env: dict, calls: int) -> float:
    return min(timeit.repeat(stmt, globals=env, number=calls, repeat=5)) / calls * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2_000_000)
    args = ap.parse_args()
    n = args.calls
    plain: list = []
    tuples: list = []
    rec = Recorder(None, chunk_rows=n * 6)  # large enough that no chunk seals during timing
    rec.op_code("device.sendState")
    t_append = per_call("append(latency)", {"append": plain.append, **VALUES}, n)
    plain.clear()
    t_tuple = per_call(f"append({ARGS})", {"append": tuples.append, **VALUES}, n)
    tuples.clear()
    t_record = per_call(f"record{ARGS}", {"record": rec.record, **VALUES}, n)
    print(f"list.append(x)            {t_append:7.1f} ns/call")
    print(f"list.append(8-tuple)      {t_tuple:7.1f} ns/call  (keeps a Python tuple per sample, ~120 B)")
    print(f"Recorder.record(...)      {t_record:7.1f} ns/call  (41 B per sample, no Python object)")
    print(f"ratio record / list.append: {t_record / t_append:.1f}x;  record / append(tuple): "
          f"{t_record / t_tuple:.2f}x")

    chunk = 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        disk = Recorder(Path(tmp), chunk_rows=chunk)
        record = disk.record
        codes = [disk.op_code("device.sendState")] + [disk.key_code(f"dev-{k}") for k in range(1024)]
        for i in range(chunk):
            record(codes[0], i & 1023, 1.79e9 + i, 1.79e9 + i, 0.01, 200, 100, 0)
        start = time.perf_counter()
        disk.spill()
        spill = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (Path(tmp) / "samples").glob("chunk-*.npz"))
        print(f"spill of {chunk:,} rows to disk: {spill * 1000:.0f} ms ({size / 1e6:.0f} MB, "
              f"{spill / chunk * 1e9:.0f} ns/row amortised)")
    mem = Recorder(None, chunk_rows=chunk)
    codes = [mem.op_code("device.sendState")] + [mem.key_code(f"dev-{k}") for k in range(1024)]
    for i in range(chunk):
        mem.record(codes[0], i & 1023, 1.79e9 + i, 1.79e9 + i, 0.01, 200, 100, 0)
    start = time.perf_counter()
    batch = mem.drain()
    drain = time.perf_counter() - start
    master = Recorder(None)
    start = time.perf_counter()
    master.ingest(batch)
    ingest = time.perf_counter() - start
    print(f"drain {chunk:,} rows: {drain * 1000:.0f} ms ({len(batch['rows']) / 1e6:.0f} MB); "
          f"ingest with remap: {ingest * 1000:.0f} ms")


if __name__ == "__main__":
    main()
