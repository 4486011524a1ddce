"""The harness's own calls to the target, counted apart from the load's samples.

Provisioning, the devices' disconnect announcements while the load stops, the
read-back and deleting the run's credentials are the harness's set-up and tear-down,
not traffic the scenario asked for. Their failures (a disconnect cut short by the
stop, a read-back against a target that went away) say nothing about the target under
load, so they never enter the samples the criteria judge. They are counted here, by
phase and outcome, and written to ``harness_calls.json`` in the run folder (the
summary repeats it under ``harness_calls``), so a failing set-up or tear-down stays
visible without failing the target.

>>> calls = HarnessCalls()
>>> calls.log("release")(200, 0.01, "", True)
>>> calls.to_dict()["release"]
{'calls': 1, 'failed': 0, 'seconds': 0.01, 'outcomes': {'200': 1}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.record import ERROR_KINDS

#: One call's outcome: (HTTP status or 0, seconds, error class name or "", whether it did what was asked)
CallLog = Callable[[int, float, str, bool], None]

#: The phases, in the order a run goes through them.
PHASES = ("provision", "stop", "read-back", "release", "teardown")

FILE = "harness_calls.json"


@dataclass
class PhaseTally:
    calls: int = 0
    failed: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)  # "200", "404", "ConnectError", ...


class HarnessCalls:
    """Counts per phase; one per Locust process, for the life of its fleet (set-up precedes any run folder)."""

    def __init__(self, phases: dict[str, PhaseTally] | None = None) -> None:
        self.phases: dict[str, PhaseTally] = dict(phases or {})

    def add(self, phase: str, status: int, seconds: float, error: str, ok: bool) -> None:
        tally = self.phases.get(phase)
        if tally is None:
            tally = self.phases[phase] = PhaseTally()
        tally.calls += 1
        tally.failed += 0 if ok else 1
        tally.seconds += seconds
        outcome = str(status) if status else (error or "no answer")
        tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1

    def log(self, phase: str) -> CallLog:
        """What a client calls after each attempt, for calls of ``phase``."""
        return lambda status, seconds, error, ok: self.add(phase, status, seconds, error, ok)

    def recorder(self, phase: str) -> PhaseRecorder:
        """A stand-in for the run's sample recorder (same ``record`` signature) that counts here instead."""
        return PhaseRecorder(self, phase)

    def to_dict(self) -> dict[str, Any]:
        order = {p: i for i, p in enumerate(PHASES)}
        return {name: {"calls": t.calls, "failed": t.failed, "seconds": round(t.seconds, 3), "outcomes": dict(t.outcomes)}
                for name, t in sorted(self.phases.items(), key=lambda kv: order.get(kv[0], len(order)))}

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


class PhaseRecorder:
    """Takes ``LosantUser.call``'s samples during the harness's own tear-down (the disconnect announcements)."""

    enabled = True

    def __init__(self, calls: HarnessCalls, phase: str) -> None:
        self.calls, self.phase = calls, phase

    def op_code(self, name: str) -> int:
        return 0

    def key_code(self, key: str) -> int:
        return 0

    def record(self, op: int, key: int, planned: float, sent: float, latency: float, status: int, nbytes: int,
               error: int) -> None:
        self.calls.add(self.phase, status, latency, ERROR_KINDS[error] if error else "", error == 0)


def read(run_dir: Path) -> dict[str, Any] | None:
    """``harness_calls.json`` of a run folder, or None (older runs have none)."""
    path = Path(run_dir) / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
