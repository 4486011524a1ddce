"""Distributed runs over Locust's master and workers, without two workers driving one device.

- The master provisions once and, at test start, sends every worker the setup (the
  resolved scenario, the fleet with this run's credentials, the limits, the common
  timeline origin) as a Locust custom message.
- Units (a device, a gateway with its peripherals, a fleet chunk) are owned by
  exactly one worker, chosen by rendezvous hashing of (unit, worker id): a pure
  function of the fleet and the worker set, so every process computes the same
  owners, and a worker joining or leaving moves only its own share.
- Handover: when the worker set changes, the master sends the new set with a time a
  little in the future. A worker stops driving the units it loses at once and starts
  the ones it gains only at that time, so no unit has two drivers (a message would
  need to be later than ``HANDOVER`` seconds for an overlap).
- MQTT devices (``transport: mqtt``) are driven by one MQTT user per worker, on the broker
  address the setup carries (``mqtt_url``); their owners are fixed when the run starts
  (``RunContext.mqtt_owned``): a broker connection is not handed over, so a worker leaving
  mid-run leaves its MQTT devices disconnected, and a joining worker drives none of them.
  A scenario mixing REST and MQTT classes, or with timed ``events``, is refused before
  anything starts (``harness.scenario.check_distributable``): Locust deals fixed users round robin over the
  workers, so two kinds of per-worker users could both land on one worker.
- Per-application limits (events) are split evenly between workers' ledgers; device
  commands from operators go only to devices their own worker owns.
- Samples and accepted-state logs travel to the master with each worker report and a
  final message at stop; the master's recorder ingests them into the one run folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import gevent

from harness.fleet import Device, Fleet, Login, Secret
from harness.limits import Limit, LimitsTable, table_from_dict, table_to_dict
from harness.scenario import parse_scenario
from harness.schedule.timeline import _mix64, stable_seed
from harness.session import RunContext, make_recorder

log = logging.getLogger("losant-load")

MQTT_CLASS = "Mqtt"
SETUP, OWNERS, FINAL, STOP = "losant_setup", "losant_owners", "losant_final", "losant_stop"
FINAL_WAIT = 15.0  # seconds the master waits for every worker's last samples
HANDOVER = 1.0  # seconds between releasing and acquiring units on a change of the worker set
FLEET_CLASS = "Fleet"


# -- ownership (pure) -----------------------------------------------------------
def owners(units: int, workers: list[str], seed: int = 0) -> dict[str, set[int]]:
    """Rendezvous hashing: unit u goes to the worker with the highest hash of (u, worker).

    >>> o = owners(10, ["a", "b"]); sorted(o["a"] | o["b"]) == list(range(10)) and not (o["a"] & o["b"])
    True
    """
    out: dict[str, set[int]] = {w: set() for w in workers}
    if not workers:
        return out
    salts = [(stable_seed(seed, w), w) for w in sorted(workers)]
    for u in range(units):
        best = max(salts, key=lambda sw: _mix64(sw[0] ^ _mix64(u)))
        out[best[1]].add(u)
    return out


#: Limit keys one device's traffic alone fills (a device, its topic, its connection): a device has
#: one owner, so these are never shared between workers.
DEVICE_KEYS = ("device", "device_topic", "connection")


def split_table(table: LimitsTable, workers: int) -> LimitsTable:
    """Each worker's share of the rate limits not keyed by device (a device has one owner): the REST
    rows and the broker's (``mqtt.newConnections`` is per application, shared by every worker)."""
    if workers <= 1:
        return table

    def share(limits: tuple[Limit, ...]) -> tuple[Limit, ...]:
        return tuple(lim if lim.key in DEVICE_KEYS or lim.kind != "rate" else
                     replace(lim, count=max(1, lim.count // workers)) for lim in limits)

    return replace(table, limits=share(table.limits), mqtt=share(table.mqtt))


# -- the setup message -------------------------------------------------------------
def fleet_to_dict(fleet: Fleet) -> dict[str, Any]:
    return {"base_url": fleet.base_url, "application_id": fleet.application_id, "run_tag": fleet.run_tag,
            "access_key": fleet.access_key, "access_secret": str(fleet.access_secret),
            "operator_token": str(fleet.operator_token) if fleet.operator_token else None,
            "user_token": str(fleet.user_token) if fleet.user_token else None,
            "devices": [[d.id, d.name, d.class_name, d.kind, d.gateway_id, d.peripheral_ids] for d in fleet.devices]}


def fleet_from_dict(data: dict[str, Any]) -> Fleet:
    devices = [Device(i, n, c, k, g, list(p)) for i, n, c, k, g, p in data["devices"]]
    return Fleet(base_url=data["base_url"], application_id=data["application_id"], run_tag=data["run_tag"],
                 access_key=data["access_key"], access_secret=Secret(data["access_secret"]),
                 operator_token=Secret(data["operator_token"]) if data["operator_token"] else None,
                 user_token=Secret(data["user_token"]) if data["user_token"] else None, devices=devices)


def setup_message(ctx: RunContext, workers: list[str]) -> dict[str, Any]:
    login = ctx.login
    scenario = ctx.scenario.to_dict()
    scenario["target"].pop("limits", None)  # a path on the master's disk; the table itself travels below
    return {"scenario": scenario, "source": ctx.scenario.source, "fleet": fleet_to_dict(ctx.fleet),
            "limits": table_to_dict(ctx.limits), "start": ctx.start, "workers": workers, "mqtt_url": ctx.mqtt_url,
            "login": {"email": login.email, "password": str(login.password) if login.password else None,
                      "api_token": str(login.api_token) if login.api_token else None}}


# -- master ------------------------------------------------------------------------------
class Master:
    """The master's side: send the setup, watch the worker set, ingest what workers send."""

    def __init__(self, environment: Any, ctx: RunContext) -> None:
        self.env, self.ctx = environment, ctx
        self.version = 0
        self.workers: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.watcher: Any = None
        self.finals: set[str] = set()

    def eligible(self) -> list[str]:
        """Workers that drive devices: connected, and running a fleet user (or still starting one)."""
        return sorted(c.id for c in self.env.runner.clients.values()
                      if c.state in ("ready", "spawning") or
                      (c.state == "running" and (c.user_classes_count.get(FLEET_CLASS, 0) > 0 or
                                                 c.user_classes_count.get(MQTT_CLASS, 0) > 0)))

    def start(self) -> None:
        self.workers = self.eligible()
        now = time.time()
        self.events += [{"worker": w, "event": "joined", "at": now} for w in self.workers]
        self.env.runner.send_message(SETUP, setup_message(self.ctx, self.workers))
        self.watcher = gevent.spawn(self._watch)

    def _watch(self) -> None:
        while True:
            gevent.sleep(1.0)
            current = self.eligible()
            if current == self.workers or not current:
                continue
            now = time.time()
            for w in sorted(set(self.workers) - set(current)):
                self.events.append({"worker": w, "event": "left", "at": now})
                log.warning("losant-load: worker %s left at %s; its devices move to the others", w,
                            time.strftime("%H:%M:%S", time.gmtime(now)))
            for w in sorted(set(current) - set(self.workers)):
                self.events.append({"worker": w, "event": "joined", "at": now})
            self.workers = current
            self.version += 1
            self.env.runner.send_message(OWNERS, {"version": self.version, "workers": current,
                                                  "effective_at": now + HANDOVER})

    def stop(self) -> None:
        """Stop the watcher, ask workers to stop (Locust's quit does not wait for them) and
        wait until each has sent its last samples, so the analysis sees the whole run."""
        if self.watcher is not None:
            self.watcher.kill(block=False)
        runner = self.env.runner
        expected = {c.id for c in runner.clients.values() if c.state != "missing"} - self.finals
        if expected:
            runner.send_message(STOP, {})
        deadline = time.time() + FINAL_WAIT
        while expected - self.finals and time.time() < deadline:
            gevent.sleep(0.05)
        late = expected - self.finals
        if late:
            log.warning("losant-load: no final samples from %s within %.0f s", ", ".join(sorted(late)), FINAL_WAIT)

    def ingest(self, data: dict[str, Any] | None) -> None:
        if not data:
            return
        ctx = self.ctx
        if data.get("final"):
            self.finals.add(data.get("worker", ""))
            if isinstance(data.get("cpu_seconds"), (int, float)):  # the worker's own CPU over its run
                ctx.worker_cpu[str(data.get("worker", ""))] = float(data["cpu_seconds"])
        if data.get("samples"):
            ctx.recorder.ingest(data["samples"])
        ctx.accepted.merge(data.get("accepted") or {})
        ctx.throttled_count += int(data.get("throttled", 0))
        ctx.dropped += int(data.get("dropped", 0))


# -- worker -------------------------------------------------------------------------------
def worker_payload(ctx: RunContext, sent: dict[str, int], worker: str = "", final: bool = False) -> dict[str, Any]:
    """What a worker ships: its samples since the last report, accepted states, counters (deltas)."""
    out = {"samples": ctx.recorder.drain(), "accepted": ctx.accepted.drain(),
           "throttled": ctx.throttled_count - sent.get("throttled", 0), "dropped": ctx.dropped - sent.get("dropped", 0),
           "worker": worker, "final": final, "cpu_seconds": ctx.cpu_seconds()}
    sent.update(throttled=ctx.throttled_count, dropped=ctx.dropped)
    return out


def worker_context(data: dict[str, Any], my_id: str) -> RunContext:
    """A worker's RunContext from the master's setup (no run folder: samples travel to the master)."""
    scenario = parse_scenario(data["scenario"], data["source"])
    workers = data["workers"]
    login = data["login"]
    ctx = RunContext(scenario, fleet_from_dict(data["fleet"]),
                     Login(email=login["email"], password=Secret(login["password"]) if login["password"] else None,
                           api_token=Secret(login["api_token"]) if login["api_token"] else None),
                     split_table(table_from_dict(data["limits"]), len(workers)), None, make_recorder(None),
                     start=data["start"], distributed=True)
    ctx.mqtt_url = str(data.get("mqtt_url") or "")  # the master's broker (the embedded emulator's)
    mine = owners(len(ctx.units), workers).get(my_id, set())
    ctx.set_owned(mine, 0)
    ctx.mqtt_owned = {u.index for u in ctx.units if u.kind == "mqtt" and u.index in mine}
    return ctx


def apply_owners(ctx: RunContext, my_id: str, data: dict[str, Any]) -> None:
    """Release lost units now; take gained ones at ``effective_at`` (no unit with two drivers)."""
    new = owners(len(ctx.units), data["workers"]).get(my_id, set())
    old = ctx.owned or set()
    base = 2 * int(data["version"])
    ctx.set_owned(old & new, base)
    if new - old:
        delay = max(0.0, float(data["effective_at"]) - time.time())
        gevent.spawn_later(delay, ctx.set_owned, new, base + 1)
