"""How long one data table rows answer near the 20 MB cap holds the emulator's event loop.

The handler runs on the loop (as every handler does), so its time is a stall of every other
request: this measures it in-process, without HTTP, for a page just under the cap
(answered), one just over (refused early) and a filtered query over the whole table.

    .venv/bin/python bench/data_table_rows.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from harness.emulator.app import Emulator
from harness.emulator.config import EmulatorConfig
from harness.emulator.http import Request
from harness.emulator.routes_tables import insert, rows

APP, TABLE = "a" * 24, "b" * 24
ROW_CHARS = 41_943  # the probe's rows at the 20 MiB cap (harness.users.probes.rows_round)


class _Principal:
    kind = "user"


def _request(method: str, suffix: str, query: bytes, body: object) -> Request:
    params = {"applicationId": APP, "dataTableId": TABLE}
    return Request(method, f"/applications/{APP}/data-tables/{TABLE}/rows{suffix}", params, query,
                   {b"content-type": b"application/json"}, orjson.dumps(body) if body is not None else b"")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    emu = Emulator(EmulatorConfig())
    emu.auth.application = lambda principal, app_id: {"id": app_id}  # type: ignore[method-assign]
    for _ in range(6):
        insert(emu, _request("POST", "", b"", [{"blob": "x" * ROW_CHARS} for _ in range(90)]))
    cases = {"get 497 rows (answered, ~20.9 MB)": ("GET", "", b"limit=497", None),
             "get 501 rows (refused, over the cap)": ("GET", "", b"limit=501", None),
             "query matching nothing (scans 540 rows)": ("POST", "/query", b"limit=10", {"blob": "y"})}
    for name, (method, suffix, query, body) in cases.items():
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            try:
                orjson.dumps(rows(emu, _request(method, suffix, query, body)))  # as send_json does
            except Exception as exc:  # noqa: BLE001 - the refusal is the measured outcome
                assert getattr(exc, "status", None) == 400, exc
            times.append(time.perf_counter() - t0)
        print(f"{name}: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
              f"({args.runs} runs)")
    emu.store.close()


if __name__ == "__main__":
    main()
