"""Synthetic MQTT samples with known causes, for the MQTT judge's and report's tests and demos.

``MqttLog`` writes samples exactly as the MQTT users' contract does (``harness/record.py``,
``harness/analysis/mqtt.py``): connects, publishes, command deliveries, disconnects with
their reason codes, and the operator's drop. ``storm`` builds a whole reconnect storm
shaped by a new-connection limit, the shape the ``reconnect-storm`` scenario produces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from harness.record import CONNECTION, FORMAT_VERSION, NO_ERROR, ROW_DTYPE, THROTTLED, Recorder, Samples

BASE = 1_795_000_005.0  # a multiple of 15 s


@dataclass
class MqttLog:
    """Samples appended one by one; times are seconds after ``BASE``."""

    rows: list[tuple[str, str, float, float, float, int, int, int]] = field(default_factory=list)

    def add(self, op: str, key: str, sent: float, latency: float, status: int, nbytes: int = 0,
            planned: float | None = None) -> None:
        error = NO_ERROR if status in (200, 2, 5) else (THROTTLED if status == 1003 else CONNECTION)
        self.rows.append((op, key, BASE + (sent if planned is None else planned), BASE + sent, latency, status,
                          nbytes, error))

    def connect(self, dev: str, t: float, latency: float = 0.002, status: int = 200) -> None:
        self.add("mqtt.connect", dev, t, latency, status)

    def publish(self, dev: str, t: float, latency: float = 0.002, status: int = 200, nbytes: int = 40,
                topic: str | None = None) -> None:
        self.add("mqtt.publishState", f"{dev}:{topic or f'losant/{dev}/state'}", t, latency, status, nbytes)

    def command(self, dev: str, t: float, latency: float = 0.005, status: int = 200) -> None:
        self.add("mqtt.commandDelivery", dev, t, latency, status)

    def disconnect(self, dev: str, t: float, reason: int = 1) -> None:
        self.add("mqtt.disconnect", dev, t, 0.0, reason)

    def drop(self, t: float, latency: float = 0.01, app: str = "app") -> None:
        self.add("mqtt.drop", app, t, latency, 200)

    def samples(self) -> Samples:
        ops: dict[str, int] = {}
        keys: dict[str, int] = {}
        rows = np.zeros(len(self.rows), ROW_DTYPE)
        for i, (op, key, planned, sent, latency, status, nbytes, error) in enumerate(self.rows):
            rows[i] = (ops.setdefault(op, len(ops)), keys.setdefault(key, len(keys)), planned, sent, latency,
                       status, nbytes, error)
        return Samples.from_rows(rows, tuple(ops), tuple(keys))


def storm(devices: int = 60, limit: int = 20, window: float = 15.0, drop_at: float | None = None,
          interval: float = 5.0, end: float | None = None, latency: float = 0.003) -> MqttLog:
    """A fleet connects within the new-connection limit (``limit`` per ``window``), publishes every
    ``interval``, is dropped at ``drop_at`` and reconnects as the limit admits, refused (1003) meanwhile."""
    batches = -(-devices // limit)
    step = window + 0.25  # one batch per window, clear of the window's edge by more than the latency
    drop_at = batches * step + 1.0 if drop_at is None else drop_at
    end = drop_at + batches * step + 10.0 if end is None else end
    log = MqttLog()
    names = [f"dev-{i:04d}" for i in range(devices)]

    def admit(start: float) -> list[float]:
        """Each device's accepted connect: batches of ``limit`` one window apart; refusals between."""
        times = []
        for i, name in enumerate(names):
            batch = i // limit
            t = start + batch * step + i % limit * 0.01
            for k in range(batch):  # refused tries, one per earlier batch
                log.connect(name, start + k * step + limit * 0.01 + 0.02 + i % limit * 0.001, latency, 1003)
            log.connect(name, t, latency)
            times.append(t + latency)
        return times

    up = admit(0.0)
    back = admit(drop_at + 0.5)
    log.drop(drop_at)
    for i, name in enumerate(names):
        for t in np.arange(up[i] + 0.1, drop_at, interval).tolist():
            log.publish(name, t, latency)
        log.disconnect(name, drop_at + 0.004, 1)
        for t in np.arange(back[i] + 0.1, end, interval).tolist():
            log.publish(name, t, latency)
        log.disconnect(name, end + 0.5, 2)
    return log


def write_mqtt_run(run_dir: Path, log: MqttLog, limits: dict | None = None, name: str = "mqtt-synthetic",
                   summary: bool = True, pacing: str = "off") -> Path:
    """A run folder of ``log``'s samples, judged in pacing mode ``pacing`` (the storm's clients are refused
    while the limit holds them back, as clients that do not pace themselves are)."""
    from harness.limits import parse_limits, table_to_dict

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    s = log.samples()
    rows = np.zeros(len(s), ROW_DTYPE)
    for col in ROW_DTYPE.names or ():
        rows[col] = getattr(s, col)
    rec = Recorder(run_dir)
    rec.ingest({"format": FORMAT_VERSION, "n": len(rows), "rows": rows.tobytes(),
                "ops": [[i, n] for i, n in enumerate(s.op_names)], "keys": [[i, n] for i, n in enumerate(s.key_names)]})
    rec.close()
    scenario = {"name": name, "target": {"kind": "emulator"}, "duration": "100s", "run_tag": "synth",
                "pacing": {"throttle": pacing}}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    (run_dir / "fleet.json").write_text(json.dumps({"application_id": "app", "run_tag": "synth"}), encoding="utf-8")
    table = parse_limits(limits or {})
    (run_dir / "limits.json").write_text(json.dumps(table_to_dict(table), indent=1), encoding="utf-8")
    if summary:
        from harness.analysis.summary import build_summary, write_summary

        write_summary(run_dir, build_summary(s, table, scenario, None, None, pacing_mode=pacing, series=False))
    return run_dir
