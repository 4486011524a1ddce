"""The run's shared context: what every user of a Locust process reads and writes.

One ``RunContext`` per run (a test start in the web UI, or a headless run) holds the
scenario, the provisioned fleet, the throttle ledger, the sample recorder and the
log of accepted states the integrity check reads back. Users claim units of work
from it (a device, a gateway with its peripherals, a chunk of the fleet) and give
them back when stopped, so the web UI can change the user count mid-run.

In a distributed run each worker owns a share of the units (``harness.distributed``);
its one fleet user drives exactly the owned units, and re-reads them when the
ownership version changes.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from harness.accepted import AcceptedLog
from harness.fleet import Device, Fleet
from harness.harness_calls import HarnessCalls
from harness.limits import LimitsTable
from harness.provision import Login
from harness.record import Recorder
from harness.schedule import FleetTimeline, Ledger, Ticket, device_streams, stable_seed
from harness.scenario import DEVICES_PER_FLEET_USER, Scenario, device_rng, make_state_generator
from harness.users.devices import Reporter

SPILL_ROWS = 200_000
#: How long a live tenant's jobs are assumed to run when the scenario does not say
#: (``target.job_seconds``): respect mode then starts one job per key an hour.
LIVE_JOB_SECONDS = 3600.0


def job_bounds(scenario: Scenario, limits: LimitsTable) -> tuple[float | None, float]:
    """(shortest, longest) a target's job runs: as the scenario states it, else the
    emulator's ``job_seconds`` (exact), else unknown and at most ``LIVE_JOB_SECONDS``."""
    target = scenario.target
    if target.job_max is not None:
        return target.job_min, target.job_max
    if target.kind == "emulator":
        return limits.job_seconds, limits.job_seconds
    return None, LIVE_JOB_SECONDS


class _Keys(dict[str, str]):
    """Key values of a call by key kind; a kind not set explicitly (topic, virtual_button,
    dashboard, ...) is the call's own key, which the caller chose for that limit."""

    def __init__(self, key: str, application: str) -> None:
        super().__init__(device=key, application=application)
        self.key = key

    def __missing__(self, kind: str) -> str:
        return self.key


class NullRecorder:
    """Keeps nothing: only for measuring what recording costs (``--no-record``)."""

    enabled = False

    def op_code(self, name: str) -> int:
        return 0

    def key_code(self, key: str) -> int:
        return 0

    def record(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def samples(self) -> Any:
        return Recorder(None).samples()


@dataclass(frozen=True)
class Unit:
    """What one reporting user drives: a device, a gateway with its peripherals, or a chunk."""

    index: int
    kind: str  # standalone | gateway | multiplexed
    class_name: str
    devices: tuple[Device, ...]


def plan_units(scenario: Scenario, fleet: Fleet) -> list[Unit]:
    """Split the fleet into the units users claim, by the scenario's fleet mode (a fixed order)."""
    units: list[Unit] = []
    by_id = {d.id: d for d in fleet.devices}
    for cls in scenario.fleet.classes:
        groups = [(d, [d] + [by_id[p] for p in d.peripheral_ids])
                  for d in fleet.by_class(cls.name) if d.kind != "peripheral"]
        if scenario.fleet.mode == "multiplexed":
            flat = [dev for _, group in groups for dev in group]
            for i in range(0, len(flat), DEVICES_PER_FLEET_USER):
                units.append(Unit(len(units), "multiplexed", cls.name, tuple(flat[i:i + DEVICES_PER_FLEET_USER])))
        else:
            base = len(units)
            units.extend([Unit(base + i, d.kind, cls.name, tuple(group)) for i, (d, group) in enumerate(groups)])
    return units


def _nothing() -> None:
    pass


class RunContext:
    """Shared, mutable state of one run inside one Locust process."""

    def __init__(self, scenario: Scenario, fleet: Fleet, login: Login, limits: LimitsTable,
                 run_dir: Path | None, record: bool = True, start: float | None = None) -> None:
        self.scenario, self.fleet, self.login, self.limits = scenario, fleet, login, limits
        self.run_dir = run_dir
        pacing = scenario.pacing
        self.paced = pacing.throttle != "off"  # every call is admitted by the ledger at its actual send time
        self.probing = pacing.throttle == "probe"  # probed limits are also reserved on planned times
        # concurrency limits are paced as count jobs per longest job (harness.schedule.ledger)
        self.job_min, self.job_max = job_bounds(scenario, limits)
        paced = limits if self.job_max == limits.job_seconds else replace(limits, job_seconds=self.job_max)
        self.ledger = Ledger(paced, pacing.throttle, pacing.margin, set(pacing.probe_limits), pacing.probe_factor)
        #: probe rounds of the operators' limited actions: (limit, key) -> (earliest next round,
        #: the operation that ran the last one) (harness.users.probes.run_round)
        self.probe_rounds: dict[tuple[str, str], tuple[float, str]] = {}
        # 200,000-row chunks: a spill to disk pauses the event loop for ~25 ms, once per 200,000
        # requests, too rare to move the lateness p99 (a 1,000,000-row chunk pauses ~120 ms)
        self.recorder: Any = Recorder(run_dir, chunk_rows=SPILL_ROWS) if record else NullRecorder()
        self.units = plan_units(scenario, fleet)
        self.free: dict[str, deque[Unit]] = {"standalone": deque(), "gateway": deque(), "multiplexed": deque()}
        for u in self.units:
            self.free[u.kind].append(u)
        # one origin for every timeline (and every worker), so phases spread across the whole fleet
        self.start = time.time() if start is None else start
        self.position = {p.name: i for c in scenario.fleet.classes for i, p in enumerate(c.devices(scenario.run_tag))}
        self.classes = {c.name: c for c in scenario.fleet.classes}
        # every accepted state of every device, 4 bytes each: what the integrity check reads back
        self.accepted = AcceptedLog(int(self.start * 1000))
        self.throttled_count = 0
        self.dropped = 0  # open-loop sends the throttle ledger could not fit in their slot (never sent)
        self._keys: dict[str, dict[str, str]] = {}
        self.owned: set[int] | None = None  # distributed: unit indexes this worker drives
        self.owned_devices: list[Device] | None = None
        self.owner_version = 0
        #: Called by a reporting user once its reporters, tokens and timeline exist (see
        #: plugin._freeze_heap: the run freezes them out of the collector's reach).
        self.on_user_ready: Callable[[], None] = _nothing
        # Life-cycle facts the plugin records and rundir/report read back (declared here so that
        # every reader sees one typed attribute instead of probing with getattr).
        self.incomplete: str | None = None  # why the run ended before its planned end
        self.spawned_at: float | None = None  # end of the ramp-up (epoch seconds)
        self.stopping_at: float | None = None  # start of the stop
        self.progress: Any = None  # the progress greenlet (gevent is untyped)
        self.sent_counters: dict[str, Any] = {}  # distributed: what this worker already reported
        self.worker_events: list[dict[str, Any]] = []  # distributed: workers joining and leaving
        #: The harness's own calls (set-up, the stop's disconnect announcements, read-back): never judged.
        self.own_calls = HarnessCalls()
        self.hurried = False  # a second Ctrl-C: skip the disconnect announcements and the read-back

    # -- ownership (distributed runs) ------------------------------------------
    def set_owned(self, owned: set[int], version: int) -> None:
        self.owned = owned
        self.owned_devices = [d for u in self.units if u.index in owned for d in u.devices]
        self.owner_version = version

    def command_targets(self) -> list[Device]:
        """Devices an operator here may command: in a distributed run only this worker's, so
        each device's command limit is kept by one ledger."""
        return self.owned_devices if self.owned_devices is not None else self.fleet.devices

    # -- recording -------------------------------------------------------------
    def live_snapshot(self) -> dict[str, Any]:
        """What the web UI's Throttles tab shows, from the samples still in memory."""
        from harness.live import live_snapshot

        return live_snapshot(self.recorder.samples(), self.limits)

    def accepted_states(self, device_id: str, times_ms: list[int]) -> None:
        self.accepted.add(device_id, times_ms)

    # -- pacing ----------------------------------------------------------------
    def keys_for(self, key: str) -> dict[str, str]:
        """The key of every kind a limit may be counted by, for a call aimed at ``key`` (cached)."""
        keys = self._keys.get(key)
        if keys is None:
            keys = self._keys[key] = _Keys(key, self.fleet.application_id)
        return keys

    def reserve(self, op: str, key: str, desired: float) -> float:
        """A planned time for the probed limits (probe mode); ``desired`` otherwise."""
        if not self.probing:
            return desired
        return self.ledger.reserve(op, self.keys_for(key), desired)

    def try_reserve(self, op: str, key: str, desired: float, latest: float) -> float | None:
        """An open-loop send the probed limits cannot fit before ``latest`` is dropped and counted, not
        queued (a queue would grow without end when a schedule asks for more than a limit allows).
        Outside probe mode: ``desired`` (the limits are kept by ``admit`` at the actual send time)."""
        if not self.probing:
            return desired
        t = self.ledger.try_reserve(op, self.keys_for(key), desired, latest)
        if t is None:
            self.dropped += 1
        return t

    def admit(self, op: str, key: str, now: float) -> Ticket | float:
        """Respect the limits on actual send time: a ticket when the call may go ``now`` (hand it to
        ``done`` with the answer), else the earliest time it might (``Ledger.admit``)."""
        return self.ledger.admit(op, self.keys_for(key), now)

    def done(self, ticket: Ticket, ended_at: float) -> None:
        self.ledger.done(ticket, ended_at)

    def throttled(self, op: str, key: str, at: float, retry_after: float | None) -> None:
        self.throttled_count += 1
        self.ledger.on_throttled(op, self.keys_for(key), at, retry_after)

    def state_interval(self, class_interval: float) -> float:
        """Seconds between a device's state reports; in probe mode, fast enough to cross the limit
        (unless the operators' ``send_state`` rounds probe it: then devices report as planned)."""
        pacing = self.scenario.pacing
        if pacing.throttle == "probe" and not any(a.action == "send_state" for a in self.scenario.operators.actions):
            probed = [lim for lim in self.limits.for_operation("device.sendState")
                      if lim.name in pacing.probe_limits and lim.window]
            if probed:
                window, count = probed[0].window or 0.0, probed[0].count
                return min(class_interval, window / (count * pacing.probe_factor))
        return class_interval

    # -- work units --------------------------------------------------------------
    def claim(self, kind: str) -> list[Unit]:
        """Units for a starting user: one free unit of its kind, or in a distributed
        run (fleet user) every unit this worker owns."""
        if self.owned is not None and kind == "multiplexed":
            return [u for u in self.units if u.index in self.owned]
        queue = self.free[kind]
        return [queue.popleft()] if queue else []

    def release(self, units: list[Unit]) -> None:
        """Give a stopped user's units back, so a user started later drives them."""
        if self.owned is None:
            for u in units:
                self.free[u.kind].append(u)

    def reporters_for(self, units: list[Unit]) -> list[Reporter]:
        out = []
        for u in units:
            cls = self.classes[u.class_name]
            interval = self.state_interval(cls.report_interval)
            for d in u.devices:
                state = make_state_generator(cls.attributes, device_rng(self.scenario.seed, d.name))
                auth_id = (d.gateway_id if d.kind == "peripheral" else None) or d.id
                out.append(Reporter(d, auth_id, state, cls.batch_size, polls=d.kind != "peripheral",
                                    interval=interval, connection_status=cls.connection_status))
        return out

    def timeline_for(self, units: list[Unit]) -> FleetTimeline:
        """The units' open-loop timeline on the run's common origin; sends planned before
        the user existed (it started later in the ramp) are skipped, not sent in a burst."""
        streams = []
        offset = 0
        for u in units:
            cls = self.classes[u.class_name]
            streams += device_streams(
                len(u.devices), self.state_interval(cls.report_interval), cls.jitter, cls.command_poll_interval,
                start=self.start, seed=stable_seed(self.fleet.run_tag, cls.name),
                first=self.position[u.devices[0].name], of=cls.total_devices,
                polls=[d.kind != "peripheral" for d in u.devices], offset=offset)
            offset += len(u.devices)
        timeline = FleetTimeline(streams)
        timeline.skip_to(time.time())
        return timeline

    def operator_actions(self) -> list[Any]:
        return list(self.scenario.operators.actions)
