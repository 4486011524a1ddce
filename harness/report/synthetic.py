"""A synthetic run folder, for the report's tests, its benchmark and demos.

Why it exists: the report must be tested on a run whose every number is known,
without a server or Locust, and benchmarked at 10 million samples in seconds. It
writes through the real contract (``Recorder.ingest`` → ``close`` → ``read_samples``),
and ``summary.json`` through ``harness.analysis.summary`` when asked, so the folder
is what a real run leaves behind.

The shape: ``devices`` devices ramp up over the first ``ramp`` of the run and send
state every ``1/rate`` s (with phase jitter); operators read devices; one application
posts events. Latency is lognormal (``latency_ms`` median) scaled by ``latency_scale``;
lateness is exponential with rare stalls; a fraction of calls get 429, 500, or no answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from harness.record import CONNECTION, HTTP, NO_ERROR, ROW_DTYPE, THROTTLED, FORMAT_VERSION, Recorder

OPS = ("device.sendState", "device.get", "events.post")


@dataclass(frozen=True)
class Shape:
    devices: int = 50
    duration: float = 60.0
    rate: float = 1.9  # sendState per device per second
    ramp: float = 0.2  # fraction of the run over which devices start
    operators: int = 4
    operator_rate: float = 2.0
    events_rate: float = 0.9
    latency_ms: float = 12.0
    latency_scale: float = 1.0
    state_scale: float = 1.0  # device.sendState only: latency x this (a slower state call)
    state_add_ms: float = 0.0  # device.sendState only: + this many ms
    throttle_fraction: float = 0.002
    error_fraction: float = 0.001
    stall_fraction: float = 0.0005
    seed: int = 1
    start: float = 1_795_000_000.0  # 2026-11-18
    name: str = "synthetic"  # the scenario's name in scenario.yaml


def _stream(rng: np.random.Generator, n_keys: int, rate: float, shape: Shape, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planned times and key index of ``n_keys`` periodic senders (open loop, phase-jittered)."""
    per = np.maximum(np.floor((shape.duration - starts) * rate).astype(np.int64), 0)
    keys = np.repeat(np.arange(n_keys), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    phase = rng.uniform(0, 1 / rate, n_keys)
    planned = shape.start + starts[keys] + phase[keys] + k / rate
    return planned, keys


def make_rows(shape: Shape) -> tuple[np.ndarray, list[str], list[str]]:
    """All rows (``ROW_DTYPE``) sorted by planned time, with op and key names."""
    rng = np.random.default_rng(shape.seed)
    dev_start = np.linspace(0, shape.duration * shape.ramp, shape.devices, endpoint=False)
    p1, k1 = _stream(rng, shape.devices, shape.rate, shape, dev_start)
    p2, k2 = _stream(rng, shape.operators, shape.operator_rate, shape, np.zeros(shape.operators))
    p3, k3 = _stream(rng, 1, shape.events_rate, shape, np.zeros(1))
    planned = np.concatenate((p1, p2, p3))
    op = np.concatenate((np.zeros(len(p1)), np.ones(len(p2)), np.full(len(p3), 2))).astype(np.uint16)
    key = np.concatenate((k1, shape.devices + k2, shape.devices + shape.operators + k3)).astype(np.int32)
    n = len(planned)
    late = rng.exponential(0.0005, n)
    stalls = rng.random(n) < shape.stall_fraction
    late[stalls] += rng.uniform(0.05, 0.3, int(stalls.sum()))
    latency = rng.lognormal(np.log(shape.latency_ms / 1000.0), 0.45, n) * shape.latency_scale
    state = op == 0
    latency[state] = latency[state] * shape.state_scale + shape.state_add_ms / 1000.0
    status = np.full(n, 200, np.int16)
    error = np.full(n, NO_ERROR, np.uint8)
    u = rng.random(n)
    thr = (u < shape.throttle_fraction) & (op == 0)
    status[thr], error[thr] = 429, THROTTLED
    bad = (u >= shape.throttle_fraction) & (u < shape.throttle_fraction + shape.error_fraction)
    status[bad], error[bad] = 500, HTTP
    conn = (u >= shape.throttle_fraction + shape.error_fraction) & (u < shape.throttle_fraction + 1.2 * shape.error_fraction)
    status[conn], error[conn], latency[conn] = 0, CONNECTION, 5.0
    rows = np.zeros(n, ROW_DTYPE)
    order = np.argsort(planned, kind="stable")
    rows["op"], rows["key"], rows["planned"] = op[order], key[order], planned[order]
    rows["sent"] = (planned + late)[order]
    rows["latency"], rows["status"], rows["error"] = latency[order], status[order], error[order]
    rows["nbytes"] = np.where(status == 200, 64, 0)[order]
    keys = ([f"dev-{i:05d}" for i in range(shape.devices)] + [f"operator-{i}" for i in range(shape.operators)]
            + ["application"])
    return rows, list(OPS), keys


def write_run(run_dir: Path, shape: Shape = Shape(), summary: bool = True, chunk_rows: int = 1_000_000) -> Path:
    """Write a complete run folder (samples, scenario.yaml, fleet.json, integrity.json, summary.json)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows, ops, keys = make_rows(shape)
    rec = Recorder(run_dir, chunk_rows=chunk_rows)
    for i in range(0, len(rows), chunk_rows):
        part = rows[i:i + chunk_rows]
        rec.ingest({"format": FORMAT_VERSION, "n": len(part), "rows": part.tobytes(),
                    "ops": [[c, ops[c]] for c in np.unique(part["op"]).tolist()],
                    "keys": [[c, keys[c]] for c in np.unique(part["key"]).tolist()]})
    rec.close()
    scenario = {"name": shape.name, "description": "synthetic run for tests", "target": {"kind": "emulator"},
                "duration": f"{shape.duration:g}s", "ramp_up": shape.devices / max(shape.duration * shape.ramp, 1),
                "run_tag": "synth", "seed": shape.seed}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    fleet = {"base_url": "http://user:hunter2@127.0.0.1:8765/?token=secret", "application_id": "app-1",
             "run_tag": "synth", "devices": shape.devices,
             "by_kind": {"standalone": shape.devices, "gateway": 0, "peripheral": 0}}
    (run_dir / "fleet.json").write_text(json.dumps(fleet), encoding="utf-8")
    accepted = int(((rows["op"] == 0) & (rows["status"] == 200)).sum())
    integrity = {"checked": True, "devices": shape.devices, "unread_devices": [], "accepted": accepted,
                 "read_back": accepted, "lost_writes": 0, "lost": []}
    (run_dir / "integrity.json").write_text(json.dumps(integrity), encoding="utf-8")
    if summary:
        write_summary_for(run_dir, scenario, integrity)
    return run_dir


def write_summary_for(run_dir: Path, scenario: dict, integrity: dict) -> None:
    """``summary.json`` by the analysis package, with a few criteria so verdicts show."""
    from harness.scenario.criteria import parse_criteria
    from harness.analysis.summary import build_summary, write_summary
    from harness.limits import LimitsTable
    from harness.record import read_samples

    criteria = parse_criteria({"latency": {"device.sendState": {"p99": 250, "p50": 50}},
                               "max_error_rate": 0.01, "max_throttled_rate": 0.01})
    summary = build_summary(read_samples(run_dir), LimitsTable(), scenario, criteria, integrity,
                            pacing_mode="respect", series=False)
    write_summary(run_dir, summary)
