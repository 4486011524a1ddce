"""Users that report state: a device, a gateway with its peripherals, or a whole multiplexed fleet.

All three are one loop over a set of reporters driven by an open-loop timeline: a
send's planned time never moves because an earlier response was slow, so lateness
(sent - planned) and the corrected latency can be measured. The ledger may move a
planned time later, only to keep a documented limit; that is part of the plan. It
admits each send at its actual send time (``LosantUser.call``): a send that cannot go
within its slot (before the next planned send of the device) is dropped and counted.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gevent
from gevent.pool import Pool
from locust import task

from harness.session import Reporter
from harness.users.base import LosantUser


class ReportingUser(LosantUser):
    """Drives its claimed units on their timeline; subclasses choose which units."""

    abstract = True
    pool_size = 1
    claim_kind = "standalone"

    def on_start(self) -> None:
        self.tokens: dict[str, str | None] = {}
        self.claim()
        self.connect()
        self.announce("connected")

    def connect(self) -> None:
        """Authenticate every device before its timeline starts, as a fleet connects before it
        reports: the /auth/device storm of a large fleet does not land on top of its first reports."""
        ids = list(dict.fromkeys(r.auth_id for r in self.reporters))
        if self.pool_size == 1:
            for auth_id in ids:
                self.tokens[auth_id] = self.authenticate_device(auth_id)
            return
        pool = Pool(self.pool_size)
        for auth_id in ids:
            pool.spawn(lambda a=auth_id: self.tokens.__setitem__(a, self.authenticate_device(a)))
        pool.join()

    def on_stop(self) -> None:
        if getattr(self, "units", None) is None:
            return
        ctx = self.ctx
        try:
            if not ctx.hurried:
                # the harness's tear-down, not the scenario's load: counted apart, never judged (a call
                # cut short by the stop is no error of the target's)
                self.own_recorder = ctx.own_calls.recorder("stop")
                self.announce("disconnected")
        finally:
            self.own_recorder = None
            ctx.release(self.units)

    def claim(self) -> None:
        ctx = self.ctx
        self.version = ctx.owner_version
        self.units = ctx.claim(self.claim_kind)
        self.reporters = ctx.reporters_for(self.units)
        ctx.on_user_ready()

    def announce(self, status: str) -> None:
        """Set the connection status of the devices that connect themselves, when the class asks for it."""
        for r in self.reporters:
            if r.polls and r.connection_status:
                self.set_connection(r, status)

    def token_for(self, r: Reporter, refresh: bool = False) -> str | None:
        if refresh or r.auth_id not in self.tokens:
            self.tokens[r.auth_id] = self.authenticate_device(r.auth_id)
        return self.tokens[r.auth_id]

    def app_path(self, device_id: str, suffix: str) -> str:
        return f"/applications/{self.ctx.fleet.application_id}/devices/{device_id}/{suffix}"

    def wait_until(self, when: float) -> None:
        delay = when - time.time()
        if delay > 0:
            gevent.sleep(delay)

    def _send(self, r: Reporter, op: str, method: str, suffix: str, planned: float, body: Any = None,
              latest: float = math.inf) -> int:
        token = self.tokens.get(r.auth_id) if r.auth_id in self.tokens else self.token_for(r)
        path = r.paths.get(suffix)
        if path is None:
            path = r.paths[suffix] = self.app_path(r.device.id, suffix)
        status, _ = self.call(op, method, path, token, r.device.id, planned, body, parse=False, latest=latest)
        if status == 401:
            self.token_for(r, refresh=True)
        return status

    def send_state(self, r: Reporter, planned: float, latest: float = math.inf) -> None:
        base_ms = int(planned * 1000)
        if r.batch_size == 1:
            times = [base_ms]
            body: Any = {"time": base_ms, "data": r.state()}
        else:
            times = [base_ms - (r.batch_size - 1 - i) for i in range(r.batch_size)]
            body = [{"time": t, "data": r.state()} for t in times]
        status = self._send(r, "device.sendState", "POST", "state", planned, body, latest)
        if status == 200:
            self.ctx.accepted_states(r.device.id, times)

    def poll_commands(self, r: Reporter, planned: float, latest: float = math.inf) -> None:
        self._send(r, "device.getCommand", "GET", "command?limit=10", planned, latest=latest)

    def set_connection(self, r: Reporter, status: str) -> None:
        planned = self.ctx.reserve("device.setConnectionStatus", r.device.id, time.time())
        self.wait_until(planned)
        self._send(r, "device.setConnectionStatus", "POST", "setConnectionStatus", planned, {"status": status})

    def act(self, r: Reporter, action: str, planned: float) -> None:
        latest = planned + r.interval  # the open-loop slot: a send that cannot go before the next is dropped
        ctx = self.ctx
        if ctx.probing:  # probe mode: the probed limits reserve planned times
            op = "device.sendState" if action == "state" else "device.getCommand"
            slot = ctx.try_reserve(op, r.device.id, planned, latest)
            if slot is None:
                return
            if slot != planned:  # the ledger moved it later; a planned time is already due when popped
                self.wait_until(slot)
            planned = slot
        if action == "state":
            self.send_state(r, planned, latest)
        else:
            self.poll_commands(r, planned, latest)

    @task
    def drive(self) -> None:
        ctx = self.ctx
        timeline = ctx.timeline_for(self.units)
        ctx.on_user_ready()
        pool = Pool(self.pool_size) if self.pool_size > 1 else None
        reporters = self.reporters
        while ctx.owner_version == self.version:
            nxt = timeline.next_time()
            if nxt is None:
                gevent.sleep(1.0)  # nothing to drive (no unit claimed): idle, but notice new ownership
                continue
            self.wait_until(min(nxt, time.time() + 1.0))
            for planned, index, action in timeline.pop_due(time.time()):
                if pool is None:
                    self.act(reporters[index], action, planned)
                else:
                    pool.spawn(self.act, reporters[index], action, planned)
        if pool is not None:
            pool.join()
        self.claim()  # ownership changed (a worker joined or left): drive the new share


class DeviceUser(ReportingUser):
    """One standalone device: authenticates as itself, reports, polls commands."""

    abstract = True
    claim_kind = "standalone"


class GatewayUser(ReportingUser):
    """A gateway: authenticates once and sends state for itself and its peripherals."""

    abstract = True
    claim_kind = "gateway"


class FleetUser(ReportingUser):
    """Many devices multiplexed over one shared connection pool (fleet mode)."""

    abstract = True
    claim_kind = "multiplexed"

    def on_start(self) -> None:
        self.pool_size = max(1, int(self.ctx.scenario.fleet.connections))
        super().on_start()
