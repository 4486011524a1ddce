"""Reading a run folder for the report: samples plus the JSON/YAML files around them.

Every file but ``samples/`` is optional, because the report must also render an old
or crashed run (a missing ``summary.json`` gives a page without verdicts, not an
error). Nothing here returns a secret: the target URL loses its user-info, query and
fragment (``safe_url``), and only named, known-harmless fields are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from harness.limits import LimitsTable, load_limits
from harness.record import Samples, read_samples
from harness.target import safe_url


def epoch_of(value: Any) -> float | None:
    """A ``run.json`` time (ISO 8601, as written here; or epoch seconds) in epoch seconds; None if absent
    or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _find(data: Any, *paths: str) -> Any:
    """The first present value among dotted paths ("generator.cpu_percent")."""
    for path in paths:
        cur = data
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


@dataclass
class RunData:
    """A run folder as the report reads it."""

    path: Path
    samples: Samples
    summary: dict[str, Any] = field(default_factory=dict)
    integrity: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)
    fleet: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(_find(self.summary, "scenario.name") or self.scenario.get("name") or self.path.name)

    @property
    def run_id(self) -> str:
        return str(self.summary.get("run_id") or self.path.name)

    @property
    def target_url(self) -> str:
        raw = (_find(self.summary, "target.url", "scenario.target.url") or self.fleet.get("base_url")
               or _find(self.scenario, "target.url"))
        if raw:
            return safe_url(str(raw))
        kind = _find(self.summary, "target.kind") or _find(self.scenario, "target.kind")
        return "embedded emulator" if kind in (None, "emulator") else str(kind)

    @property
    def fleet_size(self) -> int | None:
        n = self.fleet.get("devices")
        if isinstance(n, int):
            return n
        n = _find(self.summary, "fleet.devices", "scenario.devices")
        return int(n) if isinstance(n, (int, float)) else None

    @property
    def passed(self) -> bool | None:
        p = self.summary.get("passed")
        return bool(p) if p is not None else None

    @property
    def cpu_percent(self) -> float | None:
        """The generator's own CPU, when the run recorded it (several spellings accepted)."""
        v = _find(self.summary, "generator.cpu_percent", "generator.cpu_p99", "generator.cpu", "cpu_percent",
                  "scheduler.cpu_percent", "health.cpu_percent")
        if isinstance(v, dict):
            v = v.get("max") or v.get("p99") or v.get("mean")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        v = self.summary.get("verdicts") or self.summary.get("criteria") or []
        return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []

    @property
    def conformance(self) -> dict[str, Any]:
        c = self.summary.get("conformance")
        return c if isinstance(c, dict) else {}

    @property
    def integrity_result(self) -> dict[str, Any]:
        return self.integrity or (self.summary.get("integrity") if isinstance(self.summary.get("integrity"), dict)
                                  else {}) or {}

    def limits(self) -> LimitsTable:
        """The limits table of the run: a limits file named by the scenario if readable, else the documented one."""
        path = _find(self.scenario, "target.limits")
        if path:
            for candidate in (Path(str(path)), self.path / str(path)):
                if candidate.exists():
                    try:
                        return load_limits(candidate)
                    except Exception:  # a report must render even if the override is broken
                        break
        return LimitsTable()


def load_run(run_dir: Path) -> RunData:
    """Read a run folder; only ``samples/`` is required."""
    run_dir = Path(run_dir)
    return RunData(
        path=run_dir,
        samples=read_samples(run_dir),
        summary=read_json_object(run_dir / "summary.json"),
        integrity=read_json_object(run_dir / "integrity.json"),
        scenario=_yaml(run_dir / "scenario.yaml"),
        fleet=read_json_object(run_dir / "fleet.json"),
    )


def utc(epoch: float | None) -> str:
    """'2026-11-27 03:15:10 UTC' (or '-')."""
    if epoch is None or epoch != epoch or epoch <= 0:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
