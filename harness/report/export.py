"""``losant-load export RUN_DIR``: a run's raw samples for other tools (CSV or JSON Lines).

The run folder keeps samples as packed numpy chunks, which only this harness reads. Teams
want them in their own notebooks, databases and dashboards, so this writes one record
per request with names instead of codes, streaming in slices so a run of tens of millions
of requests never needs a second copy in memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from harness.record import Samples, read_samples

FIELDS = ("op", "key", "planned", "sent", "latency_ms", "status", "bytes", "error")
FORMATS = ("csv", "jsonl")
SLICE = 100_000


def _records(samples: Samples) -> Iterator[list[object]]:
    """Rows with names for codes; times as epoch seconds, latency in milliseconds (what people read)."""
    ops = np.array(samples.op_names + ("",), dtype=object)
    keys = np.array(samples.key_names + ("",), dtype=object)
    kinds = np.array(samples.error_kinds + ("",), dtype=object)
    for lo in range(0, len(samples), SLICE):
        hi = min(lo + SLICE, len(samples))
        op = ops[np.minimum(samples.op[lo:hi], len(ops) - 1)]
        key = keys[np.clip(samples.key[lo:hi], 0, len(keys) - 1)]
        error = kinds[np.minimum(samples.error[lo:hi], len(kinds) - 1)]
        planned = np.round(samples.planned[lo:hi], 6).tolist()
        sent = np.round(samples.sent[lo:hi], 6).tolist()
        latency = np.round(samples.latency[lo:hi] * 1000.0, 3).tolist()
        status = samples.status[lo:hi].tolist()
        nbytes = samples.nbytes[lo:hi].tolist()
        yield from (list(r) for r in zip(op, key, planned, sent, latency, status, nbytes, error))


def write(samples: Samples, fmt: str, out: IO[str]) -> int:
    """Write every sample to ``out``; returns how many were written."""
    n = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for row in _records(samples):
            writer.writerow(row)
            n += 1
    else:
        dumps = json.dumps
        for row in _records(samples):
            out.write(dumps(dict(zip(FIELDS, row)), separators=(",", ":")) + "\n")
            n += 1
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="losant-load export",
        description="Write a run's raw samples, one record per request: op, key (device, application, ...), "
                    "planned and actual send time (epoch seconds), latency_ms, status, bytes, error kind "
                    "('' when the call succeeded).")
    p.add_argument("run_dir", type=Path, help="a run folder, e.g. reports/<run-id>")
    p.add_argument("--format", choices=FORMATS, default="csv", help="csv (with a header row) or jsonl (default: %(default)s)")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    return p


def main_export(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not (args.run_dir / "samples").is_dir():
        print(f"losant-load export: {args.run_dir}: not a run folder (no samples/ inside)", file=sys.stderr)
        return 2
    try:
        samples = read_samples(args.run_dir)
    except (OSError, ValueError) as exc:
        print(f"losant-load export: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        write(samples, args.format, sys.stdout)
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            n = write(samples, args.format, fh)
        tmp.replace(args.output)
    except OSError as exc:
        print(f"losant-load export: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{n} samples written to {args.output}", file=sys.stderr)
    return 0
