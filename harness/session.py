"""The run's shared context: what every user of a Locust process reads and writes.

One ``RunContext`` per run (a test start in the web UI, or a headless run) holds the
scenario, the provisioned fleet, the throttle ledger, the sample recorder and the
log of accepted states the integrity check reads back. Users claim units of work
from it (a device, a gateway with its peripherals, a chunk of the fleet) and give
them back when stopped, so the web UI can change the user count mid-run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.fleet import Device, Fleet
from harness.limits import LimitsTable
from harness.provision import Login
from harness.record import Recorder, classify
from harness.schedule import FleetTimeline, Ledger, stable_seed
from harness.scenario import Scenario, device_rng, make_state_generator
from harness.users.devices import Reporter

INTEGRITY_SAMPLE = 25  # devices whose accepted states are read back after the run
DEVICES_PER_FLEET_USER = 2000


@dataclass
class Unit:
    """What one reporting user drives."""

    kind: str  # standalone | gateway | multiplexed
    class_name: str
    devices: list[Device]


def plan_units(scenario: Scenario, fleet: Fleet) -> dict[str, deque[Unit]]:
    """Split the fleet into the units Locust users claim, by the scenario's fleet mode."""
    units: dict[str, deque[Unit]] = {"standalone": deque(), "gateway": deque(), "multiplexed": deque()}
    by_id = {d.id: d for d in fleet.devices}
    for cls in scenario.fleet.classes:
        members = [d for d in fleet.by_class(cls.name) if d.kind != "peripheral"]
        if scenario.fleet.mode == "multiplexed":
            flat: list[Device] = []
            for d in members:
                flat.append(d)
                flat.extend(by_id[p] for p in d.peripheral_ids)
            for i in range(0, len(flat), DEVICES_PER_FLEET_USER):
                units["multiplexed"].append(Unit("multiplexed", cls.name, flat[i:i + DEVICES_PER_FLEET_USER]))
        else:
            for d in members:
                group = [d] + [by_id[p] for p in d.peripheral_ids]
                units[d.kind].append(Unit(d.kind, cls.name, group))
    return units


def user_counts(scenario: Scenario) -> dict[str, int]:
    """How many Locust users of each kind the scenario needs (fixed counts)."""
    counts = {"standalone": 0, "gateway": 0, "multiplexed": 0, "operator": scenario.operators.count}
    for cls in scenario.fleet.classes:
        if scenario.fleet.mode == "multiplexed":
            per = 1 + (cls.peripherals if cls.kind == "gateway" else 0)
            counts["multiplexed"] += math.ceil(cls.count * per / DEVICES_PER_FLEET_USER)
        else:
            counts[cls.kind] += cls.count
    return counts


class RunContext:
    """Shared, mutable state of one run inside one Locust process."""

    def __init__(self, scenario: Scenario, fleet: Fleet, login: Login, limits: LimitsTable,
                 run_dir: Path | None) -> None:
        self.scenario, self.fleet, self.login, self.limits = scenario, fleet, login, limits
        self.run_dir = run_dir
        pacing = scenario.pacing
        self.ledger = Ledger(limits, pacing.throttle, pacing.margin, set(pacing.probe_limits), pacing.probe_factor)
        self.recorder = Recorder(run_dir)
        self.units = plan_units(scenario, fleet)
        self.start = time.time()  # one origin for every timeline, so phases spread across the whole fleet
        self.position = {p.name: i for c in scenario.fleet.classes for i, p in enumerate(c.devices(scenario.run_tag))}
        reporters = [d for d in fleet.devices]
        self.integrity_ids = {d.id for d in reporters[:: max(1, len(reporters) // INTEGRITY_SAMPLE)][:INTEGRITY_SAMPLE]}
        self.accepted: dict[str, list[int]] = {i: [] for i in self.integrity_ids}
        self.classes = {c.name: c for c in scenario.fleet.classes}
        self.claimed: dict[int, Unit] = {}
        self.throttled_count = 0
        self.dropped = 0  # open-loop sends the throttle ledger could not fit in their slot

    # -- recording -------------------------------------------------------
    def record(self, op: str, key: str, planned: float, sent: float, latency: float, status: int,
               nbytes: int, exc: Any) -> None:
        rec = self.recorder
        rec.record(rec.op_code(op), rec.key_code(key), planned, sent, latency, status, nbytes, classify(status, exc))

    def live_snapshot(self) -> dict[str, Any]:
        """What the web UI's Throttles tab shows, from the samples still in memory."""
        from harness.live import live_snapshot

        return live_snapshot(self.recorder.samples(), self.limits)

    def accepted_states(self, device_id: str, times_ms: list[int]) -> None:
        log = self.accepted.get(device_id)
        if log is not None:
            log.extend(times_ms)

    # -- pacing ----------------------------------------------------------
    def keys_for(self, key: str) -> dict[str, str]:
        return {"device": key, "application": self.fleet.application_id}

    def reserve(self, op: str, key: str, desired: float) -> float:
        return self.ledger.reserve(op, self.keys_for(key), desired)

    def try_reserve(self, op: str, key: str, desired: float, latest: float) -> float | None:
        """An open-loop send the limits cannot fit before ``latest`` is dropped and counted, not queued
        (a queue would grow without end when a schedule asks for more than a limit allows)."""
        t = self.ledger.try_reserve(op, self.keys_for(key), desired, latest)
        if t is None:
            self.dropped += 1
        return t

    def throttled(self, op: str, key: str, at: float, retry_after: float | None) -> None:
        self.throttled_count += 1
        self.ledger.on_throttled(op, self.keys_for(key), at, retry_after)

    def state_interval(self, class_interval: float) -> float:
        """Seconds between a device's state reports; in probe mode, fast enough to cross the limit."""
        pacing = self.scenario.pacing
        if pacing.throttle == "probe":
            probed = [lim for lim in self.limits.for_operation("device.sendState")
                      if lim.name in pacing.probe_limits and lim.window]
            if probed:
                lim = probed[0]
                return min(class_interval, lim.window / (lim.count * pacing.probe_factor))
        return class_interval

    # -- work units ------------------------------------------------------
    def claim(self, kind: str) -> tuple[list[Reporter], Any]:
        unit = self.units[kind].popleft()
        cls = self.classes[unit.class_name]
        reporters = []
        for d in unit.devices:
            state = make_state_generator(cls.attributes, device_rng(self.scenario.seed, d.name))
            auth_id = (d.gateway_id if d.kind == "peripheral" else None) or d.id
            reporters.append(Reporter(d, auth_id, state, cls.batch_size, polls=d.kind != "peripheral"))
        self.claimed[id(reporters)] = unit
        return reporters, cls

    def release(self, reporters: list[Reporter]) -> None:
        """Give a stopped user's unit back, so a user started later drives it."""
        unit = self.claimed.pop(id(reporters), None)
        if unit is not None:
            self.units[unit.kind].append(unit)

    def timeline_for(self, reporters: list[Reporter], cls: Any) -> FleetTimeline:
        """The unit's open-loop timeline on the run's common origin; sends planned before
        the user existed (it started later in the ramp) are skipped, not sent in a burst."""
        interval = self.state_interval(cls.report_interval)
        timeline = FleetTimeline.for_devices(
            len(reporters), interval, cls.jitter, cls.command_poll_interval, start=self.start,
            seed=stable_seed(self.fleet.run_tag, cls.name), first=self.position[reporters[0].device.name],
            of=cls.total_devices, polls=[r.polls for r in reporters])
        timeline.skip_to(time.time())
        return timeline

    def operator_actions(self) -> list[Any]:
        return list(self.scenario.operators.actions)
