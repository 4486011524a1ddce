"""The running run: what every user of a Locust process reads and writes.

One ``RunContext`` per run (a test start in the web UI, or a headless run) holds the
scenario, the provisioned fleet, the throttle ledger, the sample recorder and the
log of accepted states the integrity check reads back. Users claim units of work
from it (a device, a gateway with its peripherals, a chunk of the fleet) and give
them back when stopped, so the web UI can change the user count mid-run.

It lives on Locust's ``Environment`` (``set_run``/``run_of``, the one accessor): the
users get the environment from Locust and nothing else, and a module global would
outlive the run (the web UI starts several in one process).

This module sits before the users in import order: it owns what they share
(``Reporter``, ``Unit``, the ``SampleSink`` a call writes into), so no user module
imports the run's life cycle and no import cycle hides behind ``TYPE_CHECKING``.

In a distributed run each worker owns a share of the units (``harness.distributed``);
its one fleet user drives exactly the owned REST units, and re-reads them when the
ownership version changes; its one MQTT user drives the MQTT units it owned when the run
started (``mqtt_owned``: a broker connection is not handed over mid-run).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from harness.accepted import AcceptedLog
from harness.fleet import Device, Fleet, Login
from harness.harness_calls import HarnessCalls
from harness.limits import LimitsTable
from harness.record import Recorder, Samples
from harness.schedule import FleetTimeline, Ledger, Ticket, device_streams, stable_seed
from harness.scenario import (
    DEVICES_PER_FLEET_USER, OperatorAction, Scenario, device_rng, make_state_generator, mqtt_groups_per_user,
)

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


class SampleSink(Protocol):
    """What ``LosantUser.call`` writes one sample into: the run's recorder, the no-op recorder of
    ``--no-record``, or the harness's own-call tally during the stop (``HarnessCalls.recorder``)."""

    enabled: bool

    def op_code(self, name: str) -> int: ...

    def key_code(self, key: str) -> int: ...

    def record(self, op: int, key: int, planned: float, sent: float, latency: float,
               status: int, nbytes: int, error: int) -> None: ...


class RunRecorder(SampleSink, Protocol):
    """The run's recorder: a sink the life cycle closes, the web UI reads live, and a distributed
    run ships between processes (``Recorder``, or ``NullRecorder``)."""

    def close(self) -> None: ...

    def samples(self) -> Samples: ...

    def drain(self) -> dict[str, Any]: ...

    def ingest(self, batch: dict[str, Any]) -> int: ...


class NullRecorder:
    """Keeps nothing: only for measuring what recording costs (``--no-record``)."""

    enabled = False

    def op_code(self, name: str) -> int:
        return 0

    def key_code(self, key: str) -> int:
        return 0

    def record(self, op: int, key: int, planned: float, sent: float, latency: float,
               status: int, nbytes: int, error: int) -> None:
        pass

    def close(self) -> None:
        pass

    def samples(self) -> Samples:
        return Recorder(None).samples()

    def drain(self) -> dict[str, Any]:
        return Recorder(None).drain()

    def ingest(self, batch: dict[str, Any]) -> int:
        return 0


def make_recorder(run_dir: Path | None, record: bool = True) -> RunRecorder:
    """The run's recorder; 200,000-row chunks: a spill to disk pauses the event loop for ~25 ms,
    once per 200,000 requests, too rare to move the lateness p99 (a 1,000,000-row chunk pauses
    ~120 ms). A worker (no run folder) keeps its rows until it ships them to the master."""
    return Recorder(run_dir, chunk_rows=SPILL_ROWS) if record else NullRecorder()


@dataclass
class Reporter:
    """One device whose state a loop sends, and whose token it uses."""

    device: Device
    auth_id: str  # the device that authenticates: itself, or its gateway
    state: Callable[[], dict[str, Any]]  # the next state's data
    batch_size: int
    polls: bool  # connects itself: polls commands, sets its connection status (peripherals do not)
    interval: float = 1.0  # seconds between its state reports (a send that cannot go within one is dropped)
    connection_status: bool = False
    paths: dict[str, str] = field(default_factory=dict)  # request paths, built once


@dataclass(frozen=True)
class Unit:
    """What one reporting user drives: a device, a gateway with its peripherals, or a chunk."""

    index: int
    kind: str  # standalone | gateway | multiplexed
    class_name: str
    devices: tuple[Device, ...]


def plan_units(scenario: Scenario, fleet: Fleet, mqtt_groups: bool = False) -> list[Unit]:
    """Split the fleet into the units users claim, by the scenario's fleet mode (a fixed order).

    ``mqtt_groups`` (a distributed run): one unit per MQTT device or gateway with its peripherals,
    so the workers' shares are even and a gateway's connection is never split between two of them."""
    units: list[Unit] = []
    by_id = {d.id: d for d in fleet.devices}
    for cls in scenario.fleet.classes:
        groups = [(d, [d] + [by_id[p] for p in d.peripheral_ids])
                  for d in fleet.by_class(cls.name) if d.kind != "peripheral"]
        if cls.transport == "mqtt" and mqtt_groups:
            units.extend([Unit(len(units) + i, "mqtt", cls.name, tuple(group)) for i, (_, group) in enumerate(groups)])
        elif cls.transport == "mqtt":  # chunks of broker connections, whatever the mode (harness.users.mqtt)
            per = mqtt_groups_per_user(cls)  # whole gateways: one connection is never driven by two users
            for i in range(0, len(groups), per):
                units.append(Unit(len(units), "mqtt", cls.name, tuple(dev for _, g in groups[i:i + per] for dev in g)))
        elif scenario.fleet.mode == "multiplexed":
            flat = [dev for _, group in groups for dev in group]
            for i in range(0, len(flat), DEVICES_PER_FLEET_USER):
                units.append(Unit(len(units), "multiplexed", cls.name, tuple(flat[i:i + DEVICES_PER_FLEET_USER])))
        else:
            base = len(units)
            units.extend([Unit(base + i, d.kind, cls.name, tuple(group)) for i, (d, group) in enumerate(groups)])
    return units


def _nothing() -> None:
    pass


@dataclass(eq=False)
class RunContext:
    """Shared, mutable state of one run inside one Locust process; every attribute declared here."""

    scenario: Scenario
    fleet: Fleet
    login: Login
    limits: LimitsTable
    run_dir: Path | None  # None on a worker: its samples travel to the master's run folder
    recorder: RunRecorder
    #: One origin for every timeline (and every worker), so phases spread across the whole fleet.
    start: float = field(default_factory=time.time)
    #: A distributed worker's run: MQTT units are single devices (or gateways with their peripherals)
    #: shared out between the workers, not the chunks one user per chunk drives in one process.
    distributed: bool = False

    paced: bool = field(init=False)  # every call is admitted by the ledger at its actual send time
    probing: bool = field(init=False)  # probed limits are also reserved on planned times
    job_min: float | None = field(init=False)  # how long the target's jobs run (harness.schedule.ledger)
    job_max: float = field(init=False)
    ledger: Ledger = field(init=False)
    #: probe rounds of the operators' limited actions: (limit, key) -> (earliest next round,
    #: the operation that ran the last one) (harness.users.probes.run_round)
    probe_rounds: dict[tuple[str, str], tuple[float, str]] = field(init=False, default_factory=dict)
    units: list[Unit] = field(init=False)
    free: dict[str, deque[Unit]] = field(init=False)
    position: dict[str, int] = field(init=False)
    classes: dict[str, Any] = field(init=False)  # device class name -> scenario DeviceClass
    #: every accepted state of every device, 4 bytes each: what the integrity check reads back
    accepted: AcceptedLog = field(init=False)
    throttled_count: int = field(init=False, default=0)
    dropped: int = field(init=False, default=0)  # open-loop sends the ledger could not fit in their slot
    _keys: dict[str, dict[str, str]] = field(init=False, default_factory=dict)
    owned: set[int] | None = field(init=False, default=None)  # distributed: unit indexes this worker drives
    owned_devices: list[Device] | None = field(init=False, default=None)
    owner_version: int = field(init=False, default=0)
    #: distributed: the MQTT units this worker drives, fixed when the run starts (a worker joining or
    #: leaving does not move broker connections, so no device is ever connected by two workers)
    mqtt_owned: set[int] | None = field(init=False, default=None)
    mqtt_claimed: bool = field(init=False, default=False)  # the worker's MQTT user has them
    #: Called by a reporting user once its reporters, tokens and timeline exist (see
    #: harness.gc_policy.freeze_new: the run freezes them out of the collector's reach).
    on_user_ready: Callable[[], None] = field(init=False, default_factory=lambda: _nothing)
    # Life-cycle facts the life cycle records and rundir/report read back.
    incomplete: str | None = field(init=False, default=None)  # why the run ended before its planned end
    spawned_at: float | None = field(init=False, default=None)  # end of the ramp-up (epoch seconds)
    stopping_at: float | None = field(init=False, default=None)  # start of the stop
    progress: Any = field(init=False, default=None)  # the headless progress greenlet (gevent is untyped)
    sent_counters: dict[str, int] = field(init=False, default_factory=dict)  # distributed: already reported
    worker_events: list[dict[str, Any]] = field(init=False, default_factory=list)  # workers joining, leaving
    #: The harness's own calls (set-up, the stop's disconnect announcements, read-back): never judged.
    own_calls: HarnessCalls = field(init=False, default_factory=HarnessCalls)
    hurried: bool = field(init=False, default=False)  # a second Ctrl-C: skip disconnects and the read-back
    #: The generator's own CPU: process CPU seconds (user + sys) at the run's start, and what each
    #: worker of a distributed run reported at its end (worker id -> CPU seconds of its run).
    cpu_at_start: float = field(init=False, default_factory=time.process_time)
    worker_cpu: dict[str, float] = field(init=False, default_factory=dict)
    #: MQTT devices: the broker's URL (the embedded emulator's, or the scenario's ``target.mqtt_url``) and
    #: the run's ``harness.users.mqtt_hub.MqttHub`` (made by the first MQTT user; operators stamp commands)
    mqtt_url: str = field(init=False, default="")
    mqtt: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        pacing = self.scenario.pacing
        self.paced = pacing.throttle != "off"
        self.probing = pacing.throttle == "probe"
        # concurrency limits are paced as count jobs per longest job (harness.schedule.ledger)
        self.job_min, self.job_max = job_bounds(self.scenario, self.limits)
        limits = self.limits
        paced = limits if self.job_max == limits.job_seconds else replace(limits, job_seconds=self.job_max)
        self.ledger = Ledger(paced, pacing.throttle, pacing.margin, set(pacing.probe_limits), pacing.probe_factor)
        self.units = plan_units(self.scenario, self.fleet, mqtt_groups=self.distributed)
        self.free = {"standalone": deque(), "gateway": deque(), "multiplexed": deque()}
        for u in self.units:
            self.free.setdefault(u.kind, deque()).append(u)
        self.position = {p.name: i for c in self.scenario.fleet.classes
                         for i, p in enumerate(c.devices(self.scenario.run_tag))}
        self.classes = {c.name: c for c in self.scenario.fleet.classes}
        self.accepted = AcceptedLog(int(self.start * 1000))

    def cpu_seconds(self) -> float:
        """This process's CPU seconds (user + sys) since the run started."""
        return time.process_time() - self.cpu_at_start

    def generator_cpu(self, now: float) -> dict[str, Any]:
        """What the generator's processes spent (``run.json``'s ``generator``): CPU seconds and CPU per second of
        run, per process; ``cpu_percent`` is the busiest process's (one process saturates at 100%)."""
        wall = max(now - self.start, 1e-6)
        main = "master" if self.worker_cpu else "harness"
        spent = [(main, self.cpu_seconds()), *((f"worker {w}", c) for w, c in sorted(self.worker_cpu.items()))]
        processes: list[dict[str, Any]] = [
            {"process": name, "cpu_seconds": round(cpu, 3), "cpu_percent": round(100 * cpu / wall, 1)}
            for name, cpu in spent]
        return {"wall_seconds": round(wall, 3), "cpu_seconds": round(sum(c for _, c in spent), 3),
                "cpu_percent": round(100 * max(c for _, c in spent) / wall, 1), "processes": processes}

    # -- ownership (distributed runs) ------------------------------------------
    def set_owned(self, owned: set[int], version: int) -> None:
        self.owned = owned
        driven = owned | (self.mqtt_owned or set())  # MQTT units stay with their first owner
        self.owned_devices = [d for u in self.units if u.index in driven for d in u.devices]
        self.owner_version = version

    def command_targets(self) -> list[Device]:
        """Devices an operator here may command: in a distributed run only this worker's, so
        each device's command limit is kept by one ledger."""
        return self.owned_devices if self.owned_devices is not None else self.fleet.devices

    # -- recording -------------------------------------------------------------
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
            return [u for u in self.units if u.index in self.owned and u.kind != "mqtt"]
        if self.mqtt_owned is not None and kind == "mqtt":
            if self.mqtt_claimed:  # a second MQTT user on this worker: the units have their driver
                return []
            self.mqtt_claimed = True
            return [u for u in self.units if u.index in self.mqtt_owned]
        queue = self.free.setdefault(kind, deque())
        return [queue.popleft()] if queue else []

    def release(self, units: list[Unit]) -> None:
        """Give a stopped user's units back, so a user started later drives them."""
        if self.mqtt_owned is not None and any(u.kind == "mqtt" for u in units):
            self.mqtt_claimed = False
        if self.owned is None:
            for u in units:
                self.free[u.kind].append(u)

    def reporters_for(self, units: list[Unit]) -> list[Reporter]:
        out: list[Reporter] = []
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

    def operator_actions(self) -> list[OperatorAction]:
        return list(self.scenario.operators.actions)


#: The attribute of Locust's ``Environment`` that holds the running run (Locust's class has no
#: slot for it: ``set_run`` and ``run_of`` are the only readers and writers).
_RUN_ATTR = "losant_run"


def set_run(environment: Any, run: RunContext | None) -> None:
    """Make ``run`` the environment's running run (None: the run could not be prepared)."""
    setattr(environment, _RUN_ATTR, run)


def run_of(environment: Any) -> RunContext | None:
    """The environment's running run, or None before the first test start (or after a failed one)."""
    run = getattr(environment, _RUN_ATTR, None)
    return run if isinstance(run, RunContext) else None
